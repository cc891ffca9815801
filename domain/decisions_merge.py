"""Decisions about merging duplicate cases, and undoing a merge.

A customer who calls twice can end up with two cases. A merge joins one case
(the absorbed case) into another of the same customer (the survivor): the
survivor records `CaseMerged`, the absorbed case `CaseMergedInto`, in one
command that writes both streams or neither. Neither stream is rewritten: the
read side shows the survivor with both histories, and `unmerge` (`CaseUnmerged`
on both) puts each case back as it was, plus what was done meanwhile.

Merges do not chain: a case holding merged cases is not absorbed itself (unmerge
them first), so a case's history is at most one level deep and no cycle can form.
"""

from __future__ import annotations

from datetime import datetime

from . import events as ev
from .card_data import redact_card_numbers as redact
from .case import FraudCase
from .errors import CaseMergedError, RuleViolation
from .guards import Stamps, still_open
from .values import Actor

# Who may merge cases of two different customers (a household's shared card, a wrong customer id).
MAY_MERGE_ACROSS_CUSTOMERS = frozenset({"supervisor", "admin"})


def merge_case(
    absorbed: FraudCase,
    survivor: FraudCase,
    *,
    actor: Actor,
    at: datetime,
    reason: str,
    different_customer_ok: bool = False,
    absorbed_position: int | None = None,
) -> list[ev.CaseEvent]:
    """Merge `absorbed` into `survivor`: [CaseMergedInto on absorbed, CaseMerged on survivor].

    `absorbed_position` is the notification id of the absorbed case's last event
    (the service reads it; the decision only records it).
    """
    if absorbed.id == survivor.id:
        raise RuleViolation("merge-into-itself", f"case {absorbed.id} cannot be merged into itself")
    if absorbed.id in survivor.absorbed:
        raise RuleViolation("merge-already-holds-case",
                            f"case {survivor.id} already holds the events of case {absorbed.id}")
    if survivor.id in absorbed.absorbed or survivor.merged_into == absorbed.id:
        raise RuleViolation("merge-cycle", f"case {survivor.id} is merged into case {absorbed.id}:"
                            " merging back would make a cycle; unmerge instead")
    if survivor.merged_into is not None:
        raise RuleViolation("merge-into-merged-case",
                            f"case {survivor.id} is merged into case {survivor.merged_into}; merge into that case")
    if absorbed.merged_into is not None:
        raise CaseMergedError(absorbed.id, absorbed.merged_into)
    if absorbed.absorbed:
        raise RuleViolation("merge-of-case-holding-merges",
                            f"case {absorbed.id} holds merged cases; unmerge them before merging it")
    still_open(survivor)
    if not reason.strip():
        raise RuleViolation("merge-needs-reason", "say why the cases are one")
    across = absorbed.customer.customer_id != survivor.customer.customer_id
    if across and not (different_customer_ok and actor.role in MAY_MERGE_ACROSS_CUSTOMERS):
        raise RuleViolation("merge-across-customers",
                            f"case {absorbed.id} and case {survivor.id} are of different customers;"
                            " only a supervisor may merge them, with different_customer_ok")
    text = redact(reason)
    into = Stamps(absorbed.id, absorbed.version, actor, at, None).next()
    merged = Stamps(survivor.id, survivor.version, actor, at, None).next()
    return [
        ev.CaseMergedInto(**into, survivor_case_id=survivor.id, reason=text),
        ev.CaseMerged(**merged, absorbed_case_id=absorbed.id, absorbed_version=absorbed.version,
                      absorbed_position=absorbed_position, reason=text, different_customer=across),
    ]


def unmerge_case(
    survivor: FraudCase,
    absorbed: FraudCase,
    *,
    actor: Actor,
    at: datetime,
    reason: str,
) -> list[ev.CaseEvent]:
    """Undo a merge: CaseUnmerged on the survivor and on the absorbed case (in that order)."""
    if absorbed.merged_into != survivor.id or absorbed.id not in survivor.absorbed:
        raise RuleViolation("unmerge-not-merged-here",
                            f"case {absorbed.id} is not merged into case {survivor.id}")
    if not reason.strip():
        raise RuleViolation("unmerge-needs-reason", "say why the merge is undone")
    text = redact(reason)
    return [
        ev.CaseUnmerged(**Stamps(case.id, case.version, actor, at, None).next(), survivor_case_id=survivor.id,
                        absorbed_case_id=absorbed.id, reason=text)
        for case in (survivor, absorbed)
    ]
