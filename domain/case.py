"""The fraud case's state, and how each event changes it.

`FraudCase` holds only what the rules need (plus a few obvious facts); the
case view, timeline and queues are projections. State changes in exactly one
place: `evolve`, one small applier per event. Everything here is msgspec
encodable, so a case can be snapshotted with `msgspec.json`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

import msgspec
from msgspec.structs import replace

from . import events as ev
from .case_parts import (
    Assignee,
    BreachFee,
    CallbackState,
    CardState,
    ContactState,
    DisputeState,
    PaymentStop,
    PendingApproval,
    ProvisionalCredit,
)
from .values import CaseReason, CaseStatus, Customer, Money, PhoneNumber

__all__ = [
    "Assignee",
    "BreachFee",
    "CallbackState",
    "CardState",
    "ContactState",
    "DisputeState",
    "FraudCase",
    "PaymentStop",
    "PendingApproval",
    "ProvisionalCredit",
    "evolve",
    "replay",
]

if TYPE_CHECKING:
    from eventsourcing.domain import ImmutableAggregateProtocol

FAILURE_WINDOW = timedelta(hours=24)
HOME_DEPARTMENT = "fraud"


class FraudCase(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One fraud case as its events have made it. Dict keys are ids as strings."""

    id: UUID
    version: int
    status: CaseStatus
    reason: CaseReason
    opened_at: datetime
    customer: Customer
    amount_at_risk: Money | None
    cards: dict[str, CardState]
    contacts: dict[str, ContactState] = {}
    open_contact_id: UUID | None = None
    identity_locked: bool = False
    recent_failures: tuple[datetime, ...] = ()
    disputes: dict[str, DisputeState] = {}
    disputed_transactions: dict[str, str] = {}
    case_liability_waived: bool = False
    case_liability_waiver_final: bool = False
    provisional_credits: dict[str, ProvisionalCredit] = {}
    payment_stops: tuple[PaymentStop, ...] = ()
    online_access_suspended: bool = False
    daytime_phone: PhoneNumber | None = None
    callbacks: dict[str, CallbackState] = {}
    departments: tuple[str, ...] = (HOME_DEPARTMENT,)
    # Departments escalated to that have not given their decision yet.
    open_escalations: tuple[str, ...] = ()
    priority: int | None = None
    assignee: Assignee | None = None
    breach_fee: BreachFee | None = None
    # Tokens of processor instructions whose answer is recorded (confirmed or refused).
    answered_instructions: frozenset[str] = frozenset()
    # Merge: the survivor this case was merged into (it then takes no command), and
    # the cases merged into this one, in the order they were merged.
    merged_into: UUID | None = None
    absorbed: tuple[UUID, ...] = ()
    # Four eyes: requests above the approval limit, by approval id (decided ones stay, with their status).
    approvals: dict[str, PendingApproval] = {}
    # When the customer's personal data was first erased (their data key destroyed).
    personal_data_erased_at: datetime | None = None

    def contact(self, contact_id: UUID) -> ContactState | None:
        return self.contacts.get(str(contact_id))


if TYPE_CHECKING:
    # mypy proves the state fits the library's immutable-aggregate protocol.
    _fits_library: type[ImmutableAggregateProtocol[UUID]] = FraudCase


def evolve(case: FraudCase | None, event: ev.CaseEvent) -> FraudCase:
    """The case after `event`; refuses events out of order or for another case."""
    if isinstance(event, ev.CaseOpened):
        if case is not None:
            raise ValueError(f"case {case.id} is already open")
        return _opened(event)
    if case is None:
        raise ValueError(f"{type(event).__name__} before CaseOpened")
    if event.originator_id != case.id or event.originator_version != case.version + 1:
        raise ValueError(
            f"{type(event).__name__} v{event.originator_version} does not follow "
            f"case {case.id} v{case.version}"
        )
    changed = _APPLIERS[type(event)](case, event)
    return replace(changed, version=event.originator_version)


def replay(events: Iterable[ev.CaseEvent], case: FraudCase | None = None) -> FraudCase | None:
    """Fold events onto a case (or onto nothing, for a whole stream)."""
    for event in events:
        case = evolve(case, event)
    return case


