"""The fraud case's events: facts in the past tense, one stream per case.

Each event is a frozen, kw-only msgspec Struct. Its import path is its stored
topic, so never move or rename one; add fields only with defaults. Every event
says who acted (`actor`), when (`timestamp`) and in which contact, if any.
Free text in events has already been through card-number redaction.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING
from uuid import UUID

import msgspec

from .values import (
    Actor,
    ApprovalKind,
    AskedCommand,
    Card,
    CaseReason,
    CodeCheck,
    CompromiseSource,
    ContactChannel,
    ContactDirection,
    ContactOutcome,
    Customer,
    Delivery,
    DisputeOutcome,
    DisputeStage,
    Fee,
    FeeBearer,
    IdentityMethod,
    InstructionKind,
    Money,
    NoticeChannel,
    NoticeSubject,
    OpeningChannel,
    PhoneNumber,
    ReviewedTransaction,
    StopScope,
    VerificationChannel,
    WaiverFinality,
)

if TYPE_CHECKING:
    from eventsourcing.domain import DomainEventProtocol


class RecordedEvent(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """What every event carries, of any stream: position in it, time, actor and contact."""

    originator_id: UUID
    originator_version: int
    timestamp: datetime
    actor: Actor
    contact_id: UUID | None = None


class CaseEvent(RecordedEvent, frozen=True, kw_only=True):
    """An event of a fraud case's stream (merchant flags and breaches have streams of their own)."""


class CaseOpened(CaseEvent, frozen=True, kw_only=True):
    """A case was opened for a customer's cards (masked snapshot)."""

    customer: Customer
    cards: tuple[Card, ...]
    reason: CaseReason
    channel: OpeningChannel
    summary: str
    amount_at_risk: Money | None = None
    alert_id: str | None = None  # the fraud engine's alert that opened it


class ContactStarted(CaseEvent, frozen=True, kw_only=True):
    """A call, chat, branch visit or email began; `contact_id` names it."""

    direction: ContactDirection
    channel: ContactChannel
    phone: PhoneNumber | None
    department: str
    purpose: str | None
    to_registered_number: bool


class ContactEnded(CaseEvent, frozen=True, kw_only=True):
    """A contact ended, with how it went and what was said."""

    outcome: ContactOutcome
    summary: str


class IdentityVerified(CaseEvent, frozen=True, kw_only=True):
    """The customer's identity passed a check in this contact (factor names, never values)."""

    method: IdentityMethod
    factors: tuple[str, ...]


class IdentityVerificationFailed(CaseEvent, frozen=True, kw_only=True):
    """An identity check failed; `failures_in_24h` counts this one."""

    method: IdentityMethod
    factors: tuple[str, ...]
    failures_in_24h: int


class IdentityLocked(CaseEvent, frozen=True, kw_only=True):
    """Too many failed checks: no more checks until a supervisor unlocks."""

    failures_in_24h: int


class IdentityUnlocked(CaseEvent, frozen=True, kw_only=True):
    """A supervisor allowed identity checks again (failure count starts afresh)."""

    reason: str


class TransactionReviewed(CaseEvent, frozen=True, kw_only=True):
    """One transaction was walked through and the customer answered."""

    transaction: ReviewedTransaction


class ChargeDisputed(CaseEvent, frozen=True, kw_only=True):
    """A charge was disputed with the card network."""

    dispute_id: UUID
    transaction_id: str
    merchant: str
    amount: Money
    reason_code: str
    network: str
    # What the deadline clocks need (absent on disputes recorded before them).
    transaction_date: date | None = None
    foreign: bool = False
    point_of_sale: bool = False


class DisputeResolved(CaseEvent, frozen=True, kw_only=True):
    """A dispute reached its outcome."""

    dispute_id: UUID
    outcome: DisputeOutcome
    note: str


class DisputeStageRecorded(CaseEvent, frozen=True, kw_only=True):
    """The dispute moved a step in the card network's lifecycle (with the network's reference)."""

    dispute_id: UUID
    stage: DisputeStage
    network_reference: str | None
    note: str


class CustomerLiabilityWaived(CaseEvent, frozen=True, kw_only=True):
    """The customer pays nothing for a dispute, or (dispute_id None) for the whole case."""

    dispute_id: UUID | None
    note: str
    # How much, and whether for good (absent on waivers recorded before them).
    amount: Money | None = None
    finality: WaiverFinality = "pending"
    # Above the approval limit: granted when `approved_by` approved what `requested_by` asked (four eyes).
    approval_id: UUID | None = None
    approved_by: Actor | None = None
    requested_by: Actor | None = None


