"""The case as a whole: opening, contacts, escalation, holders, callbacks, resolution."""

from datetime import timedelta
from typing import Any

import pytest

from casedesk.domain import decisions as do
from casedesk.domain import events as ev
from casedesk.domain.values import ContactStart

from .story import (
    AGENT,
    CALL,
    CALLBACK,
    CASE,
    CUSTOMER,
    FAMILY,
    LATER_CALL,
    NOTE,
    NOW,
    OTHER_AGENT,
    OTHER_PHONE,
    PRIMARY,
    REGISTERED,
    SUPERVISOR,
    VERIFIED_CALL,
    assigned,
    call_ended,
    call_started,
    callback_scheduled,
    disputed,
    given,
    opened,
    resolved,
)

OPEN_ARGS: dict[str, Any] = dict(
    case_id=CASE,
    customer=CUSTOMER,
    cards=[PRIMARY, FAMILY],
    reason="fraud_alert",
    channel="phone",
    summary="Luxury bag ¥190,000 flagged",
)
INBOUND = ContactStart(
    contact_id=CALL, direction="inbound", channel="phone", phone=REGISTERED, department="fraud"
)


def test_opening_a_case_with_a_contact_starts_it_at_once() -> None:
    when = given().when(do.open_case, contact=INBOUND, **OPEN_ARGS)
    opened_, started = when.then(ev.CaseOpened, ev.ContactStarted)
    assert (opened_.contact_id, started.contact_id) == (CALL, CALL)
    assert when.after is not None and when.after.open_contact_id == CALL


def test_a_case_starts_in_department_fraud() -> None:
    when = given().when(do.open_case, **OPEN_ARGS)
    when.then(ev.CaseOpened)
    assert when.after is not None and when.after.departments == ("fraud",)


def test_a_case_is_about_at_least_one_card() -> None:
    given().when(do.open_case, **{**OPEN_ARGS, "cards": []}).refused("case-needs-a-card")


def test_card_ids_are_unique_on_a_case() -> None:
    given().when(do.open_case, **{**OPEN_ARGS, "cards": [PRIMARY, PRIMARY]}).refused(
        "duplicate-card"
    )


def test_contact_to_the_registered_number_is_marked() -> None:
    args = dict(contact_id=CALL, channel="phone", department="fraud", purpose="fraud alert")
    [started] = (
        given(opened())
        .when(do.start_contact, direction="outbound", phone=REGISTERED, **args)
        .then(ev.ContactStarted)
    )
    assert isinstance(started, ev.ContactStarted) and started.to_registered_number
    [other] = (
        given(opened())
        .when(do.start_contact, direction="outbound", phone=OTHER_PHONE, **args)
        .then(ev.ContactStarted)
    )
    assert isinstance(other, ev.ContactStarted) and not other.to_registered_number


def test_an_outbound_call_records_the_number_dialled() -> None:
    given(opened()).when(
        do.start_contact,
        contact_id=CALL,
        direction="outbound",
        channel="phone",
        phone=None,
        department="fraud",
    ).refused("dialled-number-needed")


def test_one_contact_is_open_at_a_time() -> None:
    given(opened(), call_started()).when(
        do.start_contact,
        contact_id=LATER_CALL,
        direction="inbound",
        channel="phone",
        phone=REGISTERED,
        department="fraud",
    ).refused("contact-already-open")


def test_a_contact_ends_once() -> None:
    args = dict(contact_id=CALL, outcome="connected", summary="explained next steps")
    given(opened(), call_started()).when(do.end_contact, **args).then(ev.ContactEnded)
    given(opened(), call_started(), call_ended()).when(do.end_contact, **args).refused(
        "contact-already-ended"
    )


RESOLVED_REFUSES = [
    (
        do.start_contact,
        dict(
            contact_id=LATER_CALL,
            direction="inbound",
            channel="chat",
            phone=None,
            department="fraud",
        ),
    ),
    (do.suspend_card, dict(card_id="card-p", reason="x", include_linked=False)),
    (do.suspend_online_access, dict(reason="x")),
    (do.escalate, dict(to_department="credit_management", reason="x", priority=2)),
    (do.assign, dict(agent_id="agent-2", agent_name="Ken")),
    (
        do.schedule_callback,
        dict(callback_id=CALLBACK, due_at=NOW, phone=None, reason="x", department="fraud"),
    ),
    (do.record_compromise, dict(source="unknown", detail="x")),
    (do.resolve_case, dict(resolution="x", summary="x")),
    (do.unlock_identity, dict(reason="x")),
]


