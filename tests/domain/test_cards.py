"""Cards: suspension with linked cards, replacement of suspended cards, destruction."""

from casedesk.domain.decisions import (
    record_card_destroyed,
    reissue_card,
    suspend_card,
    suspend_online_access,
)
from casedesk.domain.events import (
    CardDestroyed,
    CardSuspended,
    OnlineAccessSuspended,
    ReplacementCardIssued,
)
from casedesk.domain.values import Fee

from .story import (
    FAMILY,
    PRIMARY,
    REISSUE_ARGS,
    SIBLING,
    call_started,
    given,
    jpy,
    opened,
    replaced,
    suspended,
    verified,
)

FAMILY_CASE = opened(PRIMARY, FAMILY, SIBLING)


def suspend(card_id: str, include_linked: bool = True) -> dict[str, object]:
    return dict(card_id=card_id, reason="fraud alert", include_linked=include_linked)


def test_include_linked_suspends_the_family_cards_of_a_primary() -> None:
    events = (
        given(FAMILY_CASE)
        .when(suspend_card, **suspend("card-p"))
        .then(CardSuspended, CardSuspended, CardSuspended)
    )
    assert [(e.card_id, e.linked) for e in events if isinstance(e, CardSuspended)] == [
        ("card-p", False),
        ("card-f", True),
        ("card-g", True),
    ]


def test_include_linked_on_a_family_card_suspends_its_primary_and_siblings() -> None:
    events = (
        given(FAMILY_CASE)
        .when(suspend_card, **suspend("card-f"))
        .then(CardSuspended, CardSuspended, CardSuspended)
    )
    assert [e.card_id for e in events if isinstance(e, CardSuspended)] == [
        "card-f",
        "card-p",
        "card-g",
    ]


def test_without_include_linked_only_the_named_card_is_suspended() -> None:
    given(FAMILY_CASE).when(suspend_card, **suspend("card-f", False)).then(CardSuspended)


def test_linked_cards_already_suspended_are_skipped() -> None:
    events = (
        given(FAMILY_CASE, suspended("card-g"))
        .when(suspend_card, **suspend("card-p"))
        .then(CardSuspended, CardSuspended)
    )
    assert "card-g" not in [e.card_id for e in events if isinstance(e, CardSuspended)]


def test_suspending_a_suspended_card_is_refused() -> None:
    given(opened(), suspended()).when(suspend_card, **suspend("card-p")).refused(
        "card-already-suspended"
    )


def test_suspending_a_replaced_card_is_refused() -> None:
    given(opened(), suspended(), replaced()).when(suspend_card, **suspend("card-p")).refused(
        "card-not-active"
    )


def test_suspending_an_unknown_card_is_refused() -> None:
    given(opened()).when(suspend_card, **suspend("card-x")).refused("unknown-card")


def test_online_access_is_suspended_once() -> None:
    when = given(opened()).when(suspend_online_access, reason="takeover")
    when.then(OnlineAccessSuspended)
    assert when.after is not None and when.after.online_access_suspended


def test_reissue_needs_a_suspended_card() -> None:
    given(opened(), call_started(), verified()).when(reissue_card, **REISSUE_ARGS).refused(
        "card-not-suspended"
    )


def test_reissue_replaces_the_old_card_with_an_active_new_one() -> None:
    when = given(opened(), call_started(), verified(), suspended()).when(
        reissue_card, **REISSUE_ARGS
    )
    when.then(ReplacementCardIssued)
    assert when.after is not None
    old, new = when.after.cards["card-p"], when.after.cards["card-n"]
    assert (old.state, old.replaced_by, new.state, new.last4) == (
        "replaced",
        "card-n",
        "active",
        "0007",
    )


def test_family_cards_follow_their_replaced_primary() -> None:
    case = given(FAMILY_CASE, suspended("card-p"), replaced("card-p", "card-n")).case
    assert case is not None and case.cards["card-f"].primary_card_id == "card-n"


def test_a_replaced_card_is_not_replaced_twice() -> None:
    history = (opened(), call_started(), verified(), suspended(), replaced())
    args = {**REISSUE_ARGS, "new_card_id": "card-m"}
    given(*history).when(reissue_card, **args).refused("card-not-suspended")


def test_a_merchant_fee_names_the_merchant() -> None:
    history = (opened(), call_started(), verified(), suspended())
    unnamed = {**REISSUE_ARGS, "fee": Fee(amount=jpy("1100"), bearer="merchant")}
    given(*history).when(reissue_card, **unnamed).refused("fee-merchant-mismatch")
    named = {**REISSUE_ARGS, "fee": Fee(amount=jpy("1100"), bearer="merchant", merchant="SHOP")}
    given(*history).when(reissue_card, **named).then(ReplacementCardIssued)


def test_destroying_needs_a_replaced_card() -> None:
    args = dict(card_id="card-p", branch="Shinjuku", certificate_id="CERT-1")
    given(opened(), suspended()).when(record_card_destroyed, **args).refused("card-not-replaced")
    given(opened(), suspended(), replaced()).when(record_card_destroyed, **args).then(CardDestroyed)
