"""Two application services on one store, as two API processes: each trusts its own copy of a case
for speed, yet never decides on, nor refuses from, a copy another process has moved past."""

from __future__ import annotations

import uuid
from functools import partial

import pytest

from casedesk.domain import decisions as d
from casedesk.domain.errors import RuleViolation
from casedesk.domain.events import HandoffNoteAdded
from casedesk.domain.values import Card, ContactStart, Customer, Fee, Money
from casedesk.services.case_service import CaseService, VersionMismatchError
from casedesk.services.store.event_mapper import CaseEventMapper
from casedesk.services.store.event_store import EventStore
from tests.projections.helpers import AGENT, REGISTERED


async def opened_in_both(pool) -> tuple[CaseService, CaseService, uuid.UUID, uuid.UUID]:  # type: ignore[no-untyped-def]
    first, second = CaseService(EventStore(pool), CaseEventMapper()), CaseService(EventStore(pool), CaseEventMapper())
    contact = ContactStart(contact_id=uuid.uuid4(), direction="inbound", channel="phone", phone=REGISTERED,
                           department="fraud")
    opened = await first.open(AGENT, partial(
        d.open_case, case_id=uuid.uuid4(), customer=Customer(customer_id="c", name_masked="T", name_key="n",
                                                              phone=REGISTERED),
        cards=(Card(card_id="p", last4="4242", network="visa", kind="primary"),), reason="fraud_alert",
        channel="phone", summary="alert", contact=contact))
    await second.load(opened.case.id)  # both now hold a copy
    return first, second, opened.case.id, contact.contact_id


def note(text: str) -> partial:  # type: ignore[type-arg]
    return partial(d.add_handoff_note, note_id=uuid.uuid4(), text=text, for_department=None, pinned=False)


async def test_a_command_on_a_copy_another_process_moved_past_is_redone_on_fresh_state(pool) -> None:
    first, second, case_id, _ = await opened_in_both(pool)
    await first.change(AGENT, case_id, note("from the first process"))
    outcome = await second.change(AGENT, case_id, note("from the second process"))
    assert outcome.version == 4  # opened (2 events), then one note each
    stored = [second.mapper.to_domain_event(s) for s in await second.store.read_stream(case_id)]
    assert [e.text for e in stored if isinstance(e, HandoffNoteAdded)] == ["from the first process",
                                                                            "from the second process"]


async def test_a_refusal_is_never_given_from_a_stale_copy(pool) -> None:
    first, second, case_id, contact_id = await opened_in_both(pool)
    await first.change(AGENT, case_id, partial(d.check_identity, contact_id=contact_id, method="knowledge_based",
                                               passed=True, factors=("date_of_birth",)))
    await first.change(AGENT, case_id, partial(d.suspend_card, card_id="p", reason="fraud", include_linked=False))
    # The second process's copy has neither the verification nor the suspension: on it, a reissue is refused.
    reissue = partial(d.reissue_card, contact_id=contact_id, card_id="p", new_card_id="n", new_last4="1111",
                      delivery="mail", expedite=False, fee=Fee(amount=Money(amount="0", currency="JPY"), bearer="issuer"))
    outcome = await second.change(AGENT, case_id, reissue)
    assert outcome.case.cards["p"].state == "replaced"


async def test_if_match_is_checked_against_the_stored_version_not_the_copy(pool) -> None:
    first, second, case_id, _ = await opened_in_both(pool)
    await first.change(AGENT, case_id, note("moves the case to version 3"))
    outcome = await second.change(AGENT, case_id, note("expects version 3"), expected_version=3)
    assert outcome.version == 4
    with pytest.raises(VersionMismatchError):
        await second.change(AGENT, case_id, note("expects an old version"), expected_version=3)
    with pytest.raises(RuleViolation):  # and a real refusal still comes through
        await second.change(AGENT, case_id, partial(d.suspend_card, card_id="nope", reason="x", include_linked=False))
