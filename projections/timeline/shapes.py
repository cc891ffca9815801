"""The shapes of the case view and the handoff timeline (GET /v1/cases/{id}, /timeline).

Mutable Structs on purpose: case_file.py folds events into them in place, which
keeps a 1,000-event replay linear. gc=False: they form trees, never cycles, and
the projection keeps tens of thousands of files in memory; tracked, every full
GC pass walked them all (a third of a rebuild's time at 100,000 cases).
"""

from __future__ import annotations

from datetime import date, datetime
from uuid import UUID

import msgspec

from casedesk.domain import events as ev
from casedesk.domain.clocks import Clock, ClockBook
from casedesk.domain.values import Actor, Money


class Person(msgspec.Struct, kw_only=True, gc=False):
    id: str
    name: str
    department: str


class CustomerView(msgspec.Struct, kw_only=True, gc=False):
    customer_id: str
    name: str
    registered_phone: str


class CardView(msgspec.Struct, kw_only=True, gc=False):
    card_id: str
    last4: str
    network: str
    kind: str
    primary_card_id: str | None
    product: str = "credit"
    state: str = "active"
    replaced_by: str | None = None
    suspended_reason: str | None = None
    suspended_at: datetime | None = None
    delivery: str | None = None
    expedited: bool | None = None


class DisputeStageView(msgspec.Struct, kw_only=True, gc=False):
    stage: str
    network_reference: str | None
    note: str
    at: datetime
    by: Person


class ProvisionalCreditView(msgspec.Struct, kw_only=True, gc=False):
    credit_id: UUID
    amount: Money
    state: str  # granted, reversed
    at: datetime
    by: Person
    reversed_at: datetime | None = None
    reason: str | None = None
    # Above the approval limit: who approved it (`by`) and who asked for it.
    approved_by: Person | None = None
    requested_by: Person | None = None


class LiabilityWaiverView(msgspec.Struct, kw_only=True, gc=False):
    dispute_id: UUID | None  # None: the whole case
    amount: Money | None
    finality: str  # pending, final
    note: str
    at: datetime
    by: Person
    # Above the approval limit: who approved it (`by`) and who asked for it.
    approved_by: Person | None = None
    requested_by: Person | None = None


class ApprovalView(msgspec.Struct, kw_only=True, gc=False):
    """A waiver or credit above the approval limit: what was asked, by whom, and what became of it."""

    approval_id: UUID
    kind: str  # liability_waiver, provisional_credit
    state: str  # pending, approved, rejected, expired
    amount: Money  # what it gives away
    limit: Money  # the limit for its currency it is above
    dispute_id: UUID | None
    credit_id: UUID | None
    note: str  # the requester's (a waiver's note)
    requested_at: datetime
    requested_by: Person
    expires_at: datetime
    decided_at: datetime | None = None
    decided_by: Person | None = None  # the approver or rejecter; casedesk for an expiry
    decision_note: str | None = None


class DisputeView(msgspec.Struct, kw_only=True, gc=False):
    dispute_id: UUID
    transaction_id: str
    merchant: str
    amount: Money
    reason_code: str
    network: str
    status: str = "open"
    outcome: str | None = None
    liability_waived: bool = False
    opened_at: datetime | None = None
    transaction_date: date | None = None
    foreign: bool = False
    point_of_sale: bool = False
    stage: str | None = None  # where it stands in the card network's lifecycle
    stages: list[DisputeStageView] = []
    provisional_credits: list[ProvisionalCreditView] = []


class PaymentStopView(msgspec.Struct, kw_only=True, gc=False):
    scope: str
    merchant: str | None
    at: datetime
    by: Person


class CallbackView(msgspec.Struct, kw_only=True, gc=False):
    callback_id: UUID
    due_at: datetime
    phone: str
    reason: str
    department: str
    status: str = "scheduled"


class NoteView(msgspec.Struct, kw_only=True, gc=False):
    note_id: UUID
    text: str
    for_department: str | None
    at: datetime
    by: Person


class ContactView(msgspec.Struct, kw_only=True, gc=False):
    contact_id: UUID
    direction: str
    channel: str
    phone: str | None
    department: str
    purpose: str | None
    started_at: datetime
    by: Person
    to_registered_number: bool
    outcome: str | None = None
    summary: str | None = None
    ended_at: datetime | None = None


class CallCheckView(msgspec.Struct, kw_only=True, gc=False):
    """The customer checked one of our calls (IVR or app): when, which call, what became of the reference."""

    at: datetime
    contact_id: UUID | None
    call_at: datetime
    channel: str
    code: str
    text: str


class EscalationView(msgspec.Struct, kw_only=True, gc=False):
    """An escalation; open until the department gives its `decision`."""

    to_department: str
    reason: str
    priority: int
    at: datetime
    by: Person
    status: str = "open"
    decision: str | None = None
    concluded_at: datetime | None = None
    concluded_by: Person | None = None


class IdentityView(msgspec.Struct, kw_only=True, gc=False):
    verified_in_contact: UUID | None = None
    locked: bool = False


class LastContact(msgspec.Struct, kw_only=True, gc=False):
    contact_id: UUID
    at: datetime
    by: Person
    channel: str
    direction: str
    outcome: str | None
    summary: str | None


class Verified(msgspec.Struct, kw_only=True, gc=False):
    method: str
    contact_id: UUID | None
    at: datetime
    by: Person


