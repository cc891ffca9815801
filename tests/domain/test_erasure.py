"""Erasure of a customer's personal data: given a case, when erasure is decided, then...

And which fields are the personal ones: `with_personal` passes exactly those through.
"""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import pytest

from casedesk.domain import events as ev
from casedesk.domain.case import FraudCase, replay
from casedesk.domain.decisions_erasure import erase_customer_data
from casedesk.domain.errors import RuleViolation
from casedesk.domain.personal_fields import PERSONAL_FIELDS, with_personal
from casedesk.domain.values import Actor, PhoneNumber

from .story import AGENT, CALL, CASE, NOW, opened

ADMIN = Actor(id="admin-1", name="R. Admin", role="admin", department="privacy")


def a_case() -> FraudCase:
    case = replay([opened()])
    assert case is not None
    return case


def test_given_a_case_when_its_customers_data_is_erased_then_the_erasure_is_recorded_with_who_when_why() -> None:
    case = a_case()
    [erased] = erase_customer_data(case, actor=ADMIN, at=NOW, reason="retention ended")
    assert isinstance(erased, ev.CustomerDataErased)
    assert (erased.customer_id, erased.reason, erased.actor, erased.timestamp) == (
        case.customer.customer_id, "retention ended", ADMIN, NOW)
    assert erased.originator_version == case.version + 1 and erased.contact_id is None
    after = replay([erased], case)
    assert after is not None and after.personal_data_erased_at == NOW


def test_given_an_erased_case_when_erased_again_then_nothing_is_recorded() -> None:
    case = replay(erase_customer_data(a_case(), actor=ADMIN, at=NOW, reason="r"), a_case())
    assert case is not None
    assert erase_customer_data(case, actor=ADMIN, at=NOW + timedelta(days=1), reason="r") == []


def test_given_data_written_after_an_erasure_when_erased_again_then_it_is_recorded_again_keeping_the_first_time() -> None:
    case = replay(erase_customer_data(a_case(), actor=ADMIN, at=NOW, reason="r"), a_case())
    assert case is not None
    later = NOW + timedelta(days=1)
    [again] = erase_customer_data(case, actor=ADMIN, at=later, reason="r", since_key_erased=True)
    after = replay([again], case)
    assert after is not None and after.personal_data_erased_at == NOW


def test_given_no_reason_when_erasure_is_asked_then_it_is_refused() -> None:
    with pytest.raises(RuleViolation) as refused:
        erase_customer_data(a_case(), actor=ADMIN, at=NOW, reason="  ")
    assert refused.value.rule == "erasure-needs-reason"


def test_a_merged_away_case_records_its_erasure_too() -> None:
    case = a_case()
    merged = ev.CaseMergedInto(originator_id=case.id, originator_version=case.version + 1, timestamp=NOW, actor=AGENT,
                               survivor_case_id=UUID(int=9), reason="called twice")
    case = replay([merged], case)
    assert case is not None
    assert [type(e) for e in erase_customer_data(case, actor=ADMIN, at=NOW, reason="r")] == [ev.CustomerDataErased]


def test_personal_fields_are_the_names_phones_summaries_and_notes_and_nothing_else() -> None:
    event = opened()
    marked = with_personal(event, lambda text: f"<{text}>")
    assert marked.customer.name_masked == f"<{event.customer.name_masked}>"
    assert marked.customer.phone.masked == f"<{event.customer.phone.masked}>"
    assert marked.summary == f"<{event.summary}>"
    # The skeleton is untouched: ids, digests, cards, reason, channel, time, actor.
    assert marked.customer.customer_id == event.customer.customer_id
    assert marked.customer.name_key == event.customer.name_key and marked.customer.phone.key == event.customer.phone.key
    assert (marked.cards, marked.reason, marked.timestamp, marked.actor) == (event.cards, event.reason,
                                                                            event.timestamp, event.actor)
    note = ev.HandoffNoteAdded(originator_id=CASE, originator_version=2, timestamp=NOW, actor=AGENT,
                               contact_id=CALL, note_id=UUID(int=5), text="call after six", for_department=None,
                               pinned=True)
    assert with_personal(note, str.upper).text == "CALL AFTER SIX"
    daytime = ev.ContactDetailsRecorded(originator_id=CASE, originator_version=2, timestamp=NOW,
                                        actor=AGENT, daytime_phone=PhoneNumber(masked="•••• 1234", key="k",
                                                                               number="+81312341234"))
    changed = with_personal(daytime, lambda t: "x")
    assert (changed.daytime_phone.masked, changed.daytime_phone.number, changed.daytime_phone.key) == ("x", "x", "k")
    # An event without personal fields comes back as it was; every listed path names a real field.
    suspended = ev.CardSuspended(originator_id=CASE, originator_version=2, timestamp=NOW, actor=AGENT,
                                 card_id="card-p", reason="fraud", linked=False)
    assert with_personal(suspended, lambda t: "x") is suspended
    for kind, paths in PERSONAL_FIELDS.items():
        fields = {f.split(".")[0] for f in paths}
        assert fields <= set(kind.__struct_fields__), kind
