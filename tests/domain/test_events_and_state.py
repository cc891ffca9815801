"""Events and state: replay reproduces the case, versions run on, stamps are complete."""

from datetime import timedelta
from typing import Any
from uuid import UUID

import msgspec
import pytest

from casedesk.domain import decisions as do
from casedesk.domain import events as ev
from casedesk.domain.case import FraudCase, evolve, replay
from casedesk.domain.values import ContactStart, Fee, PhoneNumber

from .story import (
    AGENT,
    CALL,
    CALLBACK,
    CASE,
    CUSTOMER,
    DISPUTE,
    FAMILY,
    LATER_CALL,
    NOTE,
    NOW,
    PRIMARY,
    REGISTERED,
    SUPERVISOR,
    TRANSACTION,
    jpy,
)

Step = tuple[Any, dict[str, Any]]
SECOND_CALLBACK = UUID(int=32)
CREDIT = UUID(int=33)
ASKED = object()  # the approval id of the request just made


def family_card_fraud() -> list[ev.CaseEvent]:
    """The family-card fraud alert, told through the decisions, one step per minute."""
    outbound = ContactStart(
        contact_id=CALL,
        direction="outbound",
        channel="phone",
        phone=REGISTERED,
        department="fraud",
        purpose="fraud alert on family card",
    )
    steps: list[Step] = [
        (do.record_call_verified, dict(contact_id=CALL, channel="ivr", code="matched")),
        (
            do.check_identity,
            dict(contact_id=CALL, method="knowledge_based", passed=False, factors=["name"]),
        ),
        (
            do.check_identity,
            dict(contact_id=CALL, method="callback_to_registered_number", passed=True, factors=[]),
        ),
        (do.review_transactions, dict(contact_id=CALL, transactions=[TRANSACTION])),
        (do.suspend_card, dict(card_id="card-f", reason="confirmed fraud", include_linked=True)),
        (
            do.dispute_charge,
            dict(
                contact_id=CALL,
                dispute_id=DISPUTE,
                transaction_id="tx-1",
                merchant="LUXE BAGS",
                amount=jpy("190000"),
                reason_code="10.4",
                network="visa",
            ),
        ),
        # JPY 190,000 is above the approval limit: each waits for the supervisor's approval (four eyes).
        (do.waive_liability, dict(contact_id=CALL, dispute_id=DISPUTE, note="owes nothing", amount=jpy("190000"),
                                  finality="pending")),
        (do.approve, dict(approval_id=ASKED, note="confirmed fraud")),
        (do.grant_provisional_credit, dict(credit_id=CREDIT, dispute_id=DISPUTE, amount=jpy("190000"))),
        (do.approve, dict(approval_id=ASKED, note="while the network decides")),
        (do.reverse_provisional_credit, dict(credit_id=CREDIT, reason="granted twice by mistake")),
        (do.stop_payments, dict(contact_id=CALL, scope="merchant", merchant="LUXE BAGS")),
        (
            do.reissue_card,
            dict(
                contact_id=CALL,
                card_id="card-f",
                new_card_id="card-n",
                new_last4="0007",
                delivery="mail",
                expedite=True,
                fee=Fee(amount=jpy("0"), bearer="issuer"),
            ),
        ),
        (
            do.record_contact_details,
            dict(
                contact_id=CALL,
                daytime_phone=PhoneNumber(masked="•••• 1234", key="day", number="0312341234"),
            ),
        ),
        (
            do.record_compromise,
            dict(source="merchant_site", detail="asked twice for the number", domain="shop.xyz"),
        ),
        (do.suspend_online_access, dict(reason="precaution")),
        (do.end_contact, dict(contact_id=CALL, outcome="connected", summary="all explained")),
        (do.escalate, dict(to_department="credit_management", reason="merchant", priority=2)),
        (do.assign, dict(agent_id="agent-2", agent_name="Ken Mori")),
        (do.add_handoff_note, dict(note_id=NOTE, text="Call back after decision", pinned=True)),
        (
            do.schedule_callback,
            dict(
                callback_id=CALLBACK,
                due_at=NOW + timedelta(days=1),
                phone=None,
                reason="decision",
                department="fraud",
            ),
        ),
        (do.reschedule_callback, dict(callback_id=CALLBACK, due_at=NOW + timedelta(days=2), note="asked for later")),
        (
            do.schedule_callback,
            dict(callback_id=SECOND_CALLBACK, due_at=NOW + timedelta(days=1), phone=None, reason="limit",
                 department="credit_management"),
        ),
        (do.waive_callback, dict(callback_id=SECOND_CALLBACK, reason="customer called in")),
        (
            do.conclude_escalation,
            dict(department="credit_management", decision="limit lowered to 100,000",
                 actor_departments=("credit_management",)),
        ),
        (do.release, dict(note="end of shift")),
        (do.complete_callback, dict(callback_id=CALLBACK, note="told the customer")),
        (do.record_dispute_stage, dict(dispute_id=DISPUTE, stage="filed", network_reference="VROL-1", note="sent")),
        (do.resolve_dispute, dict(dispute_id=DISPUTE, outcome="upheld", note="refunded")),
        (do.notify_customer, dict(channel="letter", subject="investigation_result", summary="refunded")),
        (
            do.start_contact,
            dict(
                contact_id=LATER_CALL,
                direction="inbound",
                channel="branch",
                phone=None,
                department="branch",
            ),
        ),
        (
            do.record_card_destroyed,
            dict(card_id="card-f", branch="Shinjuku", certificate_id="CERT-7"),
        ),
        (do.end_contact, dict(contact_id=LATER_CALL, outcome="connected", summary="destroyed")),
        (do.resolve_case, dict(resolution="fraud_confirmed", summary="refunded and reissued")),
        (do.reopen_case, dict(reason="new charge")),
        (
            do.confirm_instruction,
            dict(instruction="suspend_card", token="a" * 32, card_id="card-p", processor_reference="a" * 32,
                 applied_at=NOW + timedelta(minutes=30)),
        ),
        (
            do.reject_instruction,
            dict(instruction="stop_payments", token="b" * 32, card_id="card-n", status=422, code="invalid",
                 reason="merchant unknown"),
        ),
    ]
    history = do.open_case(
        case_id=CASE,
        actor=AGENT,
        at=NOW,
        customer=CUSTOMER,
        cards=[PRIMARY, FAMILY],
        reason="fraud_alert",
        channel="phone",
        summary="¥190,000 bag",
        contact=outbound,
    )
    case = replay(history)
    for minute, (decision, args) in enumerate(steps, 1):
        assert case is not None
        actor = SUPERVISOR if decision in (do.release, do.approve) else AGENT
        asked = next((e.approval_id for e in reversed(history) if isinstance(e, ev.ApprovalRequested)), None)
        args = {k: asked if v is ASKED else v for k, v in args.items()}
        new = decision(case, actor=actor, at=NOW + timedelta(minutes=minute), **args)
        case = replay(new, case)
        history += new
    return history