class HandoffItem(msgspec.Struct, kw_only=True, gc=False, omit_defaults=True):
    kind: str
    text: str
    due_at: datetime | None = None
    since: datetime | None = None  # waiting since (a processor instruction); reads add `age_seconds`


class InstructionView(msgspec.Struct, kw_only=True, gc=False):
    """A card-processor instruction a decision caused, and what the processor answered."""

    token: str
    instruction: str
    card_id: str
    state: str  # pending, confirmed, rejected
    requested_at: datetime
    confirmed_at: datetime | None = None
    processor_reference: str | None = None
    rejected_at: datetime | None = None
    status: int | None = None
    code: str | None = None
    reason: str | None = None


class Handoff(msgspec.Struct, kw_only=True, gc=False):
    last_contact: LastContact | None = None
    verified: Verified | None = None
    promised: list[HandoffItem] = []
    pending: list[HandoffItem] = []
    # What escalated-to departments decided, for the agent who takes the case back.
    decisions: list[HandoffItem] = []
    # The customer's checks of our calls, newest first: read before asking a returning caller anything.
    call_checks: list[HandoffItem] = []


class MergedCaseView(msgspec.Struct, kw_only=True, gc=False):
    """A case merged into this one: when, by whom, why, and what this case carries of it meanwhile.

    The carried parts (its open disputes, owed callbacks, running clocks, card
    digits and contacts) are the absorbed case as it stood at the merge (it takes
    no command while merged); they go back with it on unmerge.
    """

    case_id: UUID
    merged_at: datetime
    by: Person
    reason: str
    version_at_merge: int
    position_at_merge: int | None
    different_customer: bool = False
    last4s: list[str] = []
    disputes: list[DisputeView] = []
    callbacks: list[CallbackView] = []
    clocks: list[Clock] = []
    contacts: list[ContactView] = []


class CaseView(msgspec.Struct, kw_only=True, gc=False):
    """GET /v1/cases/{id}: the case as the next agent needs it."""

    case_id: UUID
    version: int
    status: str
    reason: str
    opened_at: datetime
    summary: str
    customer: CustomerView
    cards: list[CardView]
    amount_at_risk: Money | None
    departments: list[str]
    priority: int | None = None
    escalations: list[EscalationView] = []
    disputes: list[DisputeView] = []
    payment_stops: list[PaymentStopView] = []
    callbacks: list[CallbackView] = []
    # Deadline clocks as the events left them; a running clock past due_at is breached
    # once read (services.case_clocks shows it as of the moment of reading).
    clocks: list[Clock] = []
    contacts: list[ContactView] = []
    call_checks: list[CallCheckView] = []
    assignee: Person | None = None
    pinned_note: NoteView | None = None
    identity: IdentityView = msgspec.field(default_factory=IdentityView)
    online_access_suspended: bool = False
    case_liability_waived: bool = False
    liability_waivers: list[LiabilityWaiverView] = []
    daytime_phone: str | None = None
    compromise: list[str] = []
    resolution: str | None = None
    claimed_from: str | None = None
    flagged_merchants: list[str] = []
    connected_contacts: int = 0
    handoff: Handoff = msgspec.field(default_factory=Handoff)
    updated_at: datetime | None = None
    instructions: list[InstructionView] = []
    # Merge: the case this one was merged into (it then takes no command), and the cases merged into it.
    merged_into: UUID | None = None
    merged_cases: list[MergedCaseView] = []
    # Four eyes: waivers and credits above the approval limit, pending or decided.
    approvals: list[ApprovalView] = []


class TimelineEntry(msgspec.Struct, kw_only=True, gc=False, omit_defaults=True):
    """One line of the timeline. omit_defaults touches only `from_case_id` (the rest have no
    default): stored entries never carry it; a survivor's timeline marks every entry with the
    case it came from while cases are merged into it."""

    at: datetime
    kind: str
    actor: Person
    contact_id: UUID | None
    text: str
    version: int
    from_case_id: UUID | None = None


class TimelineAnswer(msgspec.Struct, kw_only=True, gc=False):
    """GET /v1/cases/{id}/timeline: the pinned note first, then every entry in order."""

    case_id: UUID
    version: int
    pinned_note: NoteView | None
    entries: list[TimelineEntry]


class CaseFile(msgspec.Struct, kw_only=True, gc=False):
    """The view and timeline of one case, folded together.

    `timeline` holds the entries folded into this copy: all of them when it was
    folded from the first event, only the new ones when it was read back from its
    case_files row (whose entries are rows of their own, never rewritten).
    """

    view: CaseView
    timeline: list[TimelineEntry] = []
    started: dict[str, ev.ContactStarted] = {}
    pinned_entry: TimelineEntry | None = None  # the entry of the note view.pinned_note shows
    clock_book: ClockBook = msgspec.field(default_factory=ClockBook)  # what view.clocks is derived from
    clocks_moved: bool = False  # a clock started or changed since the file was last written


class FileRest(msgspec.Struct, kw_only=True, gc=False):
    """What a case file holds beyond its view and timeline entries: the `file`
    column of case_files (the contacts started, for the sentences of later
    events, and the pinned note's entry, which the timeline shows first)."""

    started: dict[str, ev.ContactStarted] = {}
    pinned_entry: TimelineEntry | None = None
    clock_book: ClockBook = msgspec.field(default_factory=ClockBook)


def person(actor: Actor) -> Person:
    return Person(id=actor.id, name=actor.name, department=actor.department)
