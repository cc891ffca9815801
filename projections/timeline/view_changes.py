"""How each event changes the case view (the timeline line is added by case_file)."""

from __future__ import annotations

from functools import singledispatch
from typing import TypeVar

import msgspec

from casedesk.domain import events as ev
from casedesk.domain.processor_instructions import instructions_for
from casedesk.domain.values import Actor, CreditAsked
from casedesk.projections.timeline.shapes import (
    ApprovalView,
    CallbackView,
    CardView,
    CaseFile,
    ContactView,
    DisputeStageView,
    DisputeView,
    EscalationView,
    InstructionView,
    LiabilityWaiverView,
    MergedCaseView,
    NoteView,
    PaymentStopView,
    Person,
    ProvisionalCreditView,
    Verified,
    person,
)


@singledispatch
def change_view(event: ev.CaseEvent, file: CaseFile) -> None:
    """Events that only add a timeline line change nothing else."""


def _card(file: CaseFile, card_id: str) -> CardView:
    return next(c for c in file.view.cards if c.card_id == card_id)


def _dispute(file: CaseFile, dispute_id: object) -> DisputeView:
    return next(d for d in file.view.disputes if d.dispute_id == dispute_id)


# Ids are unique in a case; searched from the newest, as the one an event names is nearly always
# among the last (a long case's fold was quadratic in its contacts otherwise).
def _callback(file: CaseFile, callback_id: object) -> CallbackView:
    return next(c for c in reversed(file.view.callbacks) if c.callback_id == callback_id)


def _contact(file: CaseFile, contact_id: object) -> ContactView | None:
    return next((c for c in reversed(file.view.contacts) if c.contact_id == contact_id), None)


@change_view.register
def _(event: ev.ContactStarted, file: CaseFile) -> None:
    assert event.contact_id is not None
    file.view.contacts.append(ContactView(
        contact_id=event.contact_id, direction=event.direction, channel=event.channel,
        phone=event.phone.masked if event.phone else None, department=event.department,
        purpose=event.purpose, started_at=event.timestamp, by=person(event.actor),
        to_registered_number=event.to_registered_number,
    ))
    file.view.identity.verified_in_contact = None


@change_view.register
def _(event: ev.ContactEnded, file: CaseFile) -> None:
    contact = _contact(file, event.contact_id)
    if contact is not None:
        contact.outcome, contact.summary, contact.ended_at = event.outcome, event.summary, event.timestamp
    if event.outcome == "connected":
        file.view.connected_contacts += 1
    if file.view.identity.verified_in_contact == event.contact_id:
        file.view.identity.verified_in_contact = None


@change_view.register
def _(event: ev.IdentityVerified, file: CaseFile) -> None:
    file.view.identity.verified_in_contact = event.contact_id
    file.view.handoff.verified = Verified(
        method=event.method, contact_id=event.contact_id, at=event.timestamp, by=person(event.actor))


@change_view.register
def _(event: ev.IdentityVerificationFailed, file: CaseFile) -> None:
    # The latest check in a contact decides: a failure withdraws an earlier pass.
    if file.view.identity.verified_in_contact == event.contact_id:
        file.view.identity.verified_in_contact = None


@change_view.register
def _(event: ev.IdentityLocked, file: CaseFile) -> None:
    file.view.identity.locked = True


@change_view.register
def _(event: ev.IdentityUnlocked, file: CaseFile) -> None:
    file.view.identity.locked = False


@change_view.register
def _(event: ev.ChargeDisputed, file: CaseFile) -> None:
    file.view.disputes.append(DisputeView(
        dispute_id=event.dispute_id, transaction_id=event.transaction_id, merchant=event.merchant,
        amount=event.amount, reason_code=event.reason_code, network=event.network,
        opened_at=event.timestamp, transaction_date=event.transaction_date, foreign=event.foreign,
        point_of_sale=event.point_of_sale,
    ))