_E = TypeVar("_E", bound=ev.CaseEvent)
_Applier = Callable[[FraudCase, _E], FraudCase]
_APPLIERS: dict[type[ev.CaseEvent], Callable[[FraudCase, Any], FraudCase]] = {}


def _applies(event_type: type[_E]) -> Callable[[_Applier[_E]], _Applier[_E]]:
    def register(applier: _Applier[_E]) -> _Applier[_E]:
        _APPLIERS[event_type] = applier
        return applier

    return register


def _opened(event: ev.CaseOpened) -> FraudCase:
    cards = {
        c.card_id: CardState(
            last4=c.last4, network=c.network, kind=c.kind, primary_card_id=c.primary_card_id
        )
        for c in event.cards
    }
    return FraudCase(
        id=event.originator_id,
        version=event.originator_version,
        status="open",
        reason=event.reason,
        opened_at=event.timestamp,
        customer=event.customer,
        amount_at_risk=event.amount_at_risk,
        cards=cards,
    )


def _with(case: FraudCase, table: str, key: object, **changes: Any) -> FraudCase:
    """The case with one entry of a table (cards, contacts...) changed."""
    rows = getattr(case, table)
    return replace(case, **{table: {**rows, str(key): replace(rows[str(key)], **changes)}})


def _unchanged(case: FraudCase, _: ev.CaseEvent) -> FraudCase:
    return case


for _recorded_only in (
    ev.TransactionReviewed,
    ev.HandoffNoteAdded,
    ev.CustomerNotified,
    ev.CallVerified,
):
    _APPLIERS[_recorded_only] = _unchanged


@_applies(ev.CompromiseSuspected)
def _compromise_suspected(case: FraudCase, e: ev.CompromiseSuspected) -> FraudCase:
    # Only a breach names who pays for a reissue; other leaks leave the default.
    if e.reissue_fee_bearer is None:
        return case
    return replace(case, breach_fee=BreachFee(bearer=e.reissue_fee_bearer, merchant=e.fee_merchant))


@_applies(ev.ContactStarted)
def _contact_started(case: FraudCase, e: ev.ContactStarted) -> FraudCase:
    contact = ContactState(
        direction=e.direction,
        channel=e.channel,
        to_registered_number=e.to_registered_number,
        department=e.department,
        started_at=e.timestamp,
    )
    contacts = {**case.contacts, str(e.contact_id): contact}
    return replace(case, contacts=contacts, open_contact_id=e.contact_id)


@_applies(ev.ContactEnded)
def _contact_ended(case: FraudCase, e: ev.ContactEnded) -> FraudCase:
    case = _with(case, "contacts", e.contact_id, ended=True)
    still_open = None if case.open_contact_id == e.contact_id else case.open_contact_id
    return replace(case, open_contact_id=still_open)


@_applies(ev.IdentityVerified)
def _identity_verified(case: FraudCase, e: ev.IdentityVerified) -> FraudCase:
    return _with(case, "contacts", e.contact_id, verified_by=e.method)


@_applies(ev.IdentityVerificationFailed)
def _identity_failed(case: FraudCase, e: ev.IdentityVerificationFailed) -> FraudCase:
    # The latest check in a contact decides: a failure withdraws an earlier pass.
    case = _with(case, "contacts", e.contact_id, verified_by=None)
    since = e.timestamp - FAILURE_WINDOW
    failures = (*(t for t in case.recent_failures if t > since), e.timestamp)
    return replace(case, recent_failures=failures)


@_applies(ev.IdentityLocked)
def _identity_locked(case: FraudCase, _: ev.IdentityLocked) -> FraudCase:
    return replace(case, identity_locked=True)


@_applies(ev.IdentityUnlocked)
def _identity_unlocked(case: FraudCase, _: ev.IdentityUnlocked) -> FraudCase:
    # A supervisor's unlock gives a fresh set of attempts.
    return replace(case, identity_locked=False, recent_failures=())


@_applies(ev.ChargeDisputed)
def _charge_disputed(case: FraudCase, e: ev.ChargeDisputed) -> FraudCase:
    dispute = DisputeState(transaction_id=e.transaction_id, merchant=e.merchant, amount=e.amount)
    key = str(e.dispute_id)
    return replace(
        case,
        disputes={**case.disputes, key: dispute},
        disputed_transactions={**case.disputed_transactions, e.transaction_id: key},
    )


