"""A new version of a projection, built beside the served one and switched to in one step (issue 22).

When a worker's projection is newer than the version its tables hold
(`projection_versions`), it does not empty them: the old version's workers keep
them current and serving while this one

1. creates the projection's tables afresh in a schema of their own (`<schema>_next`,
   each `LIKE` the served one, then the projection's `next_version_sql`, the DDL
   of what the new version changes), and folds the whole log into them with
   `search_path` `<schema>_next, <schema>`, under a tracking name of its own
   (`case_files@v2`), while the old version keeps serving; with `BuildParts`
   (CASEDESK_BUILD_WORKERS > 1) the case files are folded by that many processes
   side by side, split by case (services/rebuild_in_parts.py);
2. once caught up, stops the old version's workers by marking the version row as
   switching (`-2`; every old worker's batch holds the row FOR SHARE, so the batch
   in hand finishes and every later one sees another version and stops), folds the
   last events into the new tables, waits for older snapshots to end, and switches
   in one transaction that writes no row of a read table: it moves the served tables
   to `<schema>_retired` and the new ones into their place, serves the version and
   sets the tracking position. A crash while the row says `-2` leaves the old tables
   served and standing; the next worker of version 2 builds again. Readers see the old tables or the new ones,
   never a mix: reads, `min_position`, `/readyz` and the dashboard switch together;
3. then runs as the live worker of its version.

The retired tables stay until the next version's build starts (for a comparison
or a rollback by hand), and are dropped then.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import asyncpg
import structlog

from casedesk.projections.runner import (
    READ_MODELS_CHANNEL,
    REBUILD_BATCH,
    Projection,
    analyze_sql,
    version_of,
)
from casedesk.projections.served_versions import serve, stop_serving
from casedesk.services.store.tracking import forget_position, read_position, set_position

if TYPE_CHECKING:
    from casedesk.projections.runner import ProjectionRunner

log = structlog.get_logger("casedesk.projections")


class Building:
    """The projection being built, under a tracking name of its own (its tables are the same names)."""

    def __init__(self, projection: Projection) -> None:
        self.projection = projection
        self.name = f"{projection.name}@v{version_of(projection)}"
        self.tables = projection.tables
        self.reads_stored_events = getattr(projection, "reads_stored_events", False)

    async def apply(self, conn: asyncpg.Connection, events: list[object]) -> None:
        await self.projection.apply(conn, events)  # type: ignore[arg-type]


# The switch takes every served table at once; a reader's transaction may hold one of them and wait
# for another, so the switch gives up after LOCK_WAIT (long before PostgreSQL's deadlock check, which
# would fail the reader) and tries again, its whole transaction rolled back.
LOCK_WAIT = "SET LOCAL lock_timeout = '100ms'"
SWITCH_ATTEMPTS = 100


async def _switch(projection: Projection, building: Building, holder: asyncpg.Connection,
                  main: str, nxt: str, retired: str) -> int:
    """Move the tables, serve the version, set the position: nothing else, so no reader meets a half state."""
    async with holder.transaction():
        position = await read_position(holder, building.name) or 0
        await holder.execute(LOCK_WAIT)
        await holder.execute(f"LOCK TABLE {', '.join(f'{_quoted(main)}.{t}' for t in projection.tables)}"
                             " IN ACCESS EXCLUSIVE MODE")
        for table in projection.tables:
            await holder.execute(f"ALTER TABLE {_quoted(main)}.{table} SET SCHEMA {retired}")
            await holder.execute(f"ALTER TABLE {nxt}.{table} SET SCHEMA {_quoted(main)}")
        await serve(holder, projection.name, version_of(projection))
        await set_position(holder, projection.name, position)
        await forget_position(holder, building.name)
        await holder.execute(f"NOTIFY {READ_MODELS_CHANNEL}")
    return position


async def _older_snapshots_gone(holder: asyncpg.Connection, seconds: float = 10.0) -> None:
    """Wait until no transaction still reads with a snapshot from before now.

    A repeatable-read reader finds a table by name when it first touches it, but sees
    rows as of its snapshot: one whose snapshot predates the last rows written to the
    new tables, and which first touches them after the switch, would see them behind
    the old ones. So the switch waits for such snapshots to end (they are short).
    """
    mark = int(await holder.fetchval("SELECT pg_current_xact_id()::xid::text"))
    for _ in range(int(seconds / 0.005)):  # polled: PostgreSQL says nothing when a snapshot ends
        if not await holder.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND datname = current_database()"
                " AND backend_xmin IS NOT NULL"
                " AND age(backend_xmin) >= age($1::xid)", mark):
            return
        await asyncio.sleep(0.005)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def build_and_switch(runner: ProjectionRunner, projection: Projection, holder: asyncpg.Connection) -> None:
    """Build `projection`'s version beside the served one, then serve it (the caller holds its version's lock)."""
    main = await holder.fetchval("SELECT current_schema()")
    path = await holder.fetchval("SHOW search_path")
    nxt, retired = _quoted(f"{main}_next"), _quoted(f"{main}_retired")
    building = Building(projection)
    log.info("projection_build_started", projection=projection.name, version=version_of(projection))
    await holder.execute(f"DROP SCHEMA IF EXISTS {nxt} CASCADE; DROP SCHEMA IF EXISTS {retired} CASCADE;"
                         f" CREATE SCHEMA {nxt}; CREATE SCHEMA {retired}")
    for table in projection.tables:
        await holder.execute(f"CREATE TABLE {nxt}.{table} (LIKE {_quoted(main)}.{table} INCLUDING ALL)")
    await forget_position(holder, building.name)
    batch, runner.batch = runner.batch, REBUILD_BATCH
    try:
        await holder.execute(f"SET search_path TO {nxt}, {_quoted(main)}")
        for statement in getattr(projection, "next_version_sql", ()):
            await holder.execute(statement)
        # (services uses this module: imported here)
        from casedesk.services.rebuild_in_parts import folds_in_parts, rebuild_case_files_in_parts
        parts = runner.build_parts
        if parts is not None and folds_in_parts(projection, parts.workers):
            # The bulk of the build, in processes side by side; the catch-up below takes it from there.
            folded = await rebuild_case_files_in_parts(holder, parts.dsn, f"{nxt}, {_quoted(main)}", projection,
                                                       parts.workers, name=building.name)
            log.info("projection_built_in_parts", projection=projection.name, version=version_of(projection),
                     workers=parts.workers, events=folded)
        while await runner.catch_up(building, holder, checks_version=False):  # type: ignore[arg-type]
            pass
        # Filled from empty: their statistics, before any connection plans a statement on them after
        # the switch (a plan made on empty-table statistics stays until autovacuum comes round).
        await holder.execute(analyze_sql(projection.tables, nxt))
        # Stop the old version's workers (the batch in hand finishes first): from here the served
        # tables stand still, and the new ones catch up past them in committed batches.
        await stop_serving(holder, projection.name, version_of(projection))
        while await runner.catch_up(building, holder, checks_version=False):  # type: ignore[arg-type]
            pass
        runner.batch = batch
        await _older_snapshots_gone(holder)
        for attempt in range(SWITCH_ATTEMPTS):
            try:
                position = await _switch(projection, building, holder, main, nxt, retired)
                break
            except asyncpg.LockNotAvailableError:  # readers in the way: let them finish, try again
                await asyncio.sleep(0.05 * (attempt + 1))
        else:
            raise RuntimeError(f"{projection.name}: no moment free of readers to switch in")
    finally:
        runner.batch = batch
        await holder.execute(f"SET search_path TO {path}")
    await holder.execute(f"DROP SCHEMA IF EXISTS {nxt} CASCADE")
    runner.positions[projection.name] = position
    log.info("projection_switched", projection=projection.name, version=version_of(projection), position=position)