class ProvisionalCreditGranted(CaseEvent, frozen=True, kw_only=True):
    """The customer's account was credited for a disputed charge while the dispute is investigated."""

    credit_id: UUID
    dispute_id: UUID
    amount: Money
    # Above the approval limit: granted when `approved_by` approved what `requested_by` asked (four eyes).
    approval_id: UUID | None = None
    approved_by: Actor | None = None
    requested_by: Actor | None = None


class ProvisionalCreditReversed(CaseEvent, frozen=True, kw_only=True):
    """A provisional credit was taken back (the dispute went against the customer, or it was a mistake)."""

    credit_id: UUID
    reason: str


class PaymentStopped(CaseEvent, frozen=True, kw_only=True):
    """Charges are stopped: from one merchant, all overseas, or all.

    `card_ids`: the cards still in use when it was decided, each of which gets
    a spend control at the card processor (empty on events from before that).
    """

    scope: StopScope
    merchant: str | None
    card_ids: tuple[str, ...] = ()


class CardSuspended(CaseEvent, frozen=True, kw_only=True):
    """A card was suspended; `linked` when it went with a linked card."""

    card_id: str
    reason: str
    linked: bool


class OnlineAccessSuspended(CaseEvent, frozen=True, kw_only=True):
    """The cardholder's online account access was suspended."""

    reason: str


class ReplacementCardIssued(CaseEvent, frozen=True, kw_only=True):
    """A new card replaces a suspended one."""

    old_card_id: str
    new_card_id: str
    new_last4: str
    delivery: Delivery
    expedited: bool
    fee: Fee


class CardDestroyed(CaseEvent, frozen=True, kw_only=True):
    """A replaced card was physically destroyed at a branch against a certificate."""

    card_id: str
    branch: str
    certificate_id: str


class CompromiseSuspected(CaseEvent, frozen=True, kw_only=True):
    """Where the card data probably leaked; a breach names who pays for the reissue."""

    source: CompromiseSource
    detail: str
    domain: str | None
    breach_id: UUID | None
    reissue_fee_bearer: FeeBearer | None = None
    fee_merchant: str | None = None


class ContactDetailsRecorded(CaseEvent, frozen=True, kw_only=True):
    """The customer gave a daytime phone for follow-up."""

    daytime_phone: PhoneNumber


class HandoffNoteAdded(CaseEvent, frozen=True, kw_only=True):
    """A note for whoever picks the case up next."""

    note_id: UUID
    text: str
    for_department: str | None
    pinned: bool


class CaseEscalated(CaseEvent, frozen=True, kw_only=True):
    """The case went to a department's queue; priority 1 is the highest."""

    to_department: str
    reason: str
    priority: int


class EscalationConcluded(CaseEvent, frozen=True, kw_only=True):
    """The department a case was escalated to gave its decision; the case leaves its queue."""

    department: str
    decision: str


class CallbackScheduled(CaseEvent, frozen=True, kw_only=True):
    """A callback was promised; `phone` None means the registered number."""

    callback_id: UUID
    due_at: datetime
    phone: PhoneNumber | None
    to_registered_number: bool
    reason: str
    department: str


class CallbackCompleted(CaseEvent, frozen=True, kw_only=True):
    """A promised callback was made."""

    callback_id: UUID
    note: str


class CallbackMissed(CaseEvent, frozen=True, kw_only=True):
    """A promised callback could not be made (or reached no one)."""

    callback_id: UUID
    note: str


class CallbackRescheduled(CaseEvent, frozen=True, kw_only=True):
    """A promised callback (missed, or not yet due) was moved to a new time."""

    callback_id: UUID
    due_at: datetime
    note: str


class CallbackWaived(CaseEvent, frozen=True, kw_only=True):
    """A promised callback is no longer owed (the customer called in, or declined it); `reason` says why."""

    callback_id: UUID
    reason: str


class CaseAssigned(CaseEvent, frozen=True, kw_only=True):
    """An agent now holds the case; `queue` names the queue it was claimed from."""

    agent_id: str
    agent_name: str
    queue: str | None = None


class CaseReleased(CaseEvent, frozen=True, kw_only=True):
    """The agent holding the case let it go."""

    agent_id: str
    note: str


class CaseResolved(CaseEvent, frozen=True, kw_only=True):
    """The case is done; nobody holds it any more."""

    resolution: str
    summary: str


class CaseReopened(CaseEvent, frozen=True, kw_only=True):
    """A resolved case was opened again."""

    reason: str


class ProcessorInstructionConfirmed(CaseEvent, frozen=True, kw_only=True):
    """The card processor applied an instruction (recorded by casedesk itself, not an agent).

    `token` is the instruction's idempotency token, `at` when the processor says
    it applied it; `last4` names the card for people.
    """

    instruction: InstructionKind
    token: str
    card_id: str
    last4: str
    processor_reference: str
    at: datetime