@_applies(ev.DisputeResolved)
def _dispute_resolved(case: FraudCase, e: ev.DisputeResolved) -> FraudCase:
    return _with(case, "disputes", e.dispute_id, outcome=e.outcome)


@_applies(ev.DisputeStageRecorded)
def _dispute_stage(case: FraudCase, e: ev.DisputeStageRecorded) -> FraudCase:
    return _with(case, "disputes", e.dispute_id, stage=e.stage)


@_applies(ev.CustomerLiabilityWaived)
def _liability_waived(case: FraudCase, e: ev.CustomerLiabilityWaived) -> FraudCase:
    final = e.finality == "final"
    if e.dispute_id is None:
        return replace(case, case_liability_waived=True, case_liability_waiver_final=final)
    return _with(case, "disputes", e.dispute_id, liability_waived=True, liability_waiver_final=final)


@_applies(ev.ProvisionalCreditGranted)
def _credit_granted(case: FraudCase, e: ev.ProvisionalCreditGranted) -> FraudCase:
    credit = ProvisionalCredit(dispute_id=str(e.dispute_id), amount=e.amount)
    return replace(case, provisional_credits={**case.provisional_credits, str(e.credit_id): credit})


@_applies(ev.ProvisionalCreditReversed)
def _credit_reversed(case: FraudCase, e: ev.ProvisionalCreditReversed) -> FraudCase:
    return _with(case, "provisional_credits", e.credit_id, reversed=True)


@_applies(ev.PaymentStopped)
def _payment_stopped(case: FraudCase, e: ev.PaymentStopped) -> FraudCase:
    stop = PaymentStop(scope=e.scope, merchant=e.merchant)
    return replace(case, payment_stops=(*case.payment_stops, stop))


@_applies(ev.CardSuspended)
def _card_suspended(case: FraudCase, e: ev.CardSuspended) -> FraudCase:
    return _with(case, "cards", e.card_id, state="suspended")


@_applies(ev.OnlineAccessSuspended)
def _online_access_suspended(case: FraudCase, _: ev.OnlineAccessSuspended) -> FraudCase:
    return replace(case, online_access_suspended=True)


@_applies(ev.ReplacementCardIssued)
def _replacement_issued(case: FraudCase, e: ev.ReplacementCardIssued) -> FraudCase:
    old = case.cards[e.old_card_id]
    new = replace(old, last4=e.new_last4, state="active", replaced_by=None)
    cards = {
        # Family cards follow their primary to its new number.
        card_id: replace(card, primary_card_id=e.new_card_id)
        if card.primary_card_id == e.old_card_id
        else card
        for card_id, card in case.cards.items()
    }
    cards[e.old_card_id] = replace(old, state="replaced", replaced_by=e.new_card_id)
    cards[e.new_card_id] = new
    return replace(case, cards=cards)


@_applies(ev.CardDestroyed)
def _card_destroyed(case: FraudCase, e: ev.CardDestroyed) -> FraudCase:
    return _with(case, "cards", e.card_id, state="destroyed")


@_applies(ev.ContactDetailsRecorded)
def _contact_details(case: FraudCase, e: ev.ContactDetailsRecorded) -> FraudCase:
    return replace(case, daytime_phone=e.daytime_phone)


@_applies(ev.CaseEscalated)
def _escalated(case: FraudCase, e: ev.CaseEscalated) -> FraudCase:
    departments = case.departments
    if e.to_department not in departments:
        departments = (*departments, e.to_department)
    open_escalations = case.open_escalations
    if e.to_department not in open_escalations:
        open_escalations = (*open_escalations, e.to_department)
    return replace(case, departments=departments, priority=e.priority, open_escalations=open_escalations)


@_applies(ev.EscalationConcluded)
def _escalation_concluded(case: FraudCase, e: ev.EscalationConcluded) -> FraudCase:
    return replace(case, open_escalations=tuple(d for d in case.open_escalations if d != e.department))


@_applies(ev.CallbackScheduled)
def _callback_scheduled(case: FraudCase, e: ev.CallbackScheduled) -> FraudCase:
    callback = CallbackState(
        due_at=e.due_at, to_registered_number=e.to_registered_number, department=e.department
    )
    return replace(case, callbacks={**case.callbacks, str(e.callback_id): callback})


