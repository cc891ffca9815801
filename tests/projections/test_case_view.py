"""The case view agrees with the domain: the next agent reads what the rules see."""

from __future__ import annotations

import msgspec

from casedesk.domain.case import replay
from casedesk.projections.timeline.fold import fold
from tests.domain.story import FAMILY, PRIMARY, call_started, failed, given, opened, replaced, suspended, verified


def view_of(*facts):  # type: ignore[no-untyped-def]
    history = given(*facts).history
    file = fold(history)
    assert file is not None
    return file.view, replay(history)


def test_a_failed_check_after_a_pass_withdraws_the_verification() -> None:
    view, case = view_of(opened(PRIMARY), call_started(), verified(), failed())
    assert view.identity.verified_in_contact is None
    assert case is not None and case.contacts[str(view.contacts[0].contact_id)].verified_by is None


def test_family_cards_follow_their_reissued_primary_as_in_the_domain() -> None:
    view, case = view_of(opened(PRIMARY, FAMILY), call_started(), verified(), suspended("card-p"),
                         replaced("card-p", "card-n"))
    assert case is not None
    family = next(c for c in view.cards if c.card_id == "card-f")
    assert family.primary_card_id == case.cards["card-f"].primary_card_id == "card-n"
    promised = [p for p in view.handoff.promised if p.kind == "reissue"]
    assert len(promised) == 1 and "card-p" in promised[0].text


def test_the_view_is_plain_json() -> None:
    view, _ = view_of(opened(PRIMARY), call_started(), verified())
    assert msgspec.json.decode(msgspec.json.encode(view))["identity"]["verified_in_contact"]
