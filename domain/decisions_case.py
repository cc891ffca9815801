"""Decisions about the case as a whole: opening, notes, escalation, who holds it, resolution."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from . import events as ev
from .card_data import redact_card_numbers as redact
from .case import FraudCase
from .decisions_contacts import contact_started
from .errors import RuleViolation
from .guards import Stamps, no_card_data, stamps, still_open
from .money_rules import check_amount
from .values import Actor, Card, CaseReason, ContactStart, Customer, Money, OpeningChannel

HIGHEST_PRIORITY, LOWEST_PRIORITY = 1, 5
# Supervisors may take a case off an agent who is away; agents release their own.
_MAY_RELEASE_ANY = frozenset({"supervisor", "admin"})
_ALERTS = uuid5(NAMESPACE_URL, "https://casedesk.dev/fraud-engine-alerts")


def alert_case_id(alert_id: str) -> UUID:
    """The one case a fraud-engine alert opens: however often the engine sends it, the same id,
    so the stream's first version can be written once only."""
    return uuid5(_ALERTS, alert_id)


def open_case(
    *,
    case_id: UUID,
    actor: Actor,
    at: datetime,
    customer: Customer,
    cards: Sequence[Card],
    reason: CaseReason,
    channel: OpeningChannel,
    summary: str,
    amount_at_risk: Money | None = None,
    contact: ContactStart | None = None,
    alert_id: str | None = None,
) -> list[ev.CaseEvent]:
    """Open a case for a customer's cards, optionally with the contact it opened in
    (or for a fraud-engine alert: then `case_id` is `alert_case_id(alert_id)`)."""
    no_card_data(customer_id=customer.customer_id, customer_name=customer.name_masked, alert_id=alert_id)
    if alert_id is not None and case_id != alert_case_id(alert_id):
        raise ValueError("an alert's case is alert_case_id(alert_id)")
    _check_cards(cards)
    if amount_at_risk is not None:
        check_amount("amount_at_risk", amount_at_risk)
    stamp = Stamps(case_id, 0, actor, at, None if contact is None else contact.contact_id)
    events: list[ev.CaseEvent] = [
        ev.CaseOpened(
            **stamp.next(),
            customer=customer,
            cards=tuple(cards),
            reason=reason,
            channel=channel,
            summary=redact(summary),
            amount_at_risk=amount_at_risk,
            alert_id=alert_id,
        )
    ]
    if contact is not None:
        events.append(contact_started(stamp.next(), customer, contact))
    return events


def _check_cards(cards: Sequence[Card]) -> None:
    if not cards:
        raise RuleViolation("case-needs-a-card", "a case is about at least one card")
    for card in cards:
        no_card_data(card_id=card.card_id, network=card.network)
        no_card_data(primary_card_id=card.primary_card_id)
        # A family card may arrive without its primary (a breach list names one card).
        if card.kind == "primary" and card.primary_card_id is not None:
            raise RuleViolation("invalid-card-link", f"primary card {card.card_id} names a primary")
        if card.primary_card_id == card.card_id:
            raise RuleViolation("invalid-card-link", f"card {card.card_id} names itself")
    ids = [c.card_id for c in cards]
    if len(set(ids)) != len(ids):
        raise RuleViolation("duplicate-card", "each card appears once on a case")


def add_handoff_note(
    case: FraudCase,
    *,
    actor: Actor,
    at: datetime,
    note_id: UUID,
    text: str,
    for_department: str | None = None,
    pinned: bool = False,
) -> list[ev.CaseEvent]:
    """Leave a note for the next person; allowed on a resolved case too."""
    if not text.strip():
        raise RuleViolation("empty-note", "a handoff note says something")
    no_card_data(for_department=for_department)
    return [
        ev.HandoffNoteAdded(
            **stamps(case, actor, at).next(),
            note_id=note_id,
            text=redact(text),
            for_department=for_department,
            pinned=pinned,
        )
    ]


