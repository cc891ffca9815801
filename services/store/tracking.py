"""Readers' positions in the log: the `projection_tracking` table and all its SQL.

A projection, the audit seal and the processor follower each keep the last
notification id they applied under their name. Health, metrics and the
dashboard read those positions here.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
from eventsourcing.persistence import IntegrityError

Reader = asyncpg.Connection | asyncpg.Pool

_MOVE_TO = (
    "INSERT INTO projection_tracking (application_name, notification_id) VALUES ({name}, {position})"
    " ON CONFLICT (application_name) DO UPDATE SET notification_id = excluded.notification_id"
    " WHERE projection_tracking.notification_id < excluded.notification_id"
    " RETURNING notification_id")


def move_position_sql(name: str, position: str) -> str:
    """The upsert that moves a position, with the reader's name and the new position given as SQL
    expressions (parameters such as "$10", or literals).

    For a statement that writes other rows with it in one round trip (the processor follower's
    calls, a projection batch's last statement): it returns the new position, or no row.
    """
    return _MOVE_TO.format(name=name, position=position)


_MOVE = move_position_sql("$1", "$2")


def position_sql(name: str) -> str:
    """A scalar expression: the position of the reader named by the SQL expression `name`, 0 for none
    (for a statement that reads the log after it in the same round trip)."""
    return f"coalesce((SELECT notification_id FROM projection_tracking WHERE application_name = {name}), 0)"


async def record_position(conn: asyncpg.Connection, name: str, notification_id: int) -> None:
    """Move a reader's tracking position forward, in the caller's transaction.

    Single-row tracking like the library's: refusing to go backwards or stand
    still is what makes a replayed batch fail instead of applying twice.
    """
    if await conn.fetchval(_MOVE, name, notification_id) is None:
        raise IntegrityError(f"{name} is already at or past notification {notification_id}")


async def move_position(conn: Reader, name: str, notification_id: int) -> None:
    """Move a position forward if it is behind; standing still is no error (a follower's periodic save)."""
    await conn.fetchval(_MOVE, name, notification_id)


async def set_position(conn: Reader, name: str, notification_id: int) -> None:
    """Set a position whatever it was (a blue/green switch hands the new tables' position over)."""
    await conn.execute(
        "INSERT INTO projection_tracking (application_name, notification_id) VALUES ($1, $2)"
        " ON CONFLICT (application_name) DO UPDATE SET notification_id = excluded.notification_id",
        name, notification_id)


async def forget_position(conn: Reader, name: str) -> None:
    """Drop a reader's position: it starts again from the first event."""
    await conn.execute("DELETE FROM projection_tracking WHERE application_name = $1", name)


async def read_position(conn: Reader, name: str) -> int | None:
    """The last notification id a reader has applied, or None."""
    value: int | None = await conn.fetchval(
        "SELECT notification_id FROM projection_tracking WHERE application_name = $1", name)
    return value


async def positions_of(conn: Reader, names: Sequence[str]) -> dict[str, int]:
    """Each named reader's position; one with no row yet (just rebuilt) at 0."""
    rows = await conn.fetch(
        "SELECT n, coalesce(t.notification_id, 0) FROM unnest($1::text[]) n"
        " LEFT JOIN projection_tracking t ON t.application_name = n", list(names))
    return {r[0]: r[1] for r in rows}


async def slowest_position(conn: Reader, names: Sequence[str]) -> int:
    """The lowest position among these readers (0 when one has none)."""
    value: int = await conn.fetchval(
        "SELECT coalesce(min(coalesce(t.notification_id, 0)), 0) FROM unnest($1::text[]) n"
        " LEFT JOIN projection_tracking t ON t.application_name = n", list(names))
    return value


async def every_position(conn: Reader) -> dict[str, int]:
    """Every reader's position by name (the dashboard's list), the migration marker left out."""
    rows = await conn.fetch(
        "SELECT application_name, notification_id FROM projection_tracking"
        " WHERE application_name <> '__migration__' ORDER BY application_name")
    return {r[0]: r[1] for r in rows}