@_applies(ev.CallbackCompleted)
def _callback_completed(case: FraudCase, e: ev.CallbackCompleted) -> FraudCase:
    return _with(case, "callbacks", e.callback_id, status="completed")


@_applies(ev.CallbackMissed)
def _callback_missed(case: FraudCase, e: ev.CallbackMissed) -> FraudCase:
    return _with(case, "callbacks", e.callback_id, status="missed")


@_applies(ev.CallbackRescheduled)
def _callback_rescheduled(case: FraudCase, e: ev.CallbackRescheduled) -> FraudCase:
    return _with(case, "callbacks", e.callback_id, status="scheduled", due_at=e.due_at)


@_applies(ev.CallbackWaived)
def _callback_waived(case: FraudCase, e: ev.CallbackWaived) -> FraudCase:
    return _with(case, "callbacks", e.callback_id, status="waived")


@_applies(ev.CaseAssigned)
def _assigned(case: FraudCase, e: ev.CaseAssigned) -> FraudCase:
    return replace(case, assignee=Assignee(agent_id=e.agent_id, agent_name=e.agent_name))


@_applies(ev.CaseReleased)
def _released(case: FraudCase, _: ev.CaseReleased) -> FraudCase:
    return replace(case, assignee=None)


@_applies(ev.CaseResolved)
def _resolved(case: FraudCase, _: ev.CaseResolved) -> FraudCase:
    # A resolved case sits in no one's hands (queues and dashboards agree).
    return replace(case, status="resolved", assignee=None)


def _processor_answered(
    case: FraudCase, e: ev.ProcessorInstructionConfirmed | ev.ProcessorInstructionRejected
) -> FraudCase:
    return replace(case, answered_instructions=case.answered_instructions | {e.token})


_APPLIERS[ev.ProcessorInstructionConfirmed] = _processor_answered
_APPLIERS[ev.ProcessorInstructionRejected] = _processor_answered


@_applies(ev.CaseReopened)
def _reopened(case: FraudCase, _: ev.CaseReopened) -> FraudCase:
    return replace(case, status="open")


@_applies(ev.CaseMerged)
def _merged(case: FraudCase, e: ev.CaseMerged) -> FraudCase:
    return replace(case, absorbed=(*case.absorbed, e.absorbed_case_id))


@_applies(ev.CaseMergedInto)
def _merged_into(case: FraudCase, e: ev.CaseMergedInto) -> FraudCase:
    return replace(case, merged_into=e.survivor_case_id)


@_applies(ev.CaseUnmerged)
def _unmerged(case: FraudCase, e: ev.CaseUnmerged) -> FraudCase:
    if case.id == e.absorbed_case_id:
        return replace(case, merged_into=None)
    return replace(case, absorbed=tuple(c for c in case.absorbed if c != e.absorbed_case_id))


@_applies(ev.ApprovalRequested)
def _approval_requested(case: FraudCase, e: ev.ApprovalRequested) -> FraudCase:
    dispute = case.disputes.get(str(e.command.dispute_id)) if e.command.dispute_id else None
    approval = PendingApproval(command=e.command, requested_by=e.requested_by, contact_id=e.contact_id,
                               expires_at=e.expires_at, dispute_open=dispute is not None and dispute.outcome is None)
    return replace(case, approvals={**case.approvals, str(e.approval_id): approval})


@_applies(ev.ApprovalGranted)
def _approval_granted(case: FraudCase, e: ev.ApprovalGranted) -> FraudCase:
    return _with(case, "approvals", e.approval_id, status="approved")


@_applies(ev.ApprovalRejected)
def _approval_rejected(case: FraudCase, e: ev.ApprovalRejected) -> FraudCase:
    return _with(case, "approvals", e.approval_id, status="rejected")


@_applies(ev.ApprovalExpired)
def _approval_expired(case: FraudCase, e: ev.ApprovalExpired) -> FraudCase:
    return _with(case, "approvals", e.approval_id, status="expired")


@_applies(ev.CustomerDataErased)
def _customer_data_erased(case: FraudCase, e: ev.CustomerDataErased) -> FraudCase:
    return replace(case, personal_data_erased_at=case.personal_data_erased_at or e.timestamp)
