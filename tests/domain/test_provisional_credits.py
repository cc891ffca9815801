"""Provisional credits: given a disputed charge, when the desk credits or reverses, then the rule holds.

The dispute in the story is JPY 1,995 (`disputed()`); credits not reversed
together never exceed it.
"""

from uuid import UUID

from casedesk.domain import events as ev
from casedesk.domain.decisions import (
    grant_provisional_credit,
    resolve_dispute,
    reverse_provisional_credit,
)
from casedesk.domain.values import Money

from .story import CALL, DISPUTE, NOW, VERIFIED_CALL, _stamp, disputed, given, jpy, resolved

CREDIT = UUID(int=90)
SECOND = UUID(int=91)
OTHER_DISPUTE = UUID(int=92)


def credited(amount: str = "1995", credit_id: UUID = CREDIT) -> ev.ProvisionalCreditGranted:
    return ev.ProvisionalCreditGranted(**_stamp(NOW), credit_id=credit_id, dispute_id=DISPUTE, amount=jpy(amount))


def reversed_credit(credit_id: UUID = CREDIT) -> ev.ProvisionalCreditReversed:
    return ev.ProvisionalCreditReversed(**_stamp(NOW), credit_id=credit_id, reason="dispute lost")


def grant(amount: Money, dispute_id: UUID = DISPUTE, credit_id: UUID = SECOND) -> dict[str, object]:
    return dict(credit_id=credit_id, dispute_id=dispute_id, amount=amount)


def test_a_credit_up_to_the_disputed_amount_is_granted() -> None:
    [event] = given(*VERIFIED_CALL, disputed()).when(
        grant_provisional_credit, **grant(jpy("1995")), contact_id=CALL).then(ev.ProvisionalCreditGranted)
    assert isinstance(event, ev.ProvisionalCreditGranted)
    assert (event.dispute_id, event.amount, event.contact_id) == (DISPUTE, jpy("1995"), CALL)


def test_credits_together_above_the_disputed_amount_are_refused_as_credit_above_disputed_amount() -> None:
    given(*VERIFIED_CALL, disputed()).when(grant_provisional_credit, **grant(jpy("1996"))).refused(
        "credit-above-disputed-amount")
    given(*VERIFIED_CALL, disputed(), credited("1000")).when(grant_provisional_credit, **grant(jpy("996"))).refused(
        "credit-above-disputed-amount")
    given(*VERIFIED_CALL, disputed(), credited("1000")).when(grant_provisional_credit, **grant(jpy("995"))).then(
        ev.ProvisionalCreditGranted)


def test_a_reversed_credit_no_longer_counts_against_the_disputed_amount() -> None:
    given(*VERIFIED_CALL, disputed(), credited(), reversed_credit()).when(
        grant_provisional_credit, **grant(jpy("1995"))).then(ev.ProvisionalCreditGranted)


def test_a_credit_in_another_currency_than_the_dispute_is_refused_as_credit_currency_mismatch() -> None:
    given(*VERIFIED_CALL, disputed()).when(
        grant_provisional_credit, **grant(Money(amount="10.00", currency="USD"))).refused("credit-currency-mismatch")


def test_a_credit_for_an_unknown_dispute_is_refused_as_unknown_dispute() -> None:
    given(*VERIFIED_CALL, disputed()).when(
        grant_provisional_credit, **grant(jpy("100"), dispute_id=OTHER_DISPUTE)).refused("unknown-dispute")


def test_a_credit_for_a_resolved_dispute_is_refused_as_dispute_already_resolved() -> None:
    story = given(*VERIFIED_CALL, disputed())
    done = story.when(resolve_dispute, dispute_id=DISPUTE, outcome="rejected", note="merchant proved it").then(
        ev.DisputeResolved)
    given(*story.history, *done).when(grant_provisional_credit, **grant(jpy("100"))).refused(
        "dispute-already-resolved")


def test_a_credit_of_zero_is_refused_as_invalid_amount() -> None:
    given(*VERIFIED_CALL, disputed()).when(grant_provisional_credit, **grant(jpy("0"))).refused("invalid-amount")


def test_a_credit_naming_a_contact_not_on_the_case_is_refused_as_unknown_contact() -> None:
    given(*VERIFIED_CALL, disputed()).when(
        grant_provisional_credit, **grant(jpy("100")), contact_id=OTHER_DISPUTE).refused("unknown-contact")


def test_a_credit_id_is_used_once_as_duplicate_credit() -> None:
    given(*VERIFIED_CALL, disputed(), credited("100")).when(
        grant_provisional_credit, **grant(jpy("100"), credit_id=CREDIT)).refused("duplicate-credit")


def test_no_credit_on_a_resolved_case() -> None:
    given(*VERIFIED_CALL, disputed(), resolved()).when(grant_provisional_credit, **grant(jpy("100"))).refused(
        "case-resolved")


def test_a_credit_is_reversed_with_its_reason() -> None:
    [event] = given(*VERIFIED_CALL, disputed(), credited()).when(
        reverse_provisional_credit, credit_id=CREDIT, reason="dispute lost").then(ev.ProvisionalCreditReversed)
    assert isinstance(event, ev.ProvisionalCreditReversed) and event.reason == "dispute lost"


def test_reversing_an_unknown_credit_is_refused_as_unknown_credit() -> None:
    given(*VERIFIED_CALL, disputed(), credited()).when(
        reverse_provisional_credit, credit_id=SECOND, reason="dispute lost").refused("unknown-credit")


def test_reversing_a_credit_twice_is_refused_as_credit_already_reversed() -> None:
    given(*VERIFIED_CALL, disputed(), credited(), reversed_credit()).when(
        reverse_provisional_credit, credit_id=CREDIT, reason="again").refused("credit-already-reversed")


def test_a_reversal_says_why_or_is_refused_as_reversal_needs_reason() -> None:
    given(*VERIFIED_CALL, disputed(), credited()).when(
        reverse_provisional_credit, credit_id=CREDIT, reason="  ").refused("reversal-needs-reason")
