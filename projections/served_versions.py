"""Which version of each projection the tables hold: the `projection_versions` table and all its SQL.

Workers read it in every batch (FOR SHARE, so a switch waits for the batch in
hand); the blue/green builder stops the old version's workers and switches to
the new one by writing it (projections/blue_green.py).
"""

from __future__ import annotations

import asyncpg


async def served_version(conn: asyncpg.Connection, name: str, version: int) -> int:
    """The version the tables of `name` hold; a projection never versioned is taken as `version`."""
    await conn.execute("INSERT INTO projection_versions (name, version) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                       name, version)
    served: int = await conn.fetchval("SELECT version FROM projection_versions WHERE name = $1", name)
    return served


def served_version_sql(name: str) -> str:
    """A scalar subquery: the served version of the projection named by the SQL expression `name` (a
    parameter or a literal), NULL when it was never versioned. For a statement that does more in its
    round trip (the runner's look at the log, its batch's last statement)."""
    return f"(SELECT version FROM projection_versions WHERE name = {name})"


def served_version_held_sql(name: str) -> str:
    """As served_version_sql, held FOR SHARE in the caller's transaction: a switch to a newer version
    (which updates the row) waits for the batch in hand, and every batch after it sees the new one
    (the runner's start of a batch)."""
    return f"(SELECT version FROM projection_versions WHERE name = {name} FOR SHARE)"


async def stop_serving(conn: asyncpg.Connection, name: str, next_version: int) -> None:
    """Mark `name` as being switched to `next_version` (stored negated): the old version's workers stop."""
    await conn.execute("UPDATE projection_versions SET version = $2 WHERE name = $1", name, -next_version)


async def serve(conn: asyncpg.Connection, name: str, version: int) -> None:
    """From now on the tables of `name` hold `version`."""
    await conn.execute("UPDATE projection_versions SET version = $2, switched_at = now() WHERE name = $1",
                       name, version)
