"""Liability waivers: given a disputed charge, a waiver records how much and whether for good.

A pending waiver (while the dispute runs) may later be made final, once.
"""

from casedesk.domain import events as ev
from casedesk.domain.decisions import waive_liability

from .story import CALL, DISPUTE, VERIFIED_CALL, disputed, given, jpy


def test_a_waiver_records_its_amount_and_finality() -> None:
    [event] = given(*VERIFIED_CALL, disputed()).when(
        waive_liability, contact_id=CALL, dispute_id=DISPUTE, note="written off", amount=jpy("1995"),
        finality="final").then(ev.CustomerLiabilityWaived)
    assert isinstance(event, ev.CustomerLiabilityWaived)
    assert (event.amount, event.finality) == (jpy("1995"), "final")


def test_a_waiver_is_pending_unless_said_final() -> None:
    [event] = given(*VERIFIED_CALL, disputed()).when(
        waive_liability, contact_id=CALL, dispute_id=DISPUTE, note="while investigated").then(
        ev.CustomerLiabilityWaived)
    assert isinstance(event, ev.CustomerLiabilityWaived) and (event.amount, event.finality) == (None, "pending")


def test_a_waived_amount_is_a_real_amount() -> None:
    given(*VERIFIED_CALL, disputed()).when(
        waive_liability, contact_id=CALL, dispute_id=DISPUTE, note="x", amount=jpy("-5")).refused("invalid-amount")


def test_a_pending_waiver_may_be_made_final_once_else_liability_already_waived() -> None:
    args = dict(contact_id=CALL, dispute_id=DISPUTE, note="while investigated")
    story = given(*VERIFIED_CALL, disputed())
    [pending] = story.when(waive_liability, **args).then(ev.CustomerLiabilityWaived)
    given(*story.history, pending).when(waive_liability, **args).refused("liability-already-waived")
    [final] = given(*story.history, pending).when(waive_liability, **args, finality="final").then(
        ev.CustomerLiabilityWaived)
    given(*story.history, pending, final).when(waive_liability, **args, finality="final").refused(
        "liability-already-waived")
    given(*story.history, pending, final).when(waive_liability, **args).refused("liability-already-waived")
