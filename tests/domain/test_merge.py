"""Merging duplicate cases: given two cases, when one is merged into (or unmerged from) the other, then...

Each case is its own stream; `two_cases` numbers each one's facts. A merge
answers events for both streams: CaseMergedInto on the absorbed case,
CaseMerged on the survivor; an unmerge CaseUnmerged on both.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec
import pytest

from casedesk.domain import events as ev
from casedesk.domain.case import FraudCase, replay
from casedesk.domain.decisions import add_handoff_note, merge_case, suspend_card, unmerge_case
from casedesk.domain.errors import CaseMergedError, RuleViolation
from casedesk.domain.values import Actor, Customer

from .story import AGENT, CASE, CUSTOMER, NOW, SUPERVISOR, opened

SURVIVOR = UUID(int=2)
THIRD = UUID(int=3)
SYSTEM = Actor(id="system:processor", name="casedesk", role="system", department="fraud")


def case_of(case_id: UUID, *facts: ev.CaseEvent, customer: Customer = CUSTOMER) -> FraudCase:
    """A case `case_id` that went through `facts` (an opening first; versions numbered)."""
    history = [msgspec.structs.replace(e, originator_id=case_id, originator_version=n)
               for n, e in enumerate((msgspec.structs.replace(opened(), customer=customer), *facts), 1)]
    case = replay(history)
    assert case is not None
    return case


def merge(absorbed: FraudCase, survivor: FraudCase, **kwargs: Any) -> list[ev.CaseEvent]:
    kwargs.setdefault("actor", AGENT)
    kwargs.setdefault("at", NOW)
    kwargs.setdefault("reason", "the customer called twice")
    return merge_case(absorbed, survivor, **kwargs)


def unmerge(survivor: FraudCase, absorbed: FraudCase, **kwargs: Any) -> list[ev.CaseEvent]:
    kwargs.setdefault("actor", AGENT)
    kwargs.setdefault("at", NOW)
    kwargs.setdefault("reason", "not the same incident")
    return unmerge_case(survivor, absorbed, **kwargs)


def after(case: FraudCase, events: list[ev.CaseEvent]) -> FraudCase:
    changed = replay([e for e in events if e.originator_id == case.id], case)
    assert changed is not None
    return changed


def merged_pair() -> tuple[FraudCase, FraudCase]:
    absorbed, survivor = case_of(CASE), case_of(SURVIVOR)
    events = merge(absorbed, survivor)
    return after(absorbed, events), after(survivor, events)


def refused(rule: str, decide: Any, *args: Any, **kwargs: Any) -> RuleViolation:
    with pytest.raises(RuleViolation) as refusal:
        decide(*args, **kwargs)
    assert refusal.value.rule == rule, refusal.value
    return refusal.value


def test_a_merge_records_merged_into_on_the_absorbed_case_and_merged_on_the_survivor() -> None:
    absorbed, survivor = case_of(CASE), case_of(SURVIVOR)
    into, merged = merge(absorbed, survivor)
    assert isinstance(into, ev.CaseMergedInto) and isinstance(merged, ev.CaseMerged)
    assert (into.originator_id, into.originator_version, into.survivor_case_id) == (CASE, 2, SURVIVOR)
    assert (merged.originator_id, merged.originator_version) == (SURVIVOR, 2)
    assert (merged.absorbed_case_id, merged.absorbed_version) == (CASE, 1)
    assert after(absorbed, [into]).merged_into == SURVIVOR
    assert after(survivor, [merged]).absorbed == (CASE,)


def test_the_absorbed_case_refuses_commands_as_case_merged_naming_the_survivor() -> None:
    absorbed, _ = merged_pair()
    refusal = refused("case-merged", add_handoff_note, absorbed, actor=AGENT, at=NOW, note_id=UUID(int=5),
                      text="called again", for_department=None, pinned=False)
    assert isinstance(refusal, CaseMergedError) and refusal.merged_into == SURVIVOR
    refused("case-merged", suspend_card, absorbed, actor=AGENT, at=NOW, card_id="card-p", include_linked=False,
            reason="stolen")


def test_casedesk_itself_still_records_on_an_absorbed_case() -> None:
    """A processor's answer to an instruction sent before the merge is a fact, not a command."""
    absorbed, _ = merged_pair()
    events = add_handoff_note(absorbed, actor=SYSTEM, at=NOW, note_id=UUID(int=5), text="answer",
                              for_department=None, pinned=False)
    assert [type(e) for e in events] == [ev.HandoffNoteAdded]


