"""Timeline sentences: each event told as one line a person reads at a glance.

"14:05 Outbound call to •••• 5678 by K. Takano (credit management): no answer".
Times are shown in the display time zone (CASEDESK_TIMEZONE, default UTC); the
entry's `at` keeps the exact instant.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from typing import Any

from casedesk.domain import events as ev
from casedesk.domain.values import Actor, WaiverAsked


def department_name(department: str | None) -> str:
    return (department or "").replace("_", " ")


def who(actor: Actor) -> str:
    dept = department_name(actor.department)
    return f"{actor.name} ({dept})" if dept else actor.name


_DIRECTION = {"inbound": "Inbound", "outbound": "Outbound", "callback": "Callback"}
_CHANNEL = {"phone": "call", "chat": "chat", "branch": "branch visit", "email": "email"}
_OUTCOME = {"connected": "connected", "no_answer": "no answer", "voicemail": "voicemail",
            "dropped": "call dropped"}


def contact_label(started: ev.ContactStarted | None) -> str:
    if started is None:
        return "Contact"
    label = f"{_DIRECTION[started.direction]} {_CHANNEL[started.channel]}"
    if started.phone is not None:
        label += (" from " if started.direction == "inbound" else " to ") + started.phone.masked
    return label


def _money(m: Any) -> str:
    return f"{m.currency} {m.amount}" if m is not None else ""


Describe = Callable[[Any, dict[str, ev.ContactStarted]], str]
_ASKED_FOR = {"liability_waiver": "Liability waiver", "provisional_credit": "Provisional credit"}


def _by(e: ev.CustomerLiabilityWaived | ev.ProvisionalCreditGranted) -> str:
    """Who gave it: the agent, or (above the approval limit) the approver and the requester, both named."""
    if e.approved_by is None:
        return who(e.actor)
    requested = f", requested by {who(e.requested_by)}" if e.requested_by is not None else ""
    return f"approved by {who(e.approved_by)}{requested}"


def _opened(e: ev.CaseOpened, _: dict) -> str:
    cards = ", ".join(f"{c.kind} card •••• {c.last4}" for c in e.cards)
    risk = f", {_money(e.amount_at_risk)} at risk" if e.amount_at_risk else ""
    return f"Case opened by {who(e.actor)} ({e.reason.replace('_', ' ')}, {cards}{risk}): {e.summary}"


def _contact_started(e: ev.ContactStarted, _: dict) -> str:
    purpose = f" — {e.purpose}" if e.purpose else ""
    return f"{contact_label(e)} started by {who(e.actor)}{purpose}"


def _contact_ended(e: ev.ContactEnded, contacts: dict) -> str:
    started = contacts.get(str(e.contact_id))
    return f"{contact_label(started)} by {who(e.actor)}: {_OUTCOME[e.outcome]} — {e.summary}"


def _verified(e: ev.IdentityVerified, _: dict) -> str:
    return f"Identity verified by {who(e.actor)} ({e.method.replace('_', ' ')}: {', '.join(e.factors)})"


def _failed(e: ev.IdentityVerificationFailed, _: dict) -> str:
    return (f"Identity check failed ({e.method.replace('_', ' ')}), "
            f"{e.failures_in_24h} failure(s) in 24 h — {who(e.actor)}")


_CHECK_CHANNEL = {"ivr": "the IVR", "app": "the app"}
_CODE_CHECK = {
    "matched": "the reference they gave matched",
    "wrong": "the reference they gave did NOT match (not our reference: possibly an impostor's call)",
    "not_given": "no reference given",
    "locked": "references locked after 5 wrong ones for this number; none can match for an hour",
}


def call_check_text(e: ev.CallVerified, contacts: dict[str, ev.ContactStarted], zone: tzinfo) -> str:
    """'The customer checked our 14:05 outbound call to •••• 5678 through the IVR at 14:12: ...'."""
    call, checked = e.call_at.astimezone(zone), e.timestamp.astimezone(zone)
    label = contact_label(contacts.get(str(e.contact_id)))
    return (f"The customer checked our {call.hour:02d}:{call.minute:02d} {label[0].lower()}{label[1:]}"
            f" through {_CHECK_CHANNEL[e.channel]} at {checked.hour:02d}:{checked.minute:02d}: {_CODE_CHECK[e.code]}")


TEXT: dict[type, Describe] = {
    ev.CaseOpened: _opened,
    ev.ContactStarted: _contact_started,
    ev.ContactEnded: _contact_ended,
    ev.IdentityVerified: _verified,
    ev.IdentityVerificationFailed: _failed,
    ev.IdentityLocked: lambda e, _: "Identity checks locked after 3 failures in 24 h; a supervisor must unlock",
    ev.IdentityUnlocked: lambda e, _: f"Identity checks unlocked by {who(e.actor)}: {e.reason}",
    ev.TransactionReviewed: lambda e, _: (
        f"Transaction {e.transaction.merchant} {_money(e.transaction.amount)} "
        f"reviewed with the customer: {e.transaction.answer}"),
    ev.ChargeDisputed: lambda e, _: (
        f"Charge disputed by {who(e.actor)}: {e.merchant} {_money(e.amount)} "
        f"(reason code {e.reason_code}, {e.network})"),
    ev.DisputeStageRecorded: lambda e, _: (
        f"Dispute {e.stage.replace('_', ' ')}"
        + (f" (network reference {e.network_reference})" if e.network_reference else "")
        + f" — {who(e.actor)}: {e.note}"),
    ev.DisputeResolved: lambda e, _: f"Dispute resolved by {who(e.actor)}: {e.outcome} — {e.note}",
    ev.CustomerLiabilityWaived: lambda e, _: (
        f"Customer told they owe nothing {'for the disputed charge' if e.dispute_id else 'on this case'}"
        + (f" ({_money(e.amount)})" if e.amount else "")
        + (", for good" if e.finality == "final" else "")
        + f" — {_by(e)}: {e.note}"),
    ev.ProvisionalCreditGranted: lambda e, _: (
        f"Provisional credit of {_money(e.amount)} granted for the disputed charge"
        + (f", {_by(e)}" if e.approved_by else f" by {who(e.actor)}")),
    ev.ApprovalRequested: lambda e, _: (
        f"{_ASKED_FOR[e.kind]} of {_money(e.amount)} asked for by {who(e.requested_by)}, above the"
        f" {_money(e.limit)} limit: waiting for a supervisor's approval until"
        f" {e.expires_at.isoformat(timespec='minutes')}"
        + (f" — {e.command.note}" if isinstance(e.command, WaiverAsked) and e.command.note else "")),
    ev.ApprovalGranted: lambda e, _: (
        f"Approved by {who(e.actor)}, requested by {who(e.requested_by)}" + (f": {e.note}" if e.note else "")),
    ev.ApprovalRejected: lambda e, _: (
        f"Approval refused by {who(e.actor)}, requested by {who(e.requested_by)}: nothing given"
        + (f" — {e.note}" if e.note else "")),
    ev.ApprovalExpired: lambda e, _: (
        f"Approval requested by {who(e.requested_by)} expired undecided after 72 h: nothing given"),
    ev.ProvisionalCreditReversed: lambda e, _: f"Provisional credit reversed by {who(e.actor)}: {e.reason}",
    ev.PaymentStopped: lambda e, _: (
        f"Payments stopped by {who(e.actor)}: "
        + (f"merchant {e.merchant} only" if e.scope == "merchant"
           else "all overseas charges" if e.scope == "all_overseas" else "all charges")),
    ev.CardSuspended: lambda e, _: (
        f"Card {e.card_id} suspended by {who(e.actor)}"
        + (" (linked card)" if e.linked else "") + f": {e.reason}"),
    ev.OnlineAccessSuspended: lambda e, _: f"Online account access suspended by {who(e.actor)}: {e.reason}",
    ev.ReplacementCardIssued: lambda e, _: (
        f"Replacement card •••• {e.new_last4} issued for {e.old_card_id} by {who(e.actor)}, "
        f"{'expedited ' if e.expedited else ''}"
        f"{'by mail' if e.delivery == 'mail' else 'for pickup at the branch'}; "
        f"fee {_money(e.fee.amount)} borne by {e.fee.merchant or e.fee.bearer}"),
    ev.CardDestroyed: lambda e, _: (
        f"Old card {e.card_id} destroyed at branch {e.branch} (certificate {e.certificate_id})"
        f" — {who(e.actor)}"),
    ev.CompromiseSuspected: lambda e, _: (
        f"Suspected leak: {e.source.replace('_', ' ')}"
        + (f" {e.domain}" if e.domain else "") + f" — {e.detail}"),
    ev.ContactDetailsRecorded: lambda e, _: (
        f"Daytime phone {e.daytime_phone.masked} recorded for follow-up by {who(e.actor)}"),
    ev.HandoffNoteAdded: lambda e, _: (
        ("Pinned handoff note" if e.pinned else "Handoff note")
        + (f" for {department_name(e.for_department)}" if e.for_department else "")
        + f" from {who(e.actor)}: {e.text}"),
    ev.CaseEscalated: lambda e, _: (
        f"Escalated to {department_name(e.to_department)} (priority {e.priority}) "
        f"by {who(e.actor)}: {e.reason}"),
    ev.EscalationConcluded: lambda e, _: (
        f"Escalation to {department_name(e.department)} concluded by {who(e.actor)}: {e.decision}"),
    ev.CallbackScheduled: lambda e, _: (
        f"Callback promised for {e.due_at.isoformat(timespec='minutes')} to "
        f"{'the registered number' if e.to_registered_number else (e.phone.masked if e.phone else 'another number')}"
        f" by {department_name(e.department)} — {e.reason}"),
    ev.CallbackCompleted: lambda e, _: f"Callback made by {who(e.actor)}" + (f": {e.note}" if e.note else ""),
    ev.CallbackMissed: lambda e, _: f"Callback missed — {who(e.actor)}" + (f": {e.note}" if e.note else ""),
    ev.CallbackRescheduled: lambda e, _: (
        f"Callback moved to {e.due_at.isoformat(timespec='minutes')} by {who(e.actor)}"
        + (f": {e.note}" if e.note else "")),
    ev.CallbackWaived: lambda e, _: f"Callback no longer owed — {who(e.actor)}: {e.reason}",
    ev.CaseAssigned: lambda e, _: f"Case taken by {e.agent_name}",
    ev.CaseReleased: lambda e, _: f"Case released by {who(e.actor)}" + (f": {e.note}" if e.note else ""),
    ev.CaseResolved: lambda e, _: f"Case resolved by {who(e.actor)} ({e.resolution}): {e.summary}",
    ev.CaseReopened: lambda e, _: f"Case reopened by {who(e.actor)}: {e.reason}",
    ev.CaseMerged: lambda e, _: (
        f"Case {e.absorbed_case_id} merged into this case by {who(e.actor)}"
        + (" (another customer's)" if e.different_customer else "") + f": {e.reason}"),
    ev.CaseMergedInto: lambda e, _: f"Merged into case {e.survivor_case_id} by {who(e.actor)}: {e.reason}",
    ev.CaseUnmerged: lambda e, _: (
        f"Case {e.absorbed_case_id} unmerged from case {e.survivor_case_id} by {who(e.actor)}: {e.reason}"),
    ev.CustomerNotified: lambda e, _: (
        f"Customer told by {e.channel} ({e.subject.replace('_', ' ')}) — {who(e.actor)}: {e.summary}"),
    ev.CallVerified: lambda e, contacts: call_check_text(e, contacts, UTC),  # sentence() passes the zone
    ev.CustomerDataErased: lambda e, _: f"Customer's personal data erased by {who(e.actor)}: {e.reason}",
}

def _clock(at: datetime, zone: tzinfo) -> str:
    local = at.astimezone(zone)
    return f"{local.hour:02d}:{local.minute:02d}:{local.second:02d}"


_DONE = {"suspend_card": "Card •••• {} blocked at the processor",
         "issue_replacement": "New card •••• {} created at the processor",
         "terminate_card": "Card •••• {} closed at the processor",
         "stop_payments": "Charges stopped on card •••• {} at the processor"}
_ASKED = {"suspend_card": "block card •••• {}", "issue_replacement": "create new card •••• {}",
          "terminate_card": "close card •••• {}", "stop_payments": "stop charges on card •••• {}"}


def _confirmed(e: ev.ProcessorInstructionConfirmed, zone: tzinfo) -> str:
    return f"{_DONE[e.instruction].format(e.last4)} at {_clock(e.at, zone)} (ref {e.processor_reference})"


def _rejected(e: ev.ProcessorInstructionRejected, zone: tzinfo) -> str:
    return f"The processor refused to {_ASKED[e.instruction].format(e.last4)}: {e.status} {e.code} — {e.reason}"


# Sentences that show a time of their own, written in the display time zone.
TEXT_IN_ZONE: dict[type, Callable[[Any, tzinfo], str]] = {
    ev.ProcessorInstructionConfirmed: _confirmed,
    ev.ProcessorInstructionRejected: _rejected,
}

KIND: dict[type, str] = {t: "".join("_" + c.lower() if c.isupper() else c for c in t.__name__).lstrip("_")
                         for t in (*TEXT, *TEXT_IN_ZONE)}


def sentence(event: ev.CaseEvent, contacts: dict[str, ev.ContactStarted], zone: tzinfo) -> str:
    """The timeline line for one event, with its local time first."""
    local: datetime = event.timestamp.astimezone(zone)
    in_zone = TEXT_IN_ZONE.get(type(event))
    text = in_zone(event, zone) if in_zone is not None else TEXT[type(event)](event, contacts)
    # Not f"{local:%H:%M}": strftime costs a tenth of a fold.
    if isinstance(event, ev.CallVerified):  # its sentence names the call it checked: the contacts and the zone
        text = call_check_text(event, contacts, zone)
    return f"{local.hour:02d}:{local.minute:02d} {text}"
