"""Rebuilding the case files with several processes, each folding its part of the cases (issue 22).

A fold is Python work, so one process uses one core however fast the database
is. Here the log is split by case: part `i` of `n` holds the events of the
cases whose id hashes to `i`, and a process of its own folds each part, its
events in log order, with the same `CaseFiles` code as the live worker. What
one case's fold reads of others is handled so the result is the one a single
worker gets:

- merchant flags: whether a merchant was flagged when a dispute named it is
  decided in log order. The log is cut at each `MerchantFlagged` (they are
  few): the parts fold up to a cut side by side, then the flag is written, then
  the next stretch. Within a stretch every part sees the same flags.
- queue activity: counters added per (queue, hour), in a fixed order of keys
  (`_write_activity` sorts them), so parts that add to the same row wait for
  each other instead of deadlocking.
- breach records and other non-case events change no read row (the fold skips
  them), wherever they fall.

The tracking position moves to the head only when every part is done, in one
step: until then `/readyz` says the projection is behind, and a rebuild cut
short is simply run again (it starts from zero).
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, tzinfo
from zoneinfo import ZoneInfo

import asyncpg

from casedesk.domain.clock_policies import policy_named
from casedesk.domain.merchants import MerchantFlagged
from casedesk.projections.case_files import CaseFiles
from casedesk.projections.runner import ASYNCHRONOUS_COMMIT, READ_MODELS_CHANNEL, REBUILD_BATCH
from casedesk.services.store.event_mapper import CaseEventMapper, topic_of
from casedesk.services.store.event_store import log_head, positions_of_topic, read_notifications_of_part
from casedesk.services.store.tracking import record_position

FLAG_TOPIC = topic_of(MerchantFlagged)


def _zone_name(zone: tzinfo) -> str:
    return getattr(zone, "key", None) or ("UTC" if zone is UTC else str(zone))


async def _connect(dsn: str, schema: str | None) -> asyncpg.Connection:
    settings = {"application_name": "casedesk-rebuild", **({"search_path": schema} if schema else {})}
    return await asyncpg.connect(dsn, server_settings=settings)


async def _fold_stretch(dsn: str, schema: str | None, zone: str, policy: str, part: int, parts: int,
                        after: int, upto: int) -> int:
    """Fold part `part` of the log's stretch (after, upto]; return how many events it held."""
    conn = await _connect(dsn, schema)
    projection, mapper, done = CaseFiles(ZoneInfo(zone), policy=policy_named(policy)), CaseEventMapper(), 0
    try:
        while True:
            notifications = await read_notifications_of_part(conn, after, upto, part, parts, REBUILD_BATCH,
                                                             leave_out=(FLAG_TOPIC,))
            if not notifications:
                return done
            async with conn.transaction():
                await conn.execute(ASYNCHRONOUS_COMMIT)
                await projection.apply(conn, [mapper.to_domain_event(n) for n in notifications])
            after, done = notifications[-1].id, done + len(notifications)
    finally:
        await conn.close()


def fold_stretch(dsn: str, schema: str | None, zone: str, policy: str, part: int, parts: int,
                 after: int, upto: int) -> int:
    """One part's work in a worker process (its own event loop and connection)."""
    return asyncio.run(_fold_stretch(dsn, schema, zone, policy, part, parts, after, upto))


async def rebuild_case_files_in_parts(
    pool: asyncpg.Pool, dsn: str, schema: str | None, projection: CaseFiles, workers: int,
    progress: Callable[[int], None] = lambda done: None,
) -> int:
    """Fold the whole log into `projection`'s (emptied) tables with `workers` processes; return the events.

    The caller holds the projection's advisory lock, so no live worker writes meanwhile.
    """
    goal = await log_head(pool)
    flags = await positions_of_topic(pool, FLAG_TOPIC, goal)
    flagged = set(flags)
    cuts = flags if goal in flagged else [*flags, goal]
    zone, policy = _zone_name(projection.zone), projection.policy.name
    loop, done, after = asyncio.get_running_loop(), 0, 0
    # spawn: a forked child would inherit the parent's event loop and connections.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as processes:
        for cut in cuts:
            stretch_end = cut - 1 if cut in flagged else cut
            if stretch_end > after:
                counts = await asyncio.gather(*[
                    loop.run_in_executor(processes, fold_stretch, dsn, schema, zone, policy, part, workers, after,
                                         stretch_end)
                    for part in range(workers)])
                done += sum(counts)
                progress(done)
            if cut in flagged:  # the flag itself, alone, before anything after it is folded
                async with pool.acquire() as conn, conn.transaction():
                    [flag] = await read_notifications_of_part(conn, cut - 1, cut, 0, 1, 1)
                    await CaseFiles(projection.zone, policy=projection.policy).apply(
                        conn, [CaseEventMapper().to_domain_event(flag)])
                done += 1
            after = cut
    async with pool.acquire() as conn, conn.transaction():
        if goal:
            await record_position(conn, projection.name, goal)
        await conn.execute(f"NOTIFY {READ_MODELS_CHANNEL}")
    progress(goal)
    return done
