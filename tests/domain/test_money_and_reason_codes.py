"""Money a case records respects its currency; disputes name a network's real reason code."""

from __future__ import annotations

import pytest
from msgspec.structs import replace

from casedesk.domain.decisions import dispute_charge, open_case, reissue_card, review_transactions
from casedesk.domain.events import CaseOpened, ChargeDisputed, ReplacementCardIssued, TransactionReviewed
from casedesk.domain.values import Fee, Money
from tests.domain.story import (
    CASE,
    CUSTOMER,
    DISPUTE_ARGS,
    PRIMARY,
    REISSUE_ARGS,
    REVIEW_ARGS,
    TRANSACTION,
    VERIFIED_CALL,
    given,
    suspended,
)

OPEN_ARGS = dict(case_id=CASE, customer=CUSTOMER, cards=[PRIMARY], reason="unrecognized_charge",
                 channel="phone", summary="unknown charge")


def _at_risk(amount: str, currency: str) -> dict[str, object]:
    return {**OPEN_ARGS, "amount_at_risk": Money(amount=amount, currency=currency)}


@pytest.mark.parametrize(("amount", "currency"), [("19999", "JPY"), ("19.99", "USD"), ("19.9", "USD"),
                                                  ("1.250", "KWD"), ("20.00", "USD"), ("100.0", "JPY")])
def test_an_amount_within_its_currencys_minor_units_is_recorded(amount: str, currency: str) -> None:
    given().when(open_case, **_at_risk(amount, currency)).then(CaseOpened)


@pytest.mark.parametrize(("amount", "currency"), [("19.999", "JPY"), ("19.5", "JPY"), ("19.999", "USD"),
                                                  ("1.2501", "KWD")])
def test_an_amount_finer_than_its_currencys_minor_unit_is_refused(amount: str, currency: str) -> None:
    refusal = given().when(open_case, **_at_risk(amount, currency)).refused("invalid-amount")
    assert refusal.field == "amount_at_risk.amount"  # type: ignore[attr-defined]


@pytest.mark.parametrize("amount", ["-5", "0", "-0.01"])
def test_an_amount_at_risk_is_above_zero(amount: str) -> None:
    given().when(open_case, **_at_risk(amount, "USD")).refused("invalid-amount")


def test_an_absurdly_large_amount_is_refused() -> None:
    refusal = given().when(open_case, **_at_risk("1" + "0" * 500, "JPY")).refused("invalid-amount")
    assert refusal.field == "amount_at_risk.amount"  # type: ignore[attr-defined]


def test_a_currency_that_iso_4217_does_not_list_is_refused() -> None:
    refusal = given().when(open_case, **_at_risk("10", "XYZ")).refused("invalid-amount")
    assert refusal.field == "amount_at_risk.currency"  # type: ignore[attr-defined]


def test_a_reviewed_transaction_is_named_by_its_place_when_its_amount_is_wrong() -> None:
    wrong = replace(TRANSACTION, transaction_id="tx-2", amount=Money(amount="-1", currency="JPY"))
    refusal = given(*VERIFIED_CALL).when(review_transactions, **{**REVIEW_ARGS, "transactions": [TRANSACTION, wrong]})\
        .refused("invalid-amount")
    assert refusal.field == "transactions[1].amount.amount"  # type: ignore[attr-defined]
    given(*VERIFIED_CALL).when(review_transactions, **REVIEW_ARGS).then(TransactionReviewed)


def test_a_reissue_fee_of_zero_stays_valid_but_not_a_negative_one() -> None:
    story = given(*VERIFIED_CALL, suspended())
    story.when(reissue_card, **REISSUE_ARGS).then(ReplacementCardIssued)
    negative = {**REISSUE_ARGS, "fee": Fee(amount=Money(amount="-500", currency="JPY"), bearer="issuer")}
    story.when(reissue_card, **negative).refused("invalid-amount")
    fractional_yen = {**REISSUE_ARGS, "fee": Fee(amount=Money(amount="0.5", currency="JPY"), bearer="issuer")}
    story.when(reissue_card, **fractional_yen).refused("invalid-amount")


@pytest.mark.parametrize(("network", "code"), [("visa", "10.4"), ("mastercard", "4837"), ("jcb", "546"),
                                               ("amex", "F29"), ("Visa", "13.1"), ("amex", "f29")])
def test_a_dispute_under_a_networks_reason_code_is_filed(network: str, code: str) -> None:
    given(*VERIFIED_CALL).when(dispute_charge, **{**DISPUTE_ARGS, "network": network, "reason_code": code})\
        .then(ChargeDisputed)


def test_a_dispute_on_an_unknown_network_is_refused_naming_the_network() -> None:
    refusal = given(*VERIFIED_CALL).when(
        dispute_charge, **{**DISPUTE_ARGS, "network": "nonsense-net", "reason_code": "10.4"}
    ).refused("invalid-reason-code")
    assert refusal.field == "network"  # type: ignore[attr-defined]


@pytest.mark.parametrize(("network", "code"), [("visa", "not-a-code"), ("visa", "4837"), ("mastercard", "10.4"),
                                               ("jcb", "F29"), ("amex", "546")])
def test_a_code_the_network_does_not_define_is_refused_naming_the_reason_code(network: str, code: str) -> None:
    refusal = given(*VERIFIED_CALL).when(
        dispute_charge, **{**DISPUTE_ARGS, "network": network, "reason_code": code}
    ).refused("invalid-reason-code")
    assert refusal.field == "reason_code"  # type: ignore[attr-defined]