@change_view.register
def _(event: ev.DisputeStageRecorded, file: CaseFile) -> None:
    dispute = _dispute(file, event.dispute_id)
    dispute.stage = event.stage
    dispute.stages.append(DisputeStageView(stage=event.stage, network_reference=event.network_reference,
                                           note=event.note, at=event.timestamp, by=person(event.actor)))


@change_view.register
def _(event: ev.DisputeResolved, file: CaseFile) -> None:
    dispute = _dispute(file, event.dispute_id)
    dispute.status, dispute.outcome = "resolved", event.outcome


@change_view.register
def _(event: ev.CustomerLiabilityWaived, file: CaseFile) -> None:
    if event.dispute_id is None:
        file.view.case_liability_waived = True
    for dispute in file.view.disputes:
        if event.dispute_id is None or dispute.dispute_id == event.dispute_id:
            dispute.liability_waived = True
    file.view.liability_waivers.append(LiabilityWaiverView(
        dispute_id=event.dispute_id, amount=event.amount, finality=event.finality, note=event.note,
        at=event.timestamp, by=person(event.actor), approved_by=_person_or_none(event.approved_by),
        requested_by=_person_or_none(event.requested_by)))


@change_view.register
def _(event: ev.ProvisionalCreditGranted, file: CaseFile) -> None:
    _dispute(file, event.dispute_id).provisional_credits.append(ProvisionalCreditView(
        credit_id=event.credit_id, amount=event.amount, state="granted", at=event.timestamp, by=person(event.actor),
        approved_by=_person_or_none(event.approved_by), requested_by=_person_or_none(event.requested_by)))


@change_view.register
def _(event: ev.ProvisionalCreditReversed, file: CaseFile) -> None:
    for credit in (c for d in file.view.disputes for c in d.provisional_credits if c.credit_id == event.credit_id):
        credit.state, credit.reversed_at, credit.reason = "reversed", event.timestamp, event.reason


def _instructions_requested(event: ev.CaseEvent, file: CaseFile) -> None:
    """The processor calls the event causes, pending until the processor answers."""
    file.view.instructions += [
        InstructionView(token=i.token, instruction=i.instruction, card_id=i.card_id, state="pending",
                        requested_at=event.timestamp)
        for i in instructions_for(event)]


def _instruction(file: CaseFile, event: ev.ProcessorInstructionConfirmed | ev.ProcessorInstructionRejected
                 ) -> InstructionView:
    found = next((i for i in file.view.instructions if i.token == event.token), None)
    if found is None:  # an answer to a call this view never listed (not expected; kept all the same)
        found = InstructionView(token=event.token, instruction=event.instruction, card_id=event.card_id,
                                state="pending", requested_at=event.timestamp)
        file.view.instructions.append(found)
    return found


@change_view.register
def _(event: ev.ProcessorInstructionConfirmed, file: CaseFile) -> None:
    instruction = _instruction(file, event)
    instruction.state, instruction.confirmed_at = "confirmed", event.at
    instruction.processor_reference = event.processor_reference


@change_view.register
def _(event: ev.ProcessorInstructionRejected, file: CaseFile) -> None:
    instruction = _instruction(file, event)
    instruction.state, instruction.rejected_at = "rejected", event.timestamp
    instruction.status, instruction.code, instruction.reason = event.status, event.code, event.reason


@change_view.register
def _(event: ev.PaymentStopped, file: CaseFile) -> None:
    file.view.payment_stops.append(PaymentStopView(
        scope=event.scope, merchant=event.merchant, at=event.timestamp, by=person(event.actor)))
    _instructions_requested(event, file)


@change_view.register
def _(event: ev.CardSuspended, file: CaseFile) -> None:
    card = _card(file, event.card_id)
    card.state, card.suspended_reason, card.suspended_at = "suspended", event.reason, event.timestamp
    _instructions_requested(event, file)


