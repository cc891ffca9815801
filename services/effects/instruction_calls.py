"""The processor's calls as recorded: the `processor_instructions` table and all its SQL.

The follower (processor_instructions.py) records the calls the decisions ask
for, with its position in the same statement; the sender (processor_sender.py)
works the pending ones a case at a time and marks them answered; the dashboard
and /metrics count those in flight.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import asyncpg

from casedesk.services.store.tracking import move_position_sql

# One statement, so one transaction: the calls and the position move together. Only the lock
# holder moves the position; were it ever not to move, the calls it inserted are already
# there (the token is the key), so nothing would be recorded twice.
_RECORD = (
    "WITH calls AS (INSERT INTO processor_instructions (token, case_id, card_id, instruction, path, body, position,"
    " seq, requested_at) SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::text[],"
    " $6::bytea[], $7::bigint[], $8::smallint[], $9::timestamptz[]) ON CONFLICT (token) DO NOTHING)"
    f" {move_position_sql('$10', '$11')}")

# What the dashboard and /metrics show: instructions not yet answered, and the oldest one's age.
_IN_FLIGHT = """
SELECT count(*) AS in_flight,
       coalesce(greatest(0, floor(extract(epoch FROM now() - min(requested_at)))), 0)::bigint AS oldest_age_seconds
FROM processor_instructions WHERE state = 'pending'
"""

_WAITING_CASES = (
    "SELECT case_id FROM processor_instructions WHERE state = 'pending' AND case_id <> ALL($1::uuid[])"
    " GROUP BY case_id ORDER BY min(position) LIMIT $2")
_NEXT = ("SELECT token, case_id, card_id, instruction, path, body FROM processor_instructions"
         " WHERE case_id = $1 AND state = 'pending' ORDER BY position, seq LIMIT 1")


async def record_calls(conn: asyncpg.Connection, calls: Sequence[tuple[str, UUID, str, str, str, bytes, int, int,
                                                                       datetime]],
                       follower: str, moved_to: int) -> int | None:
    """Record the calls (token, case, card, instruction, path, body, position, n-th of its event, asked at)
    and move `follower`'s position to `moved_to`, in one statement; None if the position did not move."""
    columns = [list(c) for c in zip(*calls, strict=True)] if calls else [[] for _ in range(9)]
    moved: int | None = await conn.fetchval(_RECORD, *columns, follower, moved_to)
    return moved


async def instructions_in_flight(conn: asyncpg.Connection | asyncpg.Pool) -> dict[str, int]:
    """How many instructions wait for the processor's answer, and the oldest one's age in seconds."""
    row = await conn.fetchrow(_IN_FLIGHT)
    return {"in_flight": row["in_flight"], "oldest_age_seconds": row["oldest_age_seconds"]}


async def cases_waiting(pool: asyncpg.Pool, besides: list[UUID], limit: int) -> list[UUID]:
    """Cases with a pending call, the longest waiting first, other than `besides`."""
    return [r[0] for r in await pool.fetch(_WAITING_CASES, besides, limit)]


async def next_call(pool: asyncpg.Pool, case_id: UUID) -> asyncpg.Record | None:
    """The case's next pending call (token, case_id, card_id, instruction, path, body), in decision order."""
    return await pool.fetchrow(_NEXT, case_id)


async def mark_answered(pool: asyncpg.Pool, token: str, confirmed: bool) -> None:
    await pool.execute("UPDATE processor_instructions SET state = $2, answered_at = now() WHERE token = $1",
                       token, "confirmed" if confirmed else "rejected")


async def note_failure(pool: asyncpg.Pool, token: str, error: str) -> None:
    """Count a failed attempt and keep why (a note for people: the retry goes on regardless)."""
    await pool.execute(
        "UPDATE processor_instructions SET attempts = attempts + 1, last_error = $2 WHERE token = $1",
        token, error[:500])