def test_merging_a_case_into_itself_is_refused_as_merge_into_itself() -> None:
    case = case_of(CASE)
    refused("merge-into-itself", merge, case, case)


def test_merging_into_a_case_merged_away_is_refused_as_merge_into_merged_case() -> None:
    absorbed, _ = merged_pair()
    third = case_of(THIRD)
    refused("merge-into-merged-case", merge, third, absorbed)


def test_merging_a_case_merged_elsewhere_is_refused_as_case_merged() -> None:
    absorbed, _ = merged_pair()
    refused("case-merged", merge, absorbed, case_of(THIRD))


def test_merging_the_survivor_back_into_its_absorbed_case_is_refused_as_merge_cycle() -> None:
    absorbed, survivor = merged_pair()
    refused("merge-cycle", merge, survivor, absorbed)


def test_merging_again_into_the_case_that_already_holds_it_is_refused_as_merge_already_holds_case() -> None:
    absorbed, survivor = merged_pair()
    refused("merge-already-holds-case", merge, absorbed, survivor)


def test_a_case_holding_merged_cases_is_not_absorbed_itself_merge_of_case_holding_merges() -> None:
    _, survivor = merged_pair()
    refused("merge-of-case-holding-merges", merge, survivor, case_of(THIRD))


def test_merging_into_a_resolved_case_is_refused_as_case_resolved() -> None:
    resolved = ev.CaseResolved(**_facts_stamp(), resolution="no_fraud", summary="done")
    refused("case-resolved", merge, case_of(CASE), case_of(SURVIVOR, resolved))


def test_a_merge_needs_a_reason_merge_needs_reason() -> None:
    refused("merge-needs-reason", merge, case_of(CASE), case_of(SURVIVOR), reason="  ")


def test_cases_of_different_customers_are_merged_only_by_a_supervisor_who_says_so_merge_across_customers() -> None:
    other = msgspec.structs.replace(CUSTOMER, customer_id="cust-2")
    absorbed, survivor = case_of(CASE, customer=other), case_of(SURVIVOR)
    refused("merge-across-customers", merge, absorbed, survivor)
    refused("merge-across-customers", merge, absorbed, survivor, actor=SUPERVISOR)
    # An agent's different_customer_ok counts for nothing (the API answers it 403 before this).
    refused("merge-across-customers", merge, absorbed, survivor, different_customer_ok=True)
    merged = merge(absorbed, survivor, actor=SUPERVISOR, different_customer_ok=True)[1]
    assert isinstance(merged, ev.CaseMerged) and merged.different_customer


def test_an_unmerge_records_unmerged_on_both_and_frees_the_absorbed_case() -> None:
    absorbed, survivor = merged_pair()
    events = unmerge(survivor, absorbed)
    assert [(type(e), e.originator_id, e.originator_version) for e in events] == [
        (ev.CaseUnmerged, SURVIVOR, 3), (ev.CaseUnmerged, CASE, 3)]
    freed, kept = after(absorbed, events), after(survivor, events)
    assert (freed.merged_into, kept.absorbed) == (None, ())
    # Both read again as before the merge, but for their versions.
    assert msgspec.structs.replace(freed, version=1) == case_of(CASE)
    assert msgspec.structs.replace(kept, version=1) == case_of(SURVIVOR)
    add_handoff_note(freed, actor=AGENT, at=NOW, note_id=UUID(int=5), text="works again", for_department=None,
                     pinned=False)


def test_unmerging_a_case_not_merged_into_this_one_is_refused_as_unmerge_not_merged_here() -> None:
    absorbed, survivor = merged_pair()
    refused("unmerge-not-merged-here", unmerge, case_of(THIRD), absorbed)
    refused("unmerge-not-merged-here", unmerge, survivor, case_of(THIRD))
    refused("unmerge-not-merged-here", unmerge, absorbed, survivor)


def test_an_unmerge_needs_a_reason_unmerge_needs_reason() -> None:
    absorbed, survivor = merged_pair()
    refused("unmerge-needs-reason", unmerge, survivor, absorbed, reason="")


def test_the_freed_case_can_be_merged_again() -> None:
    absorbed, survivor = merged_pair()
    events = unmerge(survivor, absorbed)
    again = merge(after(absorbed, events), after(survivor, events))
    assert [type(e) for e in again] == [ev.CaseMergedInto, ev.CaseMerged]


def _facts_stamp() -> dict[str, Any]:
    return dict(originator_id=CASE, originator_version=0, timestamp=NOW, actor=AGENT, contact_id=None)