class ProcessorInstructionRejected(CaseEvent, frozen=True, kw_only=True):
    """The card processor refused an instruction for good (a 4xx other than 408, 409, 429)."""

    instruction: InstructionKind
    token: str
    card_id: str
    last4: str
    status: int
    code: str
    reason: str


class CustomerNotified(CaseEvent, frozen=True, kw_only=True):
    """The customer was told something by letter, email or call (e.g. an investigation's result)."""

    channel: NoticeChannel
    subject: NoticeSubject
    summary: str


class CallVerified(CaseEvent, frozen=True, kw_only=True):
    """The customer checked, through the IVR or the app, that one of our calls (`contact_id`) was real.

    `code` says what became of the reference they gave: matched, wrong, not
    given, or locked (too many wrong references for the number: none matches
    for an hour). The reference itself is never recorded.
    """

    channel: VerificationChannel
    call_at: datetime
    code: CodeCheck


class CaseMerged(CaseEvent, frozen=True, kw_only=True):
    """A duplicate case of the customer was merged into this one (the survivor).

    The absorbed case's events stay in its own stream; `absorbed_version` and
    `absorbed_position` say how far that stream went when it was merged (its
    version and the notification id of its last event).
    """

    absorbed_case_id: UUID
    absorbed_version: int
    absorbed_position: int | None
    reason: str
    different_customer: bool = False


class CaseMergedInto(CaseEvent, frozen=True, kw_only=True):
    """This case was merged into `survivor_case_id`: it takes no command until unmerged."""

    survivor_case_id: UUID
    reason: str


class CaseUnmerged(CaseEvent, frozen=True, kw_only=True):
    """A merge was undone; recorded on both cases (`survivor_case_id` absorbed `absorbed_case_id`)."""

    survivor_case_id: UUID
    absorbed_case_id: UUID
    reason: str


class ApprovalRequested(CaseEvent, frozen=True, kw_only=True):
    """Money given away above the approval limit waits for a second person (four eyes).

    `command` holds what the agent asked for, as they asked it; `amount` is what
    it gives away and `limit` the limit for its currency that it is above. It
    waits until `expires_at` (72 h) for a supervisor other than `requested_by`.
    """

    approval_id: UUID
    kind: ApprovalKind
    command: AskedCommand
    amount: Money
    limit: Money
    requested_by: Actor
    expires_at: datetime


class ApprovalGranted(CaseEvent, frozen=True, kw_only=True):
    """A supervisor (the actor) approved a request of `requested_by`; the granted effect follows it."""

    approval_id: UUID
    note: str
    requested_by: Actor


class ApprovalRejected(CaseEvent, frozen=True, kw_only=True):
    """A supervisor (the actor) rejected a request of `requested_by`: nothing is given."""

    approval_id: UUID
    note: str
    requested_by: Actor


class ApprovalExpired(CaseEvent, frozen=True, kw_only=True):
    """Nobody decided a request within 72 h (recorded by casedesk itself): nothing is given."""

    approval_id: UUID
    requested_by: Actor
    expires_at: datetime


class CustomerDataErased(CaseEvent, frozen=True, kw_only=True):
    """The customer's personal data on this case was erased: their data key is destroyed.

    Recorded on each of the customer's cases (`customer_id` names whose key);
    from then on the case's sealed personal fields read as "[erased]", its
    skeleton (types, times, actors, amounts, last4, decisions) remains.
    """

    customer_id: str
    reason: str


EVENT_TYPES: tuple[type[CaseEvent], ...] = (
    CaseOpened,
    ContactStarted,
    ContactEnded,
    IdentityVerified,
    IdentityVerificationFailed,
    IdentityLocked,
    IdentityUnlocked,
    TransactionReviewed,
    ChargeDisputed,
    DisputeResolved,
    CustomerLiabilityWaived,
    PaymentStopped,
    CardSuspended,
    OnlineAccessSuspended,
    ReplacementCardIssued,
    CardDestroyed,
    CompromiseSuspected,
    ContactDetailsRecorded,
    HandoffNoteAdded,
    CaseEscalated,
    EscalationConcluded,
    CallbackScheduled,
    CallbackCompleted,
    CallbackMissed,
    CallbackRescheduled,
    CallbackWaived,
    CaseAssigned,
    CaseReleased,
    CaseResolved,
    CaseReopened,
    ProcessorInstructionConfirmed,
    ProcessorInstructionRejected,
    CustomerNotified,
    DisputeStageRecorded,
    CallVerified,
    ProvisionalCreditGranted,
    ProvisionalCreditReversed,
    CaseMerged,
    CaseMergedInto,
    CaseUnmerged,
    ApprovalRequested,
    ApprovalGranted,
    ApprovalRejected,
    ApprovalExpired,
    CustomerDataErased,
)

if TYPE_CHECKING:
    # mypy proves the events fit the library's protocol structurally.
    _fits_library: type[DomainEventProtocol[UUID]] = CaseEvent
