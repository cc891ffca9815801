"""Decisions about talking to the customer: contacts, identity checks, callbacks."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from . import events as ev
from .card_data import redact_card_numbers as redact
from .case import FAILURE_WINDOW, CallbackState, FraudCase
from .errors import RuleViolation
from .guards import (
    Stamp,
    identity_unlocked,
    is_registered,
    no_card_data,
    no_card_data_in_phone,
    open_contact,
    stamps,
    still_open,
    verified_contact,
)
from .values import (
    Actor,
    ContactChannel,
    ContactDirection,
    ContactOutcome,
    ContactStart,
    Customer,
    IdentityMethod,
    PhoneNumber,
)

FAILED_CHECKS_BEFORE_LOCK = 3
# Factors are named, never given: "date_of_birth", not "1985-03-02".
_FACTOR_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")


def contact_started(stamp: Stamp, customer: Customer, start: ContactStart) -> ev.ContactStarted:
    """The ContactStarted event for `start` (shared with `open_case`)."""
    dialling = start.direction in ("outbound", "callback")
    if dialling and start.channel == "phone" and start.phone is None:
        raise RuleViolation("dialled-number-needed", "an outbound call records the number dialled")
    no_card_data(department=start.department)
    no_card_data_in_phone("phone", start.phone)
    purpose = None if start.purpose is None else redact(start.purpose)
    return ev.ContactStarted(
        **stamp,
        direction=start.direction,
        channel=start.channel,
        phone=start.phone.kept() if start.phone else None,
        department=start.department,
        purpose=purpose,
        to_registered_number=start.phone is not None and start.phone.is_same_number(customer.phone),
    )


def start_contact(
    case: FraudCase,
    *,
    actor: Actor,
    at: datetime,
    contact_id: UUID,
    direction: ContactDirection,
    channel: ContactChannel,
    phone: PhoneNumber | None,
    department: str,
    purpose: str | None = None,
) -> list[ev.CaseEvent]:
    still_open(case)
    if case.open_contact_id is not None:
        raise RuleViolation(
            "contact-already-open", f"end contact {case.open_contact_id} before starting another"
        )
    if case.contact(contact_id) is not None:
        raise RuleViolation("duplicate-contact", f"contact {contact_id} already exists")
    start = ContactStart(
        contact_id=contact_id,
        direction=direction,
        channel=channel,
        phone=phone,
        department=department,
        purpose=purpose,
    )
    return [contact_started(stamps(case, actor, at, contact_id).next(), case.customer, start)]


def end_contact(
    case: FraudCase,
    *,
    actor: Actor,
    at: datetime,
    contact_id: UUID,
    outcome: ContactOutcome,
    summary: str,
) -> list[ev.CaseEvent]:
    still_open(case)
    contact = case.contact(contact_id)
    if contact is None:
        raise RuleViolation("unknown-contact", f"contact {contact_id} is not on this case")
    if contact.ended:
        raise RuleViolation("contact-already-ended", f"contact {contact_id} has already ended")
    stamp = stamps(case, actor, at, contact_id).next()
    return [ev.ContactEnded(**stamp, outcome=outcome, summary=redact(summary))]


def check_identity(
    case: FraudCase,
    *,
    actor: Actor,
    at: datetime,
    contact_id: UUID,
    method: IdentityMethod,
    passed: bool,
    factors: Sequence[str],
) -> list[ev.CaseEvent]:
    """Record an identity check; the third failure within 24 h locks further checks."""
    still_open(case)
    contact = open_contact(case, contact_id)
    identity_unlocked(case)
    if method == "callback_to_registered_number" and not (
        contact.direction in ("outbound", "callback") and contact.to_registered_number
    ):
        raise RuleViolation(
            "callback-verification-needs-registered-number",
            "only a call we placed to the registered number verifies by callback",
        )
    if method == "id_document_at_branch" and contact.channel != "branch":
        raise RuleViolation("id-document-needs-branch", "ID documents are checked at a branch")
    for factor in factors:
        if not _FACTOR_NAME.fullmatch(factor):
            raise RuleViolation("factor-not-a-name", "factors are names like date_of_birth")
    stamp = stamps(case, actor, at, contact_id)
    if passed:
        return [ev.IdentityVerified(**stamp.next(), method=method, factors=tuple(factors))]
    failures = 1 + sum(1 for t in case.recent_failures if t > at - FAILURE_WINDOW)
    events: list[ev.CaseEvent] = [
        ev.IdentityVerificationFailed(
            **stamp.next(), method=method, factors=tuple(factors), failures_in_24h=failures
        )
    ]
    if failures >= FAILED_CHECKS_BEFORE_LOCK:
        events.append(ev.IdentityLocked(**stamp.next(), failures_in_24h=failures))
    return events


def unlock_identity(
    case: FraudCase, *, actor: Actor, at: datetime, reason: str
) -> list[ev.CaseEvent]:
    """Allow identity checks again (the API lets only supervisors do this)."""
    still_open(case)
    if not case.identity_locked:
        raise RuleViolation("identity-not-locked", "identity checks are not locked")
    return [ev.IdentityUnlocked(**stamps(case, actor, at).next(), reason=redact(reason))]


def record_contact_details(
    case: FraudCase,
    *,
    actor: Actor,
    at: datetime,
    contact_id: UUID,
    daytime_phone: PhoneNumber,
) -> list[ev.CaseEvent]:
    still_open(case)
    verified_contact(case, contact_id)
    no_card_data_in_phone("daytime_phone", daytime_phone)
    stamp = stamps(case, actor, at, contact_id).next()
    return [ev.ContactDetailsRecorded(**stamp, daytime_phone=daytime_phone.kept())]


def schedule_callback(
    case: FraudCase,
    *,
    actor: Actor,
    at: datetime,
    callback_id: UUID,
    due_at: datetime,
    phone: PhoneNumber | None,
    reason: str,
    department: str,
) -> list[ev.CaseEvent]:
    """Promise a callback; `phone` None means the registered number."""
    still_open(case)
    if str(callback_id) in case.callbacks:
        raise RuleViolation("duplicate-callback", f"callback {callback_id} already exists")
    if due_at < at:
        raise RuleViolation("callback-due-in-the-past", "a callback is due now or later")
    no_card_data(department=department)
    no_card_data_in_phone("phone", phone)
    return [
        ev.CallbackScheduled(
            **stamps(case, actor, at).next(),
            callback_id=callback_id,
            due_at=due_at,
            phone=phone.kept() if phone else None,
            to_registered_number=phone is None or is_registered(case, phone),
            reason=redact(reason),
            department=department,
        )
    ]


def complete_callback(
    case: FraudCase, *, actor: Actor, at: datetime, callback_id: UUID, note: str = ""
) -> list[ev.CaseEvent]:
    _scheduled_callback(case, callback_id)
    stamp = stamps(case, actor, at).next()
    return [ev.CallbackCompleted(**stamp, callback_id=callback_id, note=redact(note))]


def miss_callback(
    case: FraudCase, *, actor: Actor, at: datetime, callback_id: UUID, note: str = ""
) -> list[ev.CaseEvent]:
    _scheduled_callback(case, callback_id)
    stamp = stamps(case, actor, at).next()
    return [ev.CallbackMissed(**stamp, callback_id=callback_id, note=redact(note))]


def reschedule_callback(
    case: FraudCase, *, actor: Actor, at: datetime, callback_id: UUID, due_at: datetime, note: str = ""
) -> list[ev.CaseEvent]:
    """Move a promised callback, missed or not yet made, to a new time: it is owed again."""
    _owed_callback(case, callback_id)
    if due_at < at:
        raise RuleViolation("callback-due-in-the-past", "a callback is due now or later")
    stamp = stamps(case, actor, at).next()
    return [ev.CallbackRescheduled(**stamp, callback_id=callback_id, due_at=due_at, note=redact(note))]


def waive_callback(
    case: FraudCase, *, actor: Actor, at: datetime, callback_id: UUID, reason: str
) -> list[ev.CaseEvent]:
    """Release the issuer from a promised callback, saying why (the customer called in, declined it)."""
    _owed_callback(case, callback_id)
    if not reason.strip():
        raise RuleViolation("waiver-needs-reason", "say why the callback is no longer owed")
    stamp = stamps(case, actor, at).next()
    return [ev.CallbackWaived(**stamp, callback_id=callback_id, reason=redact(reason))]


def _known_callback(case: FraudCase, callback_id: UUID) -> CallbackState:
    still_open(case)
    callback = case.callbacks.get(str(callback_id))
    if callback is None:
        raise RuleViolation("unknown-callback", f"callback {callback_id} is not on this case")
    return callback


def _scheduled_callback(case: FraudCase, callback_id: UUID) -> None:
    callback = _known_callback(case, callback_id)
    if callback.status != "scheduled":
        raise RuleViolation(
            "callback-already-closed", f"callback {callback_id} is {callback.status}"
        )


def _owed_callback(case: FraudCase, callback_id: UUID) -> None:
    """Scheduled, or missed: a missed callback is still owed until rescheduled or waived."""
    callback = _known_callback(case, callback_id)
    if callback.status not in ("scheduled", "missed"):
        raise RuleViolation(
            "callback-already-closed", f"callback {callback_id} is {callback.status}"
        )
