"""Case snapshots: the `case_snapshots` table and all its SQL.

A snapshot is a cache of a case's replay, kept every so many events so a long
case never loads from its first event; never the truth. Dropped when the events
under it were rewritten (a sealing epoch).
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import asyncpg


def latest_snapshot_sql(case: str) -> str:
    """A statement's part: the case's newest snapshot (version, state); `case` is an SQL expression of
    the statement that uses it (a claim's one round trip, projections/work_queues.py)."""
    return (f"SELECT originator_version, state FROM case_snapshots WHERE originator_id = {case}"
            " ORDER BY originator_version DESC LIMIT 1")


async def latest_snapshot(conn: asyncpg.Connection | asyncpg.Pool, case_id: UUID) -> bytes | None:
    """The newest snapshot's state of the case, or None."""
    state: bytes | None = await conn.fetchval(
        "SELECT state FROM case_snapshots WHERE originator_id = $1 ORDER BY originator_version DESC LIMIT 1",
        case_id)
    return state


async def keep_snapshot(conn: asyncpg.Connection | asyncpg.Pool, case_id: UUID, version: int, topic: str,
                        state: bytes) -> None:
    """Keep the case's state at `version` (once: a second writer of the same version changes nothing)."""
    await conn.execute(
        "INSERT INTO case_snapshots (originator_id, originator_version, topic, state) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT DO NOTHING", case_id, version, topic, state)


async def drop_snapshots(conn: asyncpg.Connection, case_ids: Sequence[UUID]) -> None:
    """Drop the cases' snapshots: the events under them were rewritten (sealing epoch)."""
    await conn.execute("DELETE FROM case_snapshots WHERE originator_id = ANY($1::uuid[])", list(case_ids))