@pytest.mark.parametrize(
    ("decision", "args"), RESOLVED_REFUSES, ids=lambda v: getattr(v, "__name__", "")
)
def test_a_resolved_case_refuses_everything_but_notes_and_reopen(decision: Any, args: Any) -> None:
    given(opened(), resolved()).when(decision, **args).refused("case-resolved")


def test_a_resolved_case_still_takes_notes() -> None:
    given(opened(), resolved()).when(
        do.add_handoff_note, note_id=NOTE, text="Customer called to thank us"
    ).then(ev.HandoffNoteAdded)


def test_a_resolved_case_can_be_reopened() -> None:
    when = given(opened(), resolved()).when(do.reopen_case, reason="new charge")
    when.then(ev.CaseReopened)
    assert when.after is not None and when.after.status == "open"


def test_only_a_resolved_case_is_reopened() -> None:
    given(opened()).when(do.reopen_case, reason="x").refused("case-not-resolved")


def test_resolving_waits_for_the_open_contact() -> None:
    given(opened(), call_started()).when(do.resolve_case, resolution="x", summary="x").refused(
        "contact-still-open"
    )


def test_resolving_waits_for_promised_callbacks() -> None:
    given(opened(), callback_scheduled()).when(
        do.resolve_case, resolution="x", summary="x"
    ).refused("callback-pending")


def test_resolving_waits_for_open_disputes() -> None:
    given(*VERIFIED_CALL, disputed(), call_ended()).when(
        do.resolve_case, resolution="x", summary="x"
    ).refused("dispute-still-open")


def test_resolving_lets_go_of_the_case() -> None:
    when = given(opened(), assigned()).when(do.resolve_case, resolution="done", summary="ok")
    when.then(ev.CaseResolved)
    assert when.after is not None and when.after.assignee is None


def test_escalation_adds_the_department_and_priority() -> None:
    when = given(opened()).when(
        do.escalate, to_department="credit_management", reason="known fraud merchant", priority=2
    )
    when.then(ev.CaseEscalated)
    assert when.after is not None
    assert (when.after.departments, when.after.priority) == (("fraud", "credit_management"), 2)


@pytest.mark.parametrize("priority", [0, 6])
def test_escalation_priority_runs_from_1_to_5(priority: int) -> None:
    given(opened()).when(
        do.escalate, to_department="credit_management", reason="x", priority=priority
    ).refused("invalid-priority")


def test_a_held_case_is_not_assigned_again() -> None:
    given(opened(), assigned()).when(
        do.assign, agent_id=OTHER_AGENT.id, agent_name=OTHER_AGENT.name
    ).refused("already-assigned")


def test_release_needs_a_holder() -> None:
    given(opened()).when(do.release).refused("not-assigned")


def test_only_the_holder_or_a_supervisor_releases() -> None:
    given(opened(), assigned(AGENT)).when(do.release, actor=OTHER_AGENT).refused(
        "held-by-another-agent"
    )
    given(opened(), assigned(AGENT)).when(do.release, actor=SUPERVISOR).then(ev.CaseReleased)


CALLBACK_ARGS: dict[str, Any] = dict(
    callback_id=CALLBACK, phone=None, reason="after credit management decides", department="fraud"
)


def test_a_callback_to_no_other_number_goes_to_the_registered_one() -> None:
    [event] = (
        given(opened())
        .when(do.schedule_callback, due_at=NOW + timedelta(hours=2), **CALLBACK_ARGS)
        .then(ev.CallbackScheduled)
    )
    assert isinstance(event, ev.CallbackScheduled) and event.to_registered_number


def test_a_callback_is_not_due_in_the_past() -> None:
    given(opened()).when(
        do.schedule_callback, due_at=NOW - timedelta(minutes=1), **CALLBACK_ARGS
    ).refused("callback-due-in-the-past")


def test_a_callback_closes_once() -> None:
    given(opened()).when(do.complete_callback, callback_id=CALLBACK).refused("unknown-callback")
    given(opened(), callback_scheduled()).when(do.miss_callback, callback_id=CALLBACK).then(
        ev.CallbackMissed
    )
    story = given(opened(), callback_scheduled())
    done = story.when(do.complete_callback, callback_id=CALLBACK, note="reached").then(
        ev.CallbackCompleted
    )
    given(*story.history, *done).when(do.miss_callback, callback_id=CALLBACK).refused(
        "callback-already-closed"
    )