STORY = family_card_fraud()


def test_the_story_uses_every_event_type() -> None:
    assert {type(e) for e in STORY} >= set(ev.EVENT_TYPES) - {
        ev.IdentityLocked,
        ev.IdentityUnlocked,
        ev.CallbackMissed,
        # A merge takes two cases, the story tells one: tests/domain/test_merge.py tells those.
        ev.CaseMerged,
        ev.CaseMergedInto,
        ev.CaseUnmerged,
        # Rejection and expiry end an approval without an effect: tests/domain/test_approvals.py tells them.
        ev.ApprovalRejected,
        ev.ApprovalExpired,
        # Erasure ends a customer's story: tests/domain/test_erasure.py tells it.
        ev.CustomerDataErased,
    }


def test_replay_reproduces_the_state_built_step_by_step() -> None:
    stepwise: FraudCase | None = None
    for event in STORY:
        stepwise = evolve(stepwise, event)
    assert replay(STORY) == stepwise
    assert stepwise is not None and stepwise.version == len(STORY)


def test_replay_from_a_snapshot_reaches_the_same_state() -> None:
    middle = replay(STORY[:10])
    snapshot = msgspec.json.decode(msgspec.json.encode(middle), type=FraudCase)
    assert replay(STORY[10:], snapshot) == replay(STORY)


def test_versions_are_consecutive_from_one() -> None:
    assert [e.originator_version for e in STORY] == list(range(1, len(STORY) + 1))
    assert {e.originator_id for e in STORY} == {CASE}


def test_every_event_carries_actor_timestamp_and_contact() -> None:
    for event in STORY:
        assert event.actor.id and event.timestamp.tzinfo is not None
    in_call = [e for e in STORY if e.timestamp <= NOW + timedelta(minutes=12)]
    assert all(e.contact_id == CALL for e in in_call)
    escalated = next(e for e in STORY if isinstance(e, ev.CaseEscalated))
    assert escalated.contact_id is None


def test_events_round_trip_through_msgspec_json() -> None:
    for event in STORY:
        assert msgspec.json.decode(msgspec.json.encode(event), type=type(event)) == event


def test_evolve_refuses_an_event_out_of_order() -> None:
    case = replay(STORY[:3])
    with pytest.raises(ValueError, match="does not follow"):
        evolve(case, STORY[4])


def test_decisions_need_a_timezone_aware_time() -> None:
    case = replay(STORY[:2])
    assert case is not None
    with pytest.raises(ValueError, match="timezone"):
        do.suspend_online_access(case, actor=AGENT, at=NOW.replace(tzinfo=None), reason="x")


def test_the_state_shows_where_the_story_ended() -> None:
    case = replay(STORY)
    assert case is not None
    assert case.status == "open" and case.assignee is None
    assert {k: c.state for k, c in case.cards.items()} == {
        "card-p": "suspended",
        "card-f": "destroyed",
        "card-n": "active",
    }
    assert case.departments == ("fraud", "credit_management")
    assert case.disputes[str(DISPUTE)].outcome == "upheld"
