"""An escalation ends with its department's decision; a missed callback is owed until rescheduled or waived."""

from __future__ import annotations

from datetime import timedelta

from casedesk.domain import events as ev
from casedesk.domain.decisions import (
    complete_callback,
    conclude_escalation,
    miss_callback,
    reschedule_callback,
    resolve_case,
    waive_callback,
)
from casedesk.domain.values import Actor

from .story import AGENT, CALLBACK, NOW, SUPERVISOR, T0, _stamp, callback_scheduled, given, opened

CREDIT_AGENT = Actor(id="agent-c", name="Mei Ito", role="agent", department="credit_management")
CONCLUDE = dict(department="credit_management", decision="limit lowered", actor_departments=("credit_management",))


def escalated(department: str = "credit_management") -> ev.CaseEscalated:
    return ev.CaseEscalated(**_stamp(contact_id=None), to_department=department, reason="limit", priority=2)


def concluded(department: str = "credit_management") -> ev.EscalationConcluded:
    return ev.EscalationConcluded(**_stamp(contact_id=None), department=department, decision="limit lowered")


def missed() -> ev.CallbackMissed:
    return ev.CallbackMissed(**_stamp(contact_id=None), callback_id=CALLBACK, note="no answer")


def test_the_escalated_department_concludes_its_escalation() -> None:
    when = given(opened(), escalated()).when(conclude_escalation, actor=CREDIT_AGENT, **CONCLUDE)
    [event] = when.then(ev.EscalationConcluded)
    assert event.decision == "limit lowered"
    assert when.after is not None and when.after.open_escalations == ()


def test_a_supervisor_may_conclude_for_the_department() -> None:
    given(opened(), escalated()).when(
        conclude_escalation, actor=SUPERVISOR, **{**CONCLUDE, "actor_departments": ("fraud",)}
    ).then(ev.EscalationConcluded)


def test_an_agent_of_another_department_cannot_conclude() -> None:
    given(opened(), escalated()).when(
        conclude_escalation, actor=AGENT, **{**CONCLUDE, "actor_departments": ("fraud",)}
    ).refused("not-the-escalated-department")


def test_only_an_open_escalation_is_concluded() -> None:
    given(opened()).when(conclude_escalation, actor=CREDIT_AGENT, **CONCLUDE).refused("no-open-escalation")
    given(opened(), escalated(), concluded()).when(
        conclude_escalation, actor=CREDIT_AGENT, **CONCLUDE
    ).refused("no-open-escalation")


def test_a_conclusion_says_what_was_decided() -> None:
    given(opened(), escalated()).when(
        conclude_escalation, actor=CREDIT_AGENT, **{**CONCLUDE, "decision": "  "}
    ).refused("empty-decision")


def test_escalating_again_after_a_conclusion_opens_a_new_one() -> None:
    when = given(opened(), escalated(), concluded(), escalated()).when(
        conclude_escalation, actor=CREDIT_AGENT, **CONCLUDE)
    when.then(ev.EscalationConcluded)


def test_a_case_with_a_missed_callback_cannot_be_resolved() -> None:
    given(opened(), callback_scheduled(), missed()).when(
        resolve_case, resolution="fraud_confirmed", summary="done"
    ).refused("callback-missed")


def test_a_missed_callback_is_rescheduled_and_owed_again() -> None:
    new_time = NOW + timedelta(days=1)
    when = given(opened(), callback_scheduled(), missed()).when(
        reschedule_callback, callback_id=CALLBACK, due_at=new_time, note="customer asked for tomorrow")
    when.then(ev.CallbackRescheduled)
    assert when.after is not None
    callback = when.after.callbacks[str(CALLBACK)]
    assert (callback.status, callback.due_at) == ("scheduled", new_time)


def test_a_rescheduled_callback_is_due_now_or_later() -> None:
    given(opened(), callback_scheduled(), missed()).when(
        reschedule_callback, callback_id=CALLBACK, due_at=T0 - timedelta(hours=1)
    ).refused("callback-due-in-the-past")


def test_a_waived_callback_no_longer_holds_the_case_open() -> None:
    story = given(opened(), callback_scheduled(), missed())
    [waived] = story.when(waive_callback, callback_id=CALLBACK, reason="customer called in").then(
        ev.CallbackWaived)
    given(*story.history, waived).when(resolve_case, resolution="fraud_confirmed", summary="done").then(
        ev.CaseResolved)


def test_a_waiver_says_why() -> None:
    given(opened(), callback_scheduled(), missed()).when(
        waive_callback, callback_id=CALLBACK, reason=""
    ).refused("waiver-needs-reason")


def test_a_kept_callback_is_neither_rescheduled_nor_waived() -> None:
    story = given(opened(), callback_scheduled())
    [made] = story.when(complete_callback, callback_id=CALLBACK).then(ev.CallbackCompleted)
    kept = given(*story.history, made)
    kept.when(waive_callback, callback_id=CALLBACK, reason="x").refused("callback-already-closed")
    kept.when(reschedule_callback, callback_id=CALLBACK, due_at=NOW + timedelta(days=1)).refused(
        "callback-already-closed")


def test_a_missed_callback_is_not_missed_twice() -> None:
    given(opened(), callback_scheduled(), missed()).when(miss_callback, callback_id=CALLBACK).refused(
        "callback-already-closed")
