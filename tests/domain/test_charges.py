"""Charges: one dispute per transaction, dispute outcomes, waivers, payment stops."""

from datetime import timedelta

import msgspec

from casedesk.domain.decisions import (
    dispute_charge,
    notify_customer,
    record_dispute_stage,
    resolve_dispute,
    review_transactions,
    stop_payments,
    waive_liability,
)
from casedesk.domain.events import (
    ChargeDisputed,
    CustomerLiabilityWaived,
    DisputeResolved,
    DisputeStageRecorded,
    PaymentStopped,
    TransactionReviewed,
)

from .story import (
    CALL,
    DISPUTE,
    DISPUTE_ARGS,
    NOW,
    STOP_ARGS,
    TRANSACTION,
    VERIFIED_CALL,
    disputed,
    given,
    jpy,
)


def test_one_dispute_per_transaction() -> None:
    given(*VERIFIED_CALL, disputed("tx-1")).when(
        dispute_charge, **{**DISPUTE_ARGS, "dispute_id": CALL}
    ).refused("duplicate-dispute")


def test_disputes_on_different_transactions_are_fine() -> None:
    args = {**DISPUTE_ARGS, "dispute_id": CALL, "transaction_id": "tx-2"}
    given(*VERIFIED_CALL, disputed("tx-1")).when(dispute_charge, **args).then(ChargeDisputed)


def test_disputed_amount_is_positive() -> None:
    given(*VERIFIED_CALL).when(dispute_charge, **{**DISPUTE_ARGS, "amount": jpy("0")}).refused(
        "invalid-amount"
    )


def test_each_reviewed_transaction_is_its_own_event() -> None:
    second = msgspec.structs.replace(TRANSACTION, transaction_id="tx-2")
    given(*VERIFIED_CALL).when(
        review_transactions, contact_id=CALL, transactions=[TRANSACTION, second]
    ).then(TransactionReviewed, TransactionReviewed)


def test_resolving_an_unknown_dispute_is_refused() -> None:
    given(*VERIFIED_CALL).when(
        resolve_dispute, dispute_id=DISPUTE, outcome="upheld", note=""
    ).refused("unknown-dispute")


def test_a_dispute_is_resolved_once() -> None:
    story = given(*VERIFIED_CALL, disputed())
    outcome = story.when(resolve_dispute, dispute_id=DISPUTE, outcome="upheld", note="won")
    given(*story.history, *outcome.then(DisputeResolved)).when(
        resolve_dispute, dispute_id=DISPUTE, outcome="rejected", note=""
    ).refused("dispute-already-resolved")


def test_liability_is_waived_once_per_dispute() -> None:
    args = dict(contact_id=CALL, dispute_id=DISPUTE, note="pending investigation")
    story = given(*VERIFIED_CALL, disputed())
    [waiver] = story.when(waive_liability, **args).then(CustomerLiabilityWaived)
    given(*story.history, waiver).when(waive_liability, **args).refused("liability-already-waived")


def test_waiver_for_an_unknown_dispute_is_refused() -> None:
    given(*VERIFIED_CALL).when(
        waive_liability, contact_id=CALL, dispute_id=DISPUTE, note=""
    ).refused("unknown-dispute")


def test_payment_stop_for_a_merchant_needs_the_merchant() -> None:
    given(*VERIFIED_CALL).when(stop_payments, contact_id=CALL, scope="merchant").refused(
        "payment-stop-needs-merchant"
    )


def test_an_overseas_stop_names_no_merchant() -> None:
    given(*VERIFIED_CALL).when(
        stop_payments, contact_id=CALL, scope="all_overseas", merchant="WEBTEL"
    ).refused("payment-stop-merchant-unexpected")
    given(*VERIFIED_CALL).when(stop_payments, contact_id=CALL, scope="all_overseas").then(
        PaymentStopped
    )


def test_the_same_payment_stop_is_not_placed_twice() -> None:
    story = given(*VERIFIED_CALL)
    [stop] = story.when(stop_payments, **STOP_ARGS).then(PaymentStopped)
    given(*story.history, stop).when(
        stop_payments, **{**STOP_ARGS, "merchant": " webtel "}
    ).refused("duplicate-payment-stop")


def test_a_disputed_transaction_date_has_come() -> None:
    later = (NOW + timedelta(days=3)).date()
    given(*VERIFIED_CALL).when(dispute_charge, **{**DISPUTE_ARGS, "transaction_date": later}).refused(
        "transaction-date-in-future"
    )


def test_a_customer_notice_says_what_was_told() -> None:
    given(*VERIFIED_CALL).when(notify_customer, channel="call", subject="other", summary="  ").refused(
        "notice-needs-summary"
    )


def test_a_dispute_moves_through_the_network_stages_in_order() -> None:
    given(*VERIFIED_CALL, disputed()).when(
        record_dispute_stage, dispute_id=DISPUTE, stage="representment", network_reference=None, note="early"
    ).refused("dispute-stage-out-of-order")
    given(*VERIFIED_CALL, disputed()).when(
        record_dispute_stage, dispute_id=DISPUTE, stage="filed", network_reference="VROL-1", note="sent"
    ).then(DisputeStageRecorded)


def test_a_final_stage_also_resolves_the_dispute() -> None:
    events = given(*VERIFIED_CALL, disputed()).when(
        record_dispute_stage, dispute_id=DISPUTE, stage="withdrawn", network_reference=None, note="recognised"
    ).then(DisputeStageRecorded, DisputeResolved)
    assert isinstance(events[1], DisputeResolved) and events[1].outcome == "withdrawn"


def test_a_resolved_dispute_takes_no_more_stages() -> None:
    resolved_dispute = DisputeResolved(**{**_fields(disputed()), "dispute_id": DISPUTE}, outcome="upheld", note="")
    given(*VERIFIED_CALL, disputed(), resolved_dispute).when(
        record_dispute_stage, dispute_id=DISPUTE, stage="filed", network_reference=None, note="late"
    ).refused("dispute-already-resolved")


def _fields(event: ChargeDisputed) -> dict[str, object]:
    return {f: getattr(event, f) for f in ("originator_id", "originator_version", "timestamp", "actor", "contact_id")}
