"""Breaches: the record, the outreach case per card, and who pays for its reissue."""

from datetime import timedelta
from uuid import UUID

import msgspec
import pytest

from casedesk.domain import events as ev
from casedesk.domain.breaches import (
    BreachRecorded,
    breach_case_id,
    open_breach_outreach,
    record_breach,
    record_compromise_of,
)
from casedesk.domain.case import replay
from casedesk.domain.decisions import reissue_card, reissue_fee
from casedesk.domain.errors import CardDataRefused, RuleViolation
from casedesk.domain.events import ReplacementCardIssued
from casedesk.domain.values import Fee, FeeAsked

from .story import (
    CASE,
    CUSTOMER,
    NOW,
    PAN,
    PRIMARY,
    REISSUE_ARGS,
    SUPERVISOR,
    T0,
    call_started,
    given,
    jpy,
    suspended,
    verified,
)

BREACH = UUID(int=900)


def breach(bearer: str = "merchant", **changes: object) -> BreachRecorded:
    args: dict = dict(breach_id=BREACH, actor=SUPERVISOR, at=NOW, merchant="ShopNet",
                      window_start=T0 - timedelta(days=90), window_end=T0 - timedelta(days=1),
                      data_exposed=("card_number", "security_code"), reissue_fee_bearer=bearer)
    args.update(changes)
    [recorded] = record_breach(**args)
    return recorded


def outreach(bearer: str = "merchant") -> list[ev.CaseEvent]:
    return open_breach_outreach(breach(bearer), actor=SUPERVISOR, at=NOW, customer=CUSTOMER, card=PRIMARY)


def test_a_breach_records_merchant_window_exposure_and_fee_bearer() -> None:
    recorded = breach(data_exposed=("card_number", "security_code", "card_number"))
    assert (recorded.merchant, recorded.reissue_fee_bearer, recorded.originator_version) == ("ShopNet", "merchant", 1)
    assert recorded.data_exposed == ("card_number", "security_code")  # each kind once, in order
    assert "card numbers, security codes exposed" in recorded.exposure()


@pytest.mark.parametrize(("changes", "rule"), [
    (dict(merchant="  "), "merchant-needed"),
    (dict(window_start=T0, window_end=T0 - timedelta(days=1)), "invalid-exposure-window"),
    (dict(window_start=NOW + timedelta(days=1), window_end=NOW + timedelta(days=2)), "invalid-exposure-window"),
    (dict(data_exposed=()), "data-exposed-needed"),
])
def test_a_breach_record_that_makes_no_sense_is_refused(changes: dict, rule: str) -> None:
    with pytest.raises(RuleViolation) as refusal:
        breach(**changes)
    assert refusal.value.rule == rule


def test_a_card_number_as_merchant_is_never_recorded() -> None:
    with pytest.raises(CardDataRefused):
        breach(merchant=PAN)


def test_outreach_opens_a_breach_case_with_the_breach_as_suspected_compromise() -> None:
    opened, compromise = outreach()
    assert isinstance(opened, ev.CaseOpened) and isinstance(compromise, ev.CompromiseSuspected)
    assert opened.originator_id == compromise.originator_id == breach_case_id(BREACH, PRIMARY.card_id)
    assert (opened.reason, opened.channel, opened.contact_id) == ("data_breach", "breach_notice", None)
    assert (compromise.source, compromise.breach_id) == ("data_breach", BREACH)
    assert (compromise.reissue_fee_bearer, compromise.fee_merchant) == ("merchant", "ShopNet")
    assert [e.originator_version for e in (opened, compromise)] == [1, 2]
    assert replay([opened, compromise]).breach_fee.merchant == "ShopNet"  # type: ignore[union-attr]


def test_the_same_card_in_the_same_breach_is_always_the_same_case() -> None:
    assert breach_case_id(BREACH, "card-1") == breach_case_id(BREACH, "card-1")
    assert breach_case_id(BREACH, "card-1") != breach_case_id(UUID(int=901), "card-1")


def breach_case_ready_for_reissue(bearer: str = "merchant") -> tuple[ev.CaseEvent, ...]:
    # The story's facts are about CASE; the outreach events are moved onto it.
    opened_for_breach = [msgspec.structs.replace(e, originator_id=CASE) for e in outreach(bearer)]
    return (*opened_for_breach, call_started(), verified(), suspended())


