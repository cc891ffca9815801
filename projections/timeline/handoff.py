"""The handoff summary: derived from the case view, so no free text is needed to continue.

`last_contact` (when, who, channel, outcome, summary), `verified` (the last passed
check), `promised` (what the customer was told), `pending` (what is not done:
a missed callback stays here, and in `promised`, until rescheduled or waived;
an escalation until its department decides), `decisions` (what escalated-to
departments decided, and what became of approvals: granted, refused or
expired, naming approver and requester; a pending approval is in `pending`)
and `call_checks` (the customer checked our calls through
the IVR, newest first).
"""

from __future__ import annotations

from casedesk.projections.timeline.shapes import ApprovalView, CaseView, HandoffItem, LastContact


def refresh_handoff(view: CaseView) -> None:
    handoff = view.handoff
    if view.contacts:
        c = view.contacts[-1]
        handoff.last_contact = LastContact(
            contact_id=c.contact_id, at=c.ended_at or c.started_at, by=c.by, channel=c.channel,
            direction=c.direction, outcome=c.outcome, summary=c.summary)
    handoff.promised = _promised(view)
    handoff.pending = _pending(view)
    handoff.decisions = [
        HandoffItem(kind="escalation_decision",
                    text=f"{_department(e.to_department).capitalize()} decided: {e.decision}")
        for e in view.escalations if e.status == "concluded"
    ] + [_approval_decided(view, a) for a in view.approvals if a.state != "pending"]
    handoff.call_checks = [HandoffItem(kind=f"call_check_{c.code}", text=c.text) for c in reversed(view.call_checks)]


def _department(department: str) -> str:
    return department.replace("_", " ")


_OWED = ("scheduled", "missed")  # a missed callback is still owed to the customer


def _promised(view: CaseView) -> list[HandoffItem]:
    items = [
        HandoffItem(kind="callback", due_at=cb.due_at,
                    text=f"Callback by {_department(cb.department)} ({cb.reason})"
                         + (" — missed, still owed" if cb.status == "missed" else ""))
        for cb in view.callbacks if cb.status in _OWED
    ]
    items += [
        HandoffItem(kind="liability_waiver",
                    text=f"Customer owes nothing for {d.merchant} {d.amount.currency} {d.amount.amount}"
                         + _approved(view, d.dispute_id))
        for d in view.disputes if d.liability_waived
    ]
    if view.case_liability_waived:
        items.append(HandoffItem(kind="liability_waiver", text="Customer owes nothing on this case"))
    items += [
        HandoffItem(kind="reissue", text=f"New card •••• {c.last4} {_arrives(c.delivery, c.expedited)}"
                                         f" (replaces {_old(view, c.card_id)})")
        for c in view.cards if c.state == "active" and _old(view, c.card_id)
    ]
    items += [
        HandoffItem(kind="payment_stop",
                    text=f"Charges stopped: {s.merchant if s.scope == 'merchant' else s.scope.replace('_', ' ')}")
        for s in view.payment_stops
    ]
    return items


def _approved(view: CaseView, dispute_id: object) -> str:
    """' (approved by X, requested by Y)' for a dispute whose latest waiver took a second person's approval."""
    waiver = next((w for w in reversed(view.liability_waivers) if w.dispute_id == dispute_id), None)
    if waiver is None or waiver.approved_by is None:
        return ""
    requested = f", requested by {waiver.requested_by.name}" if waiver.requested_by is not None else ""
    return f" (approved by {waiver.approved_by.name}{requested})"


_ASKED_FOR = {"liability_waiver": "Liability waiver", "provisional_credit": "Provisional credit"}


def _asked(view: CaseView, approval: ApprovalView) -> str:
    """'Liability waiver of JPY 190000 for LUXE BAGS'."""
    dispute = next((d for d in view.disputes if d.dispute_id == approval.dispute_id), None)
    what = f"{_ASKED_FOR.get(approval.kind, approval.kind)} of {approval.amount.currency} {approval.amount.amount}"
    return what + (f" for {dispute.merchant}" if dispute is not None else " on this case")


def _approval_decided(view: CaseView, approval: ApprovalView) -> HandoffItem:
    asked, by = _asked(view, approval), approval.decided_by.name if approval.decided_by else "casedesk"
    requested = approval.requested_by.name
    if approval.state == "approved":
        return HandoffItem(kind="approval_granted", text=f"{asked} approved by {by}, requested by {requested}")
    if approval.state == "rejected":
        note = f": {approval.decision_note}" if approval.decision_note else ""
        return HandoffItem(kind="approval_rejected",
                           text=f"{asked} refused by {by}, requested by {requested}: not given{note}")
    return HandoffItem(kind="approval_expired",
                       text=f"{asked}, requested by {requested}, expired undecided after 72 h: not given")


def _arrives(delivery: str | None, expedited: bool | None) -> str:
    how = "for pickup at the branch" if delivery == "branch_pickup" else "by mail"
    return f"{'expedited, ' if expedited else ''}{how}"


def _old(view: CaseView, new_card_id: str) -> str | None:
    return next((c.card_id for c in view.cards if c.replaced_by == new_card_id), None)


def _pending(view: CaseView) -> list[HandoffItem]:
    items = [
        HandoffItem(kind="dispute", text=f"Dispute open: {d.merchant} {d.amount.currency} {d.amount.amount}")
        for d in view.disputes if d.status == "open"
    ]
    items += [
        HandoffItem(kind="card_not_replaced", text=f"Card •••• {c.last4} suspended, not yet replaced")
        for c in view.cards if c.state == "suspended"
    ]
    items += [
        HandoffItem(kind="callback_due", due_at=cb.due_at,
                    text=f"Callback due by {_department(cb.department)}: {cb.reason}")
        for cb in view.callbacks if cb.status == "scheduled"
    ]
    items += [
        HandoffItem(kind="callback_missed", due_at=cb.due_at,
                    text=f"Callback missed by {_department(cb.department)}, reschedule or waive it: {cb.reason}")
        for cb in view.callbacks if cb.status == "missed"
    ]
    items += [
        HandoffItem(kind="escalation",
                    text=f"Escalated to {_department(e.to_department)} (priority {e.priority}), awaiting its"
                         f" decision: {e.reason}")
        for e in view.escalations if e.status == "open"
    ]
    items += [
        HandoffItem(kind="approval", due_at=a.expires_at,
                    text=f"{_asked(view, a)} waits for a supervisor's approval (above the {a.limit.currency}"
                         f" {a.limit.amount} limit), requested by {a.requested_by.name}")
        for a in view.approvals if a.state == "pending"
    ]
    items += [
        HandoffItem(kind="processor_instruction", since=i.requested_at,
                    text=f"{_ASKED[i.instruction]} {_card_named(view, i.card_id)}: not yet confirmed by the processor")
        for i in view.instructions if i.state == "pending"
    ]
    items += [
        HandoffItem(kind="processor_refused", since=i.rejected_at,
                    text=f"The processor refused to {_ASKED[i.instruction].lower()} {_card_named(view, i.card_id)}"
                         f" ({i.status} {i.code}): {i.reason}")
        for i in view.instructions if i.state == "rejected"
    ]
    return items


_ASKED = {"suspend_card": "Block", "issue_replacement": "Create", "terminate_card": "Close",
          "stop_payments": "Stop charges on"}


def _card_named(view: CaseView, card_id: str) -> str:
    card = next((c for c in view.cards if c.card_id == card_id), None)
    return f"card •••• {card.last4}" if card is not None else f"card {card_id}"
