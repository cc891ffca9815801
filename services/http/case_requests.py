"""Request bodies of the case routes, field for field as CONTRACT.md names them.

Frozen Structs that refuse unknown fields; they are the API's schema (and the
OpenAPI document's), converted into domain values at the edge.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from casedesk.domain.values import (
    CardProduct,
    CaseReason,
    CompromiseSource,
    ContactChannel,
    ContactDirection,
    ContactOutcome,
    Delivery,
    DisputeOutcome,
    DisputeStage,
    FeeBearer,
    IdentityMethod,
    Money,
    NoticeChannel,
    NoticeSubject,
    StopScope,
    TransactionAnswer,
    WaiverFinality,
)

# No NUL in any text: PostgreSQL's text cannot hold one (request_body refuses it with its own message;
# the pattern tells clients through the OpenAPI document).
NO_NUL = r"^[^\x00]*$"
Plain = Annotated[str, msgspec.Meta(pattern=NO_NUL)]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=4000, pattern=NO_NUL)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=NO_NUL)]
Short = Annotated[str, msgspec.Meta(min_length=1, max_length=120, pattern=NO_NUL)]
# Any way a person writes a number (full-width digits too); services/phone_numbers.py reads it as E.164.
PHONE_PATTERN = r"^[+＋]?[(（]?[0-9０-９][0-9０-９ 　()（）.\-‐－ー]{3,30}$"
Phone = Annotated[str, msgspec.Meta(
    pattern=PHONE_PATTERN, description="A phone number however written (03-1234-5678, +81 3 1234 5678, full-width"
    " digits), read as E.164 in CASEDESK_PHONE_REGION when it has no country code; 422 if it is not one")]
Last4 = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{4}$")]
DEPARTMENT_PATTERN = r"^[a-z][a-z0-9_]{1,62}$"  # also every queue's name (a department's queue)
Department = Annotated[str, msgspec.Meta(pattern=DEPARTMENT_PATTERN)]
# Every time a client sends carries its offset (CONTRACT.md: RFC 3339 with offset): a naive time
# names no instant, and compared with an aware one it could only fail.
AwareTime = Annotated[datetime, msgspec.Meta(tz=True)]


class Request(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every request body."""


class CustomerIn(Request, kw_only=True):
    customer_id: Short
    name: Name
    registered_phone: Phone
    date_of_birth: Plain | None = None


class CardIn(Request, kw_only=True):
    card_id: Short
    last4: Last4
    network: Short
    kind: Literal["primary", "family"]
    primary_card_id: Short | None = None
    product: CardProduct = "credit"


class ContactIn(Request, kw_only=True):
    direction: ContactDirection
    channel: ContactChannel
    phone: Phone | None = None
    department: Department
    purpose: Text | None = None


class OpenCase(Request, kw_only=True):
    customer: CustomerIn
    cards: Annotated[list[CardIn], msgspec.Meta(min_length=1, max_length=20)]
    reason: CaseReason
    channel: ContactChannel
    summary: Text
    amount_at_risk: Money | None = None
    contact: ContactIn | None = None
    alert_id: Short | None = None  # the fraud engine's alert: one case per alert, however often sent


class StartContact(ContactIn, kw_only=True):
    pass


class EndContact(Request, kw_only=True):
    outcome: ContactOutcome
    summary: Text


class CheckIdentity(Request, kw_only=True):
    contact_id: UUID
    method: IdentityMethod
    passed: bool
    factors: Annotated[list[Short], msgspec.Meta(max_length=20)]


class UnlockIdentity(Request, kw_only=True):
    reason: Text


class TransactionIn(Request, kw_only=True):
    transaction_id: Short
    merchant: Short
    amount: Money
    occurred_at: AwareTime
    answer: TransactionAnswer


class ReviewTransactions(Request, kw_only=True):
    contact_id: UUID
    transactions: Annotated[list[TransactionIn], msgspec.Meta(min_length=1, max_length=200)]


class DisputeCharge(Request, kw_only=True):
    contact_id: UUID
    transaction_id: Short
    merchant: Short
    amount: Money
    reason_code: Short
    network: Short
    transaction_date: date | None = None
    foreign: bool = False
    point_of_sale: bool = False


class ResolveDispute(Request, kw_only=True):
    outcome: DisputeOutcome
    note: Text


class RecordDisputeStage(Request, kw_only=True):
    stage: DisputeStage
    network_reference: Short | None = None
    note: Text


class NotifyCustomer(Request, kw_only=True):
    channel: NoticeChannel
    subject: NoticeSubject
    summary: Text


class WaiveLiability(Request, kw_only=True):
    contact_id: UUID
    dispute_id: UUID | None = None
    note: Text
    amount: Money | None = None
    finality: WaiverFinality = "pending"


class GrantProvisionalCredit(Request, kw_only=True):
    dispute_id: UUID
    amount: Money
    contact_id: UUID | None = None


class ReverseProvisionalCredit(Request, kw_only=True):
    reason: Text


class MergeCase(Request, kw_only=True):
    """Merge the case in the path (a duplicate) into `into_case_id`, the survivor."""

    into_case_id: UUID
    reason: Text
    # Cases of two different customers: a supervisor's call (an agent sending true is answered 403).
    different_customer_ok: bool = False


class UnmergeCase(Request, kw_only=True):
    """Undo the merge of `case_id` (the absorbed case) into the case in the path."""

    case_id: UUID
    reason: Text


class StopPayments(Request, kw_only=True):
    contact_id: UUID
    scope: StopScope
    merchant: Short | None = None


class SuspendCard(Request, kw_only=True):
    reason: Text
    include_linked: bool = False


class FeeIn(Request, kw_only=True):
    """Without a bearer, the case decides: a breached merchant on a breach case, else the issuer."""

    amount: Money
    bearer: FeeBearer | None = None
    merchant: Short | None = None


class ReissueCard(Request, kw_only=True):
    contact_id: UUID
    delivery: Delivery
    expedite: bool = False
    fee: FeeIn


class RecordCardDestroyed(Request, kw_only=True):
    branch: Short
    certificate_id: Short


class SuspendOnlineAccess(Request, kw_only=True):
    reason: Text


class RecordCompromise(Request, kw_only=True):
    source: CompromiseSource
    detail: Text
    domain: Short | None = None
    breach_id: UUID | None = None


class RecordContactDetails(Request, kw_only=True):
    contact_id: UUID
    daytime_phone: Phone


class AddNote(Request, kw_only=True):
    text: Text
    for_department: Department | None = None
    pinned: bool = False


class Escalate(Request, kw_only=True):
    to_department: Department
    reason: Text
    priority: Annotated[int, msgspec.Meta(ge=1, le=5)]


class ConcludeEscalation(Request, kw_only=True):
    """The escalated department's decision, for the agent who takes the case back."""

    decision: Text


class ScheduleCallback(Request, kw_only=True):
    due_at: AwareTime
    phone: Annotated[str, msgspec.Meta(pattern=r"^registered$|" + PHONE_PATTERN)]
    reason: Text
    department: Department


class CloseCallback(Request, kw_only=True):
    note: Text | None = None


class RescheduleCallback(Request, kw_only=True):
    due_at: AwareTime
    note: Text | None = None


class WaiveCallback(Request, kw_only=True):
    reason: Text


class Release(Request, kw_only=True):
    note: Text | None = None


class ResolveCase(Request, kw_only=True):
    resolution: Text  # free text like the summary (redacted, not refused): the same bound
    summary: Text


class ReopenCase(Request, kw_only=True):
    reason: Text