def test_a_reissue_on_a_breach_case_defaults_its_fee_to_the_breached_merchant() -> None:
    case = given(*breach_case_ready_for_reissue()).case
    assert case is not None
    fee = reissue_fee(case, amount=jpy("1100"), bearer=None, merchant=None)
    assert fee == Fee(amount=jpy("1100"), bearer="merchant", merchant="ShopNet")
    [issued] = given(*breach_case_ready_for_reissue()).when(reissue_card, **{**REISSUE_ARGS, "fee": fee}).then(
        ReplacementCardIssued)
    assert issued.fee.merchant == "ShopNet"  # type: ignore[attr-defined]


def test_naming_the_merchant_as_bearer_fills_in_the_breached_merchant() -> None:
    case = given(*breach_case_ready_for_reissue()).case
    assert case is not None
    assert reissue_fee(case, amount=jpy("0"), bearer="merchant", merchant=None).merchant == "ShopNet"


def test_a_case_without_a_breach_defaults_its_reissue_fee_to_the_issuer() -> None:
    case = given(*(e for e in breach_case_ready_for_reissue() if not isinstance(e, ev.CompromiseSuspected))).case
    assert case is not None
    assert reissue_fee(case, amount=jpy("0"), bearer=None, merchant=None) == Fee(amount=jpy("0"), bearer="issuer")


def test_a_breach_reissue_is_never_charged_to_the_customer() -> None:
    customer_pays = {**REISSUE_ARGS, "fee": Fee(amount=jpy("1100"), bearer="customer")}
    given(*breach_case_ready_for_reissue()).when(reissue_card, **customer_pays).refused(
        "breach-reissue-not-charged-to-customer")
    # ...unless the breach record itself says the customer pays.
    given(*breach_case_ready_for_reissue("customer")).when(reissue_card, **customer_pays).then(ReplacementCardIssued)


def test_only_a_breach_names_a_fee_bearer_for_the_case() -> None:
    from casedesk.domain.decisions import record_compromise

    from .story import opened
    given(opened()).when(record_compromise, source="unknown", detail="?", reissue_fee_bearer="merchant",
                         fee_merchant="X").refused("fee-bearer-needs-breach")
    given(opened()).when(record_compromise, source="data_breach", detail="?", breach_id=BREACH,
                         reissue_fee_bearer="merchant").refused("fee-merchant-mismatch")


def test_a_fee_as_asked_lets_the_case_say_who_pays_unless_the_agent_names_someone() -> None:
    asked = {k: v for k, v in REISSUE_ARGS.items() if k != "fee"}
    [issued] = given(*breach_case_ready_for_reissue()).when(
        reissue_card, **asked, fee=FeeAsked(amount=jpy("1100"))).then(ReplacementCardIssued)
    assert issued.fee == Fee(amount=jpy("1100"), bearer="merchant", merchant="ShopNet")  # type: ignore[attr-defined]
    [issued] = given(*breach_case_ready_for_reissue()).when(
        reissue_card, **asked, fee=FeeAsked(amount=jpy("1100"), bearer="issuer")).then(ReplacementCardIssued)
    assert issued.fee == Fee(amount=jpy("1100"), bearer="issuer")  # type: ignore[attr-defined]


@pytest.mark.parametrize(("bearer", "fee_merchant"), [("merchant", "ShopNet"), ("issuer", None)])
def test_a_compromise_of_a_recorded_breach_takes_who_pays_from_the_breach(bearer: str, fee_merchant: str | None
                                                                          ) -> None:
    from .story import opened
    [suspected] = given(opened()).when(record_compromise_of, source="data_breach", detail="ShopNet leak",
                                       breach=breach(bearer)).then(ev.CompromiseSuspected)
    assert (suspected.breach_id, suspected.reissue_fee_bearer, suspected.fee_merchant) == (  # type: ignore[attr-defined]
        BREACH, bearer, fee_merchant)


def test_a_compromise_without_a_breach_names_no_fee_bearer() -> None:
    from .story import opened
    [suspected] = given(opened()).when(record_compromise_of, source="unknown", detail="a call").then(
        ev.CompromiseSuspected)
    assert (suspected.breach_id, suspected.reissue_fee_bearer) == (None, None)  # type: ignore[attr-defined]