@change_view.register
def _(event: ev.OnlineAccessSuspended, file: CaseFile) -> None:
    file.view.online_access_suspended = True


@change_view.register
def _(event: ev.ReplacementCardIssued, file: CaseFile) -> None:
    old = _card(file, event.old_card_id)
    old.state, old.replaced_by = "replaced", event.new_card_id
    for card in file.view.cards:  # family cards now hang off the new primary, as in the domain
        if card.primary_card_id == event.old_card_id and card.state != "replaced":
            card.primary_card_id = event.new_card_id
    file.view.cards.append(CardView(
        card_id=event.new_card_id, last4=event.new_last4, network=old.network, kind=old.kind,
        primary_card_id=old.primary_card_id, product=old.product, delivery=event.delivery,
        expedited=event.expedited))
    _instructions_requested(event, file)


@change_view.register
def _(event: ev.CardDestroyed, file: CaseFile) -> None:
    _card(file, event.card_id).state = "destroyed"


@change_view.register
def _(event: ev.CompromiseSuspected, file: CaseFile) -> None:
    where = event.domain or (str(event.breach_id) if event.breach_id else event.detail)
    file.view.compromise.append(f"{event.source}: {where}")


@change_view.register
def _(event: ev.ContactDetailsRecorded, file: CaseFile) -> None:
    file.view.daytime_phone = event.daytime_phone.masked


@change_view.register
def _(event: ev.HandoffNoteAdded, file: CaseFile) -> None:
    if event.pinned:
        file.view.pinned_note = NoteView(
            note_id=event.note_id, text=event.text, for_department=event.for_department,
            at=event.timestamp, by=person(event.actor))


@change_view.register
def _(event: ev.CaseEscalated, file: CaseFile) -> None:
    file.view.escalations.append(EscalationView(
        to_department=event.to_department, reason=event.reason, priority=event.priority,
        at=event.timestamp, by=person(event.actor)))
    if event.to_department not in file.view.departments:
        file.view.departments.append(event.to_department)
    current = file.view.priority
    file.view.priority = event.priority if current is None else min(current, event.priority)


@change_view.register
def _(event: ev.EscalationConcluded, file: CaseFile) -> None:
    for escalation in file.view.escalations:
        if escalation.to_department == event.department and escalation.status == "open":
            escalation.status, escalation.decision = "concluded", event.decision
            escalation.concluded_at, escalation.concluded_by = event.timestamp, person(event.actor)


@change_view.register
def _(event: ev.CallbackScheduled, file: CaseFile) -> None:
    file.view.callbacks.append(CallbackView(
        callback_id=event.callback_id, due_at=event.due_at,
        phone="registered" if event.to_registered_number or event.phone is None else event.phone.masked,
        reason=event.reason, department=event.department))


@change_view.register
def _(event: ev.CallbackCompleted, file: CaseFile) -> None:
    _callback(file, event.callback_id).status = "completed"


@change_view.register
def _(event: ev.CallbackMissed, file: CaseFile) -> None:
    _callback(file, event.callback_id).status = "missed"


@change_view.register
def _(event: ev.CallbackRescheduled, file: CaseFile) -> None:
    callback = _callback(file, event.callback_id)
    callback.status, callback.due_at = "scheduled", event.due_at


@change_view.register
def _(event: ev.CallbackWaived, file: CaseFile) -> None:
    _callback(file, event.callback_id).status = "waived"


@change_view.register
def _(event: ev.CaseAssigned, file: CaseFile) -> None:
    file.view.assignee = Person(id=event.agent_id, name=event.agent_name,
                                department=event.actor.department)
    file.view.claimed_from = event.queue


@change_view.register
def _(event: ev.CaseReleased, file: CaseFile) -> None:
    file.view.assignee = None


@change_view.register
def _(event: ev.CaseResolved, file: CaseFile) -> None:
    file.view.status, file.view.resolution = "resolved", event.resolution
    file.view.assignee = None


