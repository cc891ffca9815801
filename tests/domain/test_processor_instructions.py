"""Processor instructions: which calls a decision causes, their tokens, and answers recorded once."""

from datetime import timedelta

import msgspec
import pytest

from casedesk.domain.decisions import confirm_instruction, reject_instruction, stop_payments
from casedesk.domain.events import PaymentStopped, ProcessorInstructionConfirmed, ProcessorInstructionRejected
from casedesk.domain.processor_instructions import (
    TOKEN_MAX,
    CardTransition,
    NewCard,
    SpendControl,
    event_id,
    instructions_for,
    is_permanent_refusal,
)
from casedesk.domain.values import Actor

from .story import (
    FAMILY,
    NOW,
    PRIMARY,
    STOP_ARGS,
    given,
    opened,
    replaced,
    resolved,
    suspended,
    verified,
)
from .story import call_started as call

SYSTEM = Actor(id="system:processor", name="casedesk", role="system", department="")


def numbered(*facts):  # type: ignore[no-untyped-def]
    """The facts as `given` numbers them (tokens come from stream and version)."""
    return given(*facts).history


def test_a_suspension_asks_for_one_suspended_transition_named_by_the_event() -> None:
    event = numbered(opened(), suspended("card-p"))[1]
    [instruction] = instructions_for(event)
    assert instruction.instruction == "suspend_card" and instruction.path == "/cardtransitions"
    assert instruction.call == CardTransition(token=event_id(event).hex, card_token="card-p", state="SUSPENDED",
                                              reason_code="fraud_suspected", reason="fraud")
    assert instructions_for(event) == [instruction]  # the same token however often it is derived


def test_a_replacement_asks_for_the_new_card_first_then_the_old_one_terminated() -> None:
    event = numbered(opened(), suspended("card-p"), replaced("card-p", "card-n"))[2]
    new, old = instructions_for(event)
    assert new.path == "/cards" and new.call == NewCard(
        token=event_id(event).hex, replaces_card_token="card-p", new_card_token="card-n", expedite=False,
        fulfillment="mail")
    assert old.path == "/cardtransitions" and old.card_id == "card-p"
    assert isinstance(old.call, CardTransition) and old.call.state == "TERMINATED"
    assert old.token == f"{event_id(event).hex}-2"


def test_tokens_fit_the_processor_and_differ_per_event() -> None:
    history = numbered(opened(PRIMARY, FAMILY), suspended("card-p"), suspended("card-f"))
    tokens = [i.token for e in history for i in instructions_for(e)]
    assert len(tokens) == len(set(tokens)) == 2
    assert all(len(t) <= TOKEN_MAX for t in tokens)


def test_a_payment_stop_puts_a_spend_control_on_every_card_still_in_use() -> None:
    [stop] = (given(opened(PRIMARY, FAMILY), call(), verified(), suspended("card-p"), replaced("card-p", "card-n"))
              .when(stop_payments, **STOP_ARGS).then(PaymentStopped))
    assert isinstance(stop, PaymentStopped) and stop.card_ids == ("card-f", "card-n")
    calls = [i.call for i in instructions_for(stop)]
    assert calls == [
        SpendControl(token=event_id(stop).hex, card_token="card-f", scope="merchant", merchant="WEBTEL"),
        SpendControl(token=f"{event_id(stop).hex}-2", card_token="card-n", scope="merchant", merchant="WEBTEL"),
    ]


def test_other_events_ask_nothing_of_the_processor() -> None:
    assert instructions_for(numbered(opened(), call())[1]) == []


CONFIRM = dict(actor=SYSTEM, instruction="suspend_card", token="t" * 32, card_id="card-p",
               processor_reference="t" * 32, applied_at=NOW - timedelta(seconds=1))
REJECT = dict(actor=SYSTEM, instruction="suspend_card", token="t" * 32, card_id="card-p", status=422,
              code="card_unknown", reason="no such card 4111 1111 1111 1111")


def test_a_confirmation_is_recorded_by_the_system_outside_any_contact() -> None:
    [event] = given(opened(), call(), suspended()).when(confirm_instruction, **CONFIRM).then(
        ProcessorInstructionConfirmed)
    assert isinstance(event, ProcessorInstructionConfirmed)
    assert event.actor == SYSTEM and event.contact_id is None and event.last4 == "4242"
    assert event.at == NOW - timedelta(seconds=1)


def test_a_second_confirmation_of_the_same_token_records_nothing() -> None:
    first = given(opened(), suspended()).when(confirm_instruction, **CONFIRM)
    first.then(ProcessorInstructionConfirmed)
    case = first.after
    assert case is not None and confirm_instruction(case, at=NOW, **CONFIRM) == []  # type: ignore[arg-type]
    assert reject_instruction(case, at=NOW, **REJECT) == []  # type: ignore[arg-type]


def test_a_refusal_is_recorded_with_its_reason_redacted() -> None:
    [event] = given(opened(), suspended()).when(reject_instruction, **REJECT).then(ProcessorInstructionRejected)
    assert isinstance(event, ProcessorInstructionRejected) and event.status == 422
    assert "4111" not in msgspec.json.encode(event).decode()


def test_answers_are_recorded_on_a_resolved_case_too() -> None:
    given(opened(), suspended(), resolved()).when(confirm_instruction, **CONFIRM).then(
        ProcessorInstructionConfirmed)


@pytest.mark.parametrize("status", [408, 409, 429, 500, 503])
def test_a_status_worth_retrying_is_never_recorded_as_a_refusal(status: int) -> None:
    assert not is_permanent_refusal(status)
    with pytest.raises(ValueError, match="not a refusal"):
        given(opened(), suspended()).when(reject_instruction, **{**REJECT, "status": status}).then()

