"""Sensitive actions need identity verified in the open contact; protective ones do not."""

from typing import Any

import pytest

from casedesk.domain import events as ev
from casedesk.domain.decisions import (
    dispute_charge,
    record_contact_details,
    reissue_card,
    review_transactions,
    stop_payments,
    suspend_card,
    suspend_online_access,
    waive_liability,
)

from .story import (
    CALL,
    DETAILS_ARGS,
    DISPUTE_ARGS,
    LATER_CALL,
    REISSUE_ARGS,
    REVIEW_ARGS,
    STOP_ARGS,
    WAIVE_ARGS,
    call_ended,
    call_started,
    failed,
    given,
    locked,
    opened,
    suspended,
    verified,
)

SENSITIVE = [
    pytest.param(dispute_charge, DISPUTE_ARGS, ev.ChargeDisputed, id="dispute"),
    pytest.param(reissue_card, REISSUE_ARGS, ev.ReplacementCardIssued, id="reissue"),
    pytest.param(
        record_contact_details, DETAILS_ARGS, ev.ContactDetailsRecorded, id="contact-details"
    ),
    pytest.param(stop_payments, STOP_ARGS, ev.PaymentStopped, id="payment-stop"),
    pytest.param(waive_liability, WAIVE_ARGS, ev.CustomerLiabilityWaived, id="waiver"),
    pytest.param(review_transactions, REVIEW_ARGS, ev.TransactionReviewed, id="review"),
]


@pytest.mark.parametrize(("decision", "args", "_"), SENSITIVE)
def test_sensitive_action_needs_identity_verified(decision: Any, args: Any, _: Any) -> None:
    given(opened(), call_started(), suspended()).when(decision, **args).refused(
        "identity-not-verified"
    )


@pytest.mark.parametrize(("decision", "args", "event_type"), SENSITIVE)
def test_sensitive_action_is_allowed_once_verified(
    decision: Any, args: Any, event_type: type[ev.CaseEvent]
) -> None:
    history = (opened(), call_started(), suspended(), verified())
    [event] = given(*history).when(decision, **args).then(event_type)
    assert event.contact_id == CALL


@pytest.mark.parametrize(("decision", "args", "_"), SENSITIVE)
def test_verification_in_an_earlier_contact_does_not_count(
    decision: Any, args: Any, _: Any
) -> None:
    history = (opened(), call_started(), verified(), call_ended(), call_started(LATER_CALL))
    given(*history, suspended()).when(decision, **{**args, "contact_id": LATER_CALL}).refused(
        "identity-not-verified"
    )


@pytest.mark.parametrize(("decision", "args", "_"), SENSITIVE)
def test_sensitive_action_needs_the_contact_still_open(decision: Any, args: Any, _: Any) -> None:
    history = (opened(), call_started(), verified(), call_ended())
    given(*history, suspended()).when(decision, **args).refused("contact-not-open")


@pytest.mark.parametrize(("decision", "args", "_"), SENSITIVE)
def test_sensitive_action_is_refused_while_identity_is_locked(
    decision: Any, args: Any, _: Any
) -> None:
    history = (opened(), call_started(), verified(), failed(), failed(), failed(), locked())
    given(*history, suspended()).when(decision, **args).refused("identity-locked")


def test_suspending_a_card_needs_no_identity_check() -> None:
    given(opened(), call_started()).when(
        suspend_card, card_id="card-p", reason="fraud alert", include_linked=False
    ).then(ev.CardSuspended)


def test_suspending_online_access_needs_no_identity_check() -> None:
    given(opened()).when(suspend_online_access, reason="account takeover").then(
        ev.OnlineAccessSuspended
    )
