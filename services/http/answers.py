"""Response bodies, as Structs, for the OpenAPI document (and clients built from it)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec

from casedesk.domain.values import Money
from casedesk.projections.deadline_clocks import ClockRisk
from casedesk.projections.timeline.shapes import CaseView, TimelineAnswer


class EventRef(msgspec.Struct, frozen=True):
    type: str
    version: int


class NewCard(msgspec.Struct, frozen=True):
    card_id: str
    last4: str


class CommandAnswer(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Every command's answer; the route-specific fields appear where they apply."""

    case_id: UUID
    version: int
    position: int | None
    events: list[EventRef]
    contact_id: UUID | None = None
    # The six digits the agent says on a call we place, for the customer to check it through the IVR.
    verification_code: Annotated[str, msgspec.Meta(pattern="^[0-9]{6}$")] | None = None
    dispute_id: UUID | None = None
    note_id: UUID | None = None
    text: str | None = None
    callback_id: UUID | None = None
    credit_id: UUID | None = None
    # Four eyes: the request a command above the approval limit became (202), or the one decided.
    approval_id: UUID | None = None
    state: str | None = None  # approved, rejected: what a decision made of the approval
    suspended: list[str] | None = None
    new_card: NewCard | None = None


class MergeAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """A merge's answer: the absorbed case (path) after it, and the survivor it now reads as part of."""

    case_id: UUID
    version: int
    position: int | None
    events: list[EventRef]
    merged_into: UUID
    survivor_version: int


class UnmergeAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """An unmerge's answer: the survivor (path) after it, and the case given back its own life."""

    case_id: UUID
    version: int
    position: int | None
    events: list[EventRef]
    absorbed_case_id: UUID
    absorbed_version: int


class Health(msgspec.Struct, frozen=True, kw_only=True):
    status: str | None = None
    ready: bool | None = None
    database: bool | None = None
    detail: str | None = None


class QueueDepth(msgspec.Struct, frozen=True, kw_only=True):
    """One queue as supervisors and agents see it."""

    queue: str
    depth: int
    oldest_age_seconds: int
    overdue: int
    claims_last_hour: int
    resolutions_last_hour: int


class QueuesAnswer(msgspec.Struct, frozen=True, kw_only=True):
    items: list[QueueDepth]


class QueueItem(msgspec.Struct, frozen=True, kw_only=True):
    """A case waiting in a queue, in claim order."""

    case_id: UUID
    priority: int
    reason: str
    due_at: datetime | None
    enqueued_at: datetime
    amount_at_risk: Money | None


class QueueItemsAnswer(msgspec.Struct, frozen=True, kw_only=True):
    items: list[QueueItem]
    next_cursor: str | None


class ClaimAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """The claimed case, now assigned to the caller: its view and timeline in one answer."""

    case_id: UUID
    version: int
    position: int
    case: CaseView
    timeline: TimelineAnswer


class CustomerOpenCase(msgspec.Struct, frozen=True, kw_only=True):
    case_id: UUID
    reason: str
    opened_at: datetime


class FoundCustomer(msgspec.Struct, frozen=True, kw_only=True):
    customer_id: str
    name: str
    open_cases: list[CustomerOpenCase]


class OutboundAttempt(msgspec.Struct, frozen=True, kw_only=True):
    """A call the issuer made to that number: who, when, why (what a returning caller is told first)."""

    at: datetime
    department: str
    purpose: str | None
    agent_name: str
    case_id: UUID | None  # null (and purpose null) when the call was about a case the caller may not see


class LookupAnswer(msgspec.Struct, frozen=True, kw_only=True):
    customers: list[FoundCustomer]
    recent_outbound: list[OutboundAttempt]


class FlaggedMerchant(msgspec.Struct, frozen=True, kw_only=True):
    merchant: str
    reason: str
    flagged_at: datetime
    flagged_by: str
    disputes: int


class DisputedMerchant(msgspec.Struct, frozen=True, kw_only=True):
    merchant: str
    disputes: int
    cases: int


class FlaggedMerchantsAnswer(msgspec.Struct, frozen=True, kw_only=True):
    items: list[FlaggedMerchant]
    most_disputed: list[DisputedMerchant]


class MerchantFlagAnswer(msgspec.Struct, frozen=True, kw_only=True):
    merchant: str
    reason: str
    version: int
    position: int


class ContactDetailsAnswer(msgspec.Struct, frozen=True, kw_only=True):
    case_id: UUID
    version: int
    daytime_phone: str | None


class AgentHolding(msgspec.Struct, frozen=True, kw_only=True):
    agent_id: str
    name: str
    cases: int


class HourCount(msgspec.Struct, frozen=True, kw_only=True):
    hour: datetime
    claims: int
    resolutions: int


class DashboardAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """The supervisors' board; the stream sends the same as each event's data."""

    generated_at: datetime
    queues: list[QueueDepth]
    agents: list[AgentHolding]
    claims_per_hour: list[HourCount]
    positions: dict[str, int]
    clocks: list[ClockRisk] = []  # per rule: clocks at risk (due within 48 h), breached, met late


CaseViewAnswer = CaseView
__all__ = ["CaseViewAnswer", "CommandAnswer", "Health", "TimelineAnswer"]
Anything = dict[str, Any]
