"""The case_clocks table: every deadline clock, one row each, and how many stand at risk or breached per rule.

Written by the case_files projection beside each changed case file (its view
carries the same clocks). A running clock is at risk when due within the
deadlines window and breached once past due: both are said at query time,
since time passing, not an event, moves a clock there.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from casedesk.projections.timeline.shapes import CaseFile
from casedesk.projections.work_queues import DEADLINE_WINDOW


class ClockRisk(msgspec.Struct, frozen=True, kw_only=True):
    """Per rule: running clocks due within the window (at risk), running ones past due, and clocks met late."""

    rule: str
    at_risk: int
    breached: int
    met_late: int


async def write_clocks(conn: asyncpg.Connection, files: Sequence[CaseFile], new: Collection[UUID] = ()) -> None:
    """The clocks of the files whose clocks moved (most events move none: nothing to write).

    `new` names the cases that had no case_files row before this batch: they have no clock
    rows either (both are written in the batch's transaction), so theirs are copied in,
    which in a rebuild, where nearly every case is new to its batch, is most of them. The
    others are upserted: a case's clocks only ever grow (a started clock is changed in
    place, never dropped), so clock n of a case is inserted or overwritten.
    """
    copied: list[tuple[Any, ...]] = []
    upserted: list[tuple[Any, ...]] = []
    for f in files:
        if f.clocks_moved:
            rows = copied if f.view.case_id in new else upserted
            rows.extend((f.view.case_id, n, c.rule, c.state, c.due_at, c.met_at) for n, c in enumerate(f.view.clocks))
    if copied:
        await conn.copy_records_to_table("case_clocks", records=copied,
                                         columns=("case_id", "n", "rule", "state", "due_at", "met_at"))
    if upserted:
        await conn.execute(
            "INSERT INTO case_clocks (case_id, n, rule, state, due_at, met_at) SELECT * FROM unnest($1::uuid[],"
            " $2::smallint[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[])"
            " ON CONFLICT (case_id, n) DO UPDATE SET rule = excluded.rule, state = excluded.state,"
            " due_at = excluded.due_at, met_at = excluded.met_at", *zip(*upserted, strict=True))


_RISKS = f"""
SELECT rule,
       count(*) FILTER (WHERE state = 'running' AND due_at >= now()
                        AND due_at < now() + interval '{DEADLINE_WINDOW}') AS at_risk,
       count(*) FILTER (WHERE state = 'running' AND due_at < now()) AS breached,
       count(*) FILTER (WHERE state = 'breached') AS met_late
FROM case_clocks GROUP BY rule ORDER BY rule
"""


async def clock_risks(conn: Any) -> list[ClockRisk]:
    """Per rule with any clock: how many are at risk, breached (still running) and were met late."""
    return [ClockRisk(**dict(r)) for r in await conn.fetch(_RISKS)]
