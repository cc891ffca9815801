"""Who has a case open right now: heartbeats, not history.

An agent's client tells every ≤ 15 s that it has the case open (`viewing` or
`editing`); 30 s (CASEDESK_PRESENCE_EXPIRY) after the last heartbeat the agent
is no longer on the case. Presence is not a case event: it is in no stream,
no timeline, no hash chain, and nothing a command does waits for it.

Where it lives, and why. The unlogged table `case_presence` (migration 017)
holds one row per agent and case, so every API process, a freshly started one
too, answers GET .../presence from the same truth; NOTIFY-only with each
process's memory would leave a new process blind for up to 15 s and make every
heartbeat a message to every process. The heartbeat statement notifies
`case_presence` (payload: the case id) only when the set of people on the case
changes (someone arrives, changes activity, or comes back after expiring), so
a steady heartbeat costs one upsert of a row that writes no WAL. Leaving by
expiry is noticed by whoever watches the case (services/http/case_stream.py),
at the earliest expiry it read. Times are the database's, so processes whose
clocks differ agree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

import asyncpg
import msgspec

from casedesk.projections.timeline.rows import readable_sql

CHANNEL = "case_presence"
Activity = Literal["viewing", "editing"]

# One statement, one round trip: upsert the heartbeat; notify when the case's set of people changed.
# `prior` and the upsert see the same snapshot, so `prior` is the row as it was before this heartbeat.
HEARTBEAT_SQL = f"""
WITH prior AS (
    SELECT activity, seen_at > now() - make_interval(secs => $5) AS live
    FROM case_presence WHERE case_id = $1 AND agent_id = $2
), beat AS (
    INSERT INTO case_presence AS p (case_id, agent_id, name, activity, since, seen_at)
    VALUES ($1, $2, $3, $4, now(), now())
    ON CONFLICT (case_id, agent_id) DO UPDATE SET
        name = excluded.name, activity = excluded.activity, seen_at = excluded.seen_at,
        since = CASE WHEN p.activity = excluded.activity AND p.seen_at > now() - make_interval(secs => $5)
                     THEN p.since ELSE excluded.since END
    RETURNING 1
)
SELECT pg_notify('{CHANNEL}', $1::text) FROM beat
WHERE NOT EXISTS (SELECT 1 FROM prior WHERE live AND activity = $4)
"""

# The same heartbeat in the same round trip as the access check, for a case the read model holds: the rule
# is check_may_read_parts's ($6: the caller's role reads every case; else a department in common, or the
# assignee). No row written (`beat` 0): the case is not projected yet, not there, or not the caller's; the
# handler then asks the write side, which answers which (services/http/case_stream.py).
_READABLE = readable_sql("$1", "$6", "$7::text[]", "$2")  # the case_files rule, spelled by its owner
CHECKED_HEARTBEAT_SQL = f"""
WITH readable AS (
    {_READABLE}
), prior AS (
    SELECT activity, seen_at > now() - make_interval(secs => $5) AS live
    FROM case_presence WHERE case_id = $1 AND agent_id = $2
), beat AS (
    INSERT INTO case_presence AS p (case_id, agent_id, name, activity, since, seen_at)
    SELECT $1, $2, $3, $4, now(), now() FROM readable
    ON CONFLICT (case_id, agent_id) DO UPDATE SET
        name = excluded.name, activity = excluded.activity, seen_at = excluded.seen_at,
        since = CASE WHEN p.activity = excluded.activity AND p.seen_at > now() - make_interval(secs => $5)
                     THEN p.since ELSE excluded.since END
    RETURNING 1
)
SELECT (SELECT count(*) FROM beat) AS beat,
       (SELECT pg_notify('{CHANNEL}', $1::text) FROM beat
        WHERE NOT EXISTS (SELECT 1 FROM prior WHERE live AND activity = $4)) IS NULL AS quiet
"""

PRESENT_SQL = """
SELECT case_id, agent_id, name, activity, since,
       extract(epoch FROM seen_at + make_interval(secs => $2) - now())::float8 AS leaves_in
FROM case_presence
WHERE case_id = ANY($1::uuid[]) AND seen_at > now() - make_interval(secs => $2)
ORDER BY case_id, since, agent_id
"""

# Rows long expired are only clutter (an agent's row is taken up again by their next heartbeat).
SWEEP_SQL = "DELETE FROM case_presence WHERE seen_at < now() - make_interval(secs => $1) - interval '1 hour'"


class PresentAgent(msgspec.Struct, frozen=True, kw_only=True):
    """One person on the case now, and since when they do what they do."""

    agent_id: str
    name: str
    activity: Activity
    since: datetime


class PresenceAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """GET /v1/cases/{id}/presence, and each `presence` event of the case stream."""

    case_id: UUID
    items: list[PresentAgent]


class Present(msgspec.Struct, frozen=True, kw_only=True):
    """Who is on one case, and in how many seconds the first of them leaves if not heard again."""

    answer: PresenceAnswer
    leaves_in: float | None


async def heartbeat(pool: asyncpg.Pool, case_id: UUID, agent_id: str, name: str, activity: Activity,
                    expiry: float) -> None:
    """Record that `agent_id` has the case open now."""
    await pool.execute(HEARTBEAT_SQL, case_id, agent_id, name, activity, expiry)


async def heartbeat_if_readable(pool: asyncpg.Pool, case_id: UUID, agent_id: str, name: str, activity: Activity,
                                expiry: float, *, reads_every_case: bool, departments: list[str]) -> bool:
    """The heartbeat, if case_files shows the case readable by the caller; False when nothing was written."""
    row = await pool.fetchrow(CHECKED_HEARTBEAT_SQL, case_id, agent_id, name, activity, expiry, reads_every_case,
                              departments)
    return bool(row["beat"])


async def present(pool: asyncpg.Pool | asyncpg.Connection, case_ids: list[UUID],
                  expiry: float) -> dict[UUID, Present]:
    """Who is on each case now (every case asked for is in the answer, maybe with nobody)."""
    rows = await pool.fetch(PRESENT_SQL, case_ids, expiry)
    found: dict[UUID, list[asyncpg.Record]] = {case_id: [] for case_id in case_ids}
    for row in rows:
        found[row["case_id"]].append(row)
    return {
        case_id: Present(
            answer=PresenceAnswer(case_id=case_id, items=[
                PresentAgent(agent_id=r["agent_id"], name=r["name"], activity=r["activity"], since=r["since"])
                for r in people]),
            leaves_in=min((r["leaves_in"] for r in people), default=None))
        for case_id, people in found.items()
    }


async def sweep(pool: asyncpg.Pool, expiry: float) -> None:
    await pool.execute(SWEEP_SQL, expiry)