def escalate(
    case: FraudCase,
    *,
    actor: Actor,
    at: datetime,
    to_department: str,
    reason: str,
    priority: int,
) -> list[ev.CaseEvent]:
    """Send the case to a department's queue (priority 1 highest - 5)."""
    still_open(case)
    if not HIGHEST_PRIORITY <= priority <= LOWEST_PRIORITY:
        raise RuleViolation("invalid-priority", "priority runs from 1 (highest) to 5")
    if not to_department.strip():
        raise RuleViolation("department-needed", "name the department to escalate to")
    no_card_data(to_department=to_department)
    stamp = stamps(case, actor, at).next()
    return [
        ev.CaseEscalated(
            **stamp, to_department=to_department, reason=redact(reason), priority=priority
        )
    ]


def conclude_escalation(
    case: FraudCase,
    *,
    actor: Actor,
    at: datetime,
    department: str,
    decision: str,
    actor_departments: Sequence[str],
) -> list[ev.CaseEvent]:
    """The escalated department gives its decision: the case leaves its queue, the decision goes to the handoff.

    Only that department decides (its agents, or a supervisor); `actor_departments` are the caller's.
    """
    still_open(case)
    if department not in case.open_escalations:
        raise RuleViolation("no-open-escalation", f"the case awaits no decision from {department}")
    if department not in actor_departments and actor.role not in _MAY_RELEASE_ANY:
        raise RuleViolation("not-the-escalated-department", f"only {department} gives its decision")
    if not decision.strip():
        raise RuleViolation("empty-decision", "say what the department decided")
    stamp = stamps(case, actor, at).next()
    return [ev.EscalationConcluded(**stamp, department=department, decision=redact(decision))]


def assign(
    case: FraudCase,
    *,
    actor: Actor,
    at: datetime,
    agent_id: str,
    agent_name: str,
    queue: str | None = None,
) -> list[ev.CaseEvent]:
    """An agent takes the case (from a queue claim, naming the queue, or by hand)."""
    still_open(case)
    if case.assignee is not None:
        raise RuleViolation("already-assigned", f"{case.assignee.agent_name} holds this case")
    no_card_data(agent_id=agent_id, agent_name=agent_name)
    stamp = stamps(case, actor, at).next()
    return [ev.CaseAssigned(**stamp, agent_id=agent_id, agent_name=agent_name, queue=queue)]


def release(case: FraudCase, *, actor: Actor, at: datetime, note: str = "") -> list[ev.CaseEvent]:
    """The holder lets the case go back to its queues."""
    still_open(case)
    if case.assignee is None:
        raise RuleViolation("not-assigned", "nobody holds this case")
    if case.assignee.agent_id != actor.id and actor.role not in _MAY_RELEASE_ANY:
        raise RuleViolation("held-by-another-agent", f"{case.assignee.agent_name} holds this case")
    stamp = stamps(case, actor, at).next()
    return [ev.CaseReleased(**stamp, agent_id=case.assignee.agent_id, note=redact(note))]


def resolve_case(
    case: FraudCase, *, actor: Actor, at: datetime, resolution: str, summary: str
) -> list[ev.CaseEvent]:
    """Close the case once nothing is left hanging: no open call, promise (kept or not) or dispute."""
    still_open(case)
    if case.open_contact_id is not None:
        raise RuleViolation("contact-still-open", f"end contact {case.open_contact_id} first")
    if any(c.status == "scheduled" for c in case.callbacks.values()):
        raise RuleViolation("callback-pending", "a promised callback is still scheduled")
    if any(c.status == "missed" for c in case.callbacks.values()):
        raise RuleViolation("callback-missed", "a missed callback is still owed: reschedule or waive it")
    if any(d.outcome is None for d in case.disputes.values()):
        raise RuleViolation("dispute-still-open", "a dispute awaits its outcome")
    stamp = stamps(case, actor, at).next()
    return [ev.CaseResolved(**stamp, resolution=redact(resolution), summary=redact(summary))]


def reopen_case(case: FraudCase, *, actor: Actor, at: datetime, reason: str) -> list[ev.CaseEvent]:
    if case.status != "resolved":
        raise RuleViolation("case-not-resolved", "only a resolved case is reopened")
    return [ev.CaseReopened(**stamps(case, actor, at).next(), reason=redact(reason))]