@change_view.register
def _(event: ev.CaseReopened, file: CaseFile) -> None:
    file.view.status, file.view.resolution = "open", None


@change_view.register
def _(event: ev.CaseMerged, file: CaseFile) -> None:
    # What the survivor carries of the absorbed case is filled in by the case_files projection,
    # which has the absorbed case's file at hand (see carry_absorbed).
    file.view.merged_cases.append(MergedCaseView(
        case_id=event.absorbed_case_id, merged_at=event.timestamp, by=person(event.actor), reason=event.reason,
        version_at_merge=event.absorbed_version, position_at_merge=event.absorbed_position,
        different_customer=event.different_customer))


@change_view.register
def _(event: ev.CaseMergedInto, file: CaseFile) -> None:
    file.view.merged_into = event.survivor_case_id


@change_view.register
def _(event: ev.CaseUnmerged, file: CaseFile) -> None:
    if file.view.case_id == event.absorbed_case_id:
        file.view.merged_into = None
    else:
        file.view.merged_cases = [m for m in file.view.merged_cases if m.case_id != event.absorbed_case_id]


def _person_or_none(actor: Actor | None) -> Person | None:
    return person(actor) if actor is not None else None


def _approval(file: CaseFile, approval_id: object) -> ApprovalView | None:
    return next((a for a in file.view.approvals if a.approval_id == approval_id), None)


@change_view.register
def _(event: ev.ApprovalRequested, file: CaseFile) -> None:
    asked = event.command
    file.view.approvals.append(ApprovalView(
        approval_id=event.approval_id, kind=event.kind, state="pending", amount=event.amount, limit=event.limit,
        dispute_id=asked.dispute_id, credit_id=asked.credit_id if isinstance(asked, CreditAsked) else None,
        note="" if isinstance(asked, CreditAsked) else asked.note, requested_at=event.timestamp,
        requested_by=person(event.requested_by), expires_at=event.expires_at))


def _decided(file: CaseFile, event: ev.ApprovalGranted | ev.ApprovalRejected | ev.ApprovalExpired, state: str,
             note: str | None) -> None:
    approval = _approval(file, event.approval_id)
    if approval is not None:
        approval.state, approval.decided_at, approval.decision_note = state, event.timestamp, note
        approval.decided_by = person(event.actor)


@change_view.register
def _(event: ev.ApprovalGranted, file: CaseFile) -> None:
    _decided(file, event, "approved", event.note)


@change_view.register
def _(event: ev.ApprovalRejected, file: CaseFile) -> None:
    _decided(file, event, "rejected", event.note)


@change_view.register
def _(event: ev.ApprovalExpired, file: CaseFile) -> None:
    _decided(file, event, "expired", None)


def carry_absorbed(survivor: CaseFile, absorbed: CaseFile) -> None:
    """The survivor's entry for `absorbed` takes what stays owed of it: open disputes, callbacks
    not yet made, running clocks, its cards' last digits (for lookup) and its contacts."""
    entry = next((m for m in survivor.view.merged_cases if m.case_id == absorbed.view.case_id), None)
    if entry is None:
        return
    view = absorbed.view
    entry.last4s = [c.last4 for c in view.cards]
    entry.disputes = [_copy(d, DisputeView) for d in view.disputes
                      if d.status == "open"]
    entry.callbacks = [_copy(c, CallbackView) for c in view.callbacks
                       if c.status in ("scheduled", "missed")]
    entry.clocks = [c for c in view.clocks if c.state == "running"]
    entry.contacts = [_copy(c, ContactView) for c in view.contacts]


_T = TypeVar("_T")


def _copy(part: object, kind: type[_T]) -> _T:
    """A copy the absorbed case's later folds cannot change (view parts are mutable)."""
    return msgspec.json.decode(msgspec.json.encode(part), type=kind)
