"""Rebuilding projections from zero, with a progress bar (`casedesk rebuild`).

If no serving process holds the projection's advisory lock, the rebuild does
the work itself; if one does, the tables are reset and the live worker
refills them while this command shows its progress.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from casedesk.projections.catalogue import all_projections
from casedesk.projections.runner import (
    REBUILD_BATCH,
    TRY_LOCK,
    UNLOCK,
    Projection,
    ProjectionRunner,
    analyze_sql,
    rebuild,
    version_lock_key,
)
from casedesk.services.rebuild_in_parts import folds_in_parts, rebuild_case_files_in_parts
from casedesk.services.store.database import keeps_session_state
from casedesk.services.store.event_store import EventStore, count_events
from casedesk.services.store.tracking import read_position


class UnknownProjectionError(ValueError):
    """A name that is not one of the projections."""


def _chosen(names: list[str], projections: list[Projection]) -> list[Projection]:
    known = {p.name: p for p in projections}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UnknownProjectionError(f"unknown projection(s): {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[n] for n in names] if names else list(known.values())


async def rebuild_projections(pool: asyncpg.Pool, names: list[str],
                              projections: list[Projection] | None = None, *, workers: int = 1,
                              dsn: str | None = None, schema: str | None = None) -> dict[str, float]:
    """Rebuild each named projection (all when none); return events/s per projection.

    `projections` are built with the settings' zone and clock policy (default: UTC and jp),
    so a policy change takes effect by rebuilding. With `workers` > 1 (and `dsn`, where the
    worker processes connect, `schema` its search path) the case files are folded in that
    many processes side by side (`rebuild_in_parts`).
    """
    store = EventStore(pool)
    rates: dict[str, float] = {}
    try:
        goal = await store.max_notification_id() or 0
        total = await count_events(pool)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("events"), TimeRemainingColumn()) as progress:
            for projection in _chosen(names, projections or all_projections()):
                runner = ProjectionRunner(store, pool, [projection], batch=REBUILD_BATCH)
                task = progress.add_task(f"rebuild {projection.name}", total=total)
                started = time.perf_counter()
                async with pool.acquire() as holder:
                    keeps_session_state(holder)
                    mine = await holder.fetchval(TRY_LOCK, version_lock_key(projection))
                    await rebuild(runner, projection)
                    done = 0
                    if mine and dsn and folds_in_parts(projection, workers):
                        await rebuild_case_files_in_parts(
                            holder, dsn, schema, projection, workers,
                            progress=lambda n, task=task: progress.update(task, completed=min(n, total)))
                    while (position := await read_position(pool, projection.name) or 0) < goal:
                        if mine:
                            done += await runner.catch_up(projection, holder)
                        else:  # a serving process refills it; watch
                            await asyncio.sleep(0.2)
                            done = await count_events(pool, position)
                        progress.update(task, completed=done)
                    progress.update(task, completed=total)
                    if mine:
                        # Filled from empty: plans are to be made from what the tables now hold.
                        await holder.execute(analyze_sql(projection.tables))
                        await holder.execute(UNLOCK, version_lock_key(projection))
                rates[projection.name] = total / max(time.perf_counter() - started, 1e-9)
    finally:
        await store.close()
    return rates
