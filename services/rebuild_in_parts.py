"""Rebuilding the case files with several processes, each folding its part of the cases (issue 22).

A fold is Python work, so one process uses one core however fast the database
is. Here the log is split by case: part `i` of `n` holds the events of the
cases whose id hashes to `i`, and a process of its own folds each part, its
events in log order, with the same `CaseFiles` code as the live worker. What
one case's fold reads of others is handled so the result is the one a single
worker gets:

- cuts: two kinds of event read what other cases' folds wrote, as it stood at
  their place in the log. A `MerchantFlagged` decides whether later disputes
  name a flagged merchant; a `CaseMerged` copies what the absorbed case still
  owes (its open disputes, callbacks, running clocks), and the absorbed case
  may be in the other part. The log is cut at each of them: the parts fold up
  to a cut side by side, then this process folds the cut event alone, then the
  parts go on. Both are rare (a flag per merchant, a merge per duplicate call).
- queue activity: counters added per (queue, hour), in a fixed order of keys
  (`_write_activity` sorts them), so parts that add to the same row wait for
  each other instead of deadlocking.
- breach records and other non-case events change no read row (the fold skips
  them), wherever they fall.

Each part's process lives for the whole rebuild, with one connection and the
fold's memory of recent files, so a cut costs a message each way, not a new
process or connection. It ends with the rebuild: asked to when it is done, at
once when it fails or is cancelled, and killed by the kernel when the process
that started it dies (a part left folding would write into tables that a later
build drops and makes again). The tracking position moves to the head only when every
part is done, in one step: until then `/readyz` says the projection is behind,
and a rebuild cut short is simply run again (it starts from zero).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, tzinfo
from multiprocessing.connection import Connection
from typing import TypeGuard
from zoneinfo import ZoneInfo

import asyncpg

from casedesk.domain import events as ev
from casedesk.domain.clock_policies import policy_named
from casedesk.domain.merchants import MerchantFlagged
from casedesk.projections.case_files import CaseFiles
from casedesk.projections.runner import READ_MODELS_CHANNEL, REBUILD_BATCH
from casedesk.services.store.database import ASYNCHRONOUS_COMMIT
from casedesk.services.store.event_mapper import CaseEventMapper, topic_of
from casedesk.services.store.event_store import log_head, positions_of_topics, read_notifications_of_part
from casedesk.services.store.tracking import record_position

# Events folded alone, between the parts' stretches (see the module's docstring).
CUT_TOPICS = (topic_of(MerchantFlagged), topic_of(ev.CaseMerged))


class PartFailedError(RuntimeError):
    """A part's process could not fold its stretch (its error, or its end)."""


def _zone_name(zone: tzinfo) -> str:
    return getattr(zone, "key", None) or ("UTC" if zone is UTC else str(zone))


async def _connect(dsn: str, search_path: str | None) -> asyncpg.Connection:
    settings = {"application_name": "casedesk-rebuild", **({"search_path": search_path} if search_path else {})}
    return await asyncpg.connect(dsn, server_settings=settings)


def folds_in_parts(projection: object, workers: int) -> TypeGuard[CaseFiles]:
    """Whether a rebuild (or a new version's build) of `projection` is folded here: the case files, by
    more than one process."""
    return workers > 1 and isinstance(projection, CaseFiles)


async def _fold_stretch(conn: asyncpg.Connection, projection: CaseFiles, mapper: CaseEventMapper, part: int,
                        parts: int, after: int, upto: int, leave_out: tuple[str, ...] = CUT_TOPICS) -> int:
    """Fold part `part` of the log's stretch (after, upto], but for `leave_out`; return how many events it held."""
    done = 0
    while notifications := await read_notifications_of_part(conn, after, upto, part, parts, REBUILD_BATCH,
                                                              leave_out=leave_out):
        async with conn.transaction():
            await conn.execute(f"SELECT {ASYNCHRONOUS_COMMIT}")
            await projection.apply(conn, [mapper.to_domain_event(n) for n in notifications])
        after, done = notifications[-1].id, done + len(notifications)
    return done


async def _fold_part(channel: Connection, kind: type[CaseFiles], dsn: str, search_path: str | None, zone: str,
                     policy: str, part: int, parts: int) -> None:
    # No cyclic collector passes: as in a one-worker rebuild (runner._CollectorWhileBehind), every
    # object a batch makes stays alive, so the passes find nothing and take a third of the fold.
    # The process ends with the rebuild, and refcounting frees all but cycles meanwhile.
    gc.disable()
    conn: asyncpg.Connection | None = None
    # Blocking receives: nothing else runs in this process while it waits for the next stretch.
    stretch = channel.recv()
    try:
        conn = await _connect(dsn, search_path)
        projection, mapper = kind(ZoneInfo(zone), policy=policy_named(policy)), CaseEventMapper()
        while stretch is not None:
            channel.send(("folded", await _fold_stretch(conn, projection, mapper, part, parts, *stretch)))
            stretch = channel.recv()
    except Exception as error:  # said in answer to the stretch (the first, if it cannot connect)
        if stretch is not None:
            channel.send(("failed", f"part {part}: {type(error).__name__}: {error}"))
    finally:
        if conn is not None:
            await conn.close()


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _end_with(parent: int) -> None:
    """Have the kernel kill this process when the rebuild's process dies, however it dies (a
    SIGKILL after a stop's grace): a part left folding would write into tables that a later build
    drops and makes again. Elsewhere than on Linux there is no such call, and nothing is done."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the call above took effect
        os._exit(1)


def fold_part(channel: Connection, kind: type[CaseFiles], dsn: str, search_path: str | None, zone: str, policy: str,
              part: int, parts: int, parent: int) -> None:
    """A part's process: fold each stretch (after, upto) the rebuild sends, until it sends None."""
    _end_with(parent)
    asyncio.run(_fold_part(channel, kind, dsn, search_path, zone, policy, part, parts))


class Parts:
    """The part processes of one rebuild, each at the end of a pipe."""

    def __init__(self, kind: type[CaseFiles], dsn: str, search_path: str | None, zone: str, policy: str,
                 parts: int) -> None:
        # spawn: a forked child would inherit the parent's event loop and connections.
        context = multiprocessing.get_context("spawn")
        self._channels: list[Connection] = []
        self._processes: list[multiprocessing.process.BaseProcess] = []
        # A thread per part waits for its answer: the loop's default pool has room for a few only.
        self._waiting = ThreadPoolExecutor(parts, thread_name_prefix="rebuild-part-answer")
        try:
            for part in range(parts):
                mine, theirs = context.Pipe()
                self._channels.append(mine)
                process = context.Process(target=fold_part, name=f"casedesk-rebuild-part-{part}", daemon=True,
                                          args=(theirs, kind, dsn, search_path, zone, policy, part, parts,
                                                os.getpid()))
                process.start()
                self._processes.append(process)
                theirs.close()
        except BaseException:
            self._end(0.0)
            raise

    async def fold(self, after: int, upto: int) -> int:
        """Every part folds its share of (after, upto]; return how many events they held."""
        for channel in self._channels:
            with contextlib.suppress(OSError):  # a part that has ended: its answer says so
                channel.send((after, upto))
        loop = asyncio.get_running_loop()
        replies = await asyncio.gather(*[loop.run_in_executor(self._waiting, _reply, c) for c in self._channels])
        folded = [value for kind, value in replies if kind == "folded" and isinstance(value, int)]
        if len(folded) < len(replies):
            raise PartFailedError("; ".join(str(value) for kind, value in replies if kind != "folded"))
        return sum(folded)

    async def close(self, *, finished: bool) -> None:
        """End the parts: asked to when the rebuild finished, else at once (a failed or cancelled
        rebuild keeps nothing a part is still folding). The waiting is done off the loop."""
        if finished:
            for channel in self._channels:
                with contextlib.suppress(OSError):  # that part has ended already
                    channel.send(None)
        await asyncio.to_thread(self._end, 10.0 if finished else 0.0)

    def _end(self, grace: float) -> None:
        """Wait up to `grace` seconds in all for the parts to end, then stop those still running."""
        deadline = time.monotonic() + grace
        for process in self._processes:
            process.join(max(deadline - time.monotonic(), 0.0))
        for process in self._processes:
            if process.is_alive():
                process.kill()
                process.join()
        for channel in self._channels:
            channel.close()
        self._waiting.shutdown(wait=False, cancel_futures=True)


def _reply(channel: Connection) -> tuple[str, int | str]:
    try:
        reply: tuple[str, int | str] = channel.recv()
    except (EOFError, OSError):
        return "failed", "a part's process ended before it answered"
    return reply


async def rebuild_case_files_in_parts(
    conn: asyncpg.Connection, dsn: str, search_path: str | None, projection: CaseFiles, workers: int, *,
    name: str | None = None, progress: Callable[[int], None] = lambda done: None,
) -> int:
    """Fold the whole log into `projection`'s (emptied) tables with `workers` processes; return the events.

    `conn` is the caller's, holding the projection's advisory lock (so no live worker writes
    these tables meanwhile); its search path finds the tables, and the processes connect to
    `dsn` with `search_path` to find the same. The position is recorded under `name`
    (the projection's name by default; a blue/green build has a name of its own).
    """
    goal = await log_head(conn)
    cut_at = await positions_of_topics(conn, CUT_TOPICS, goal)
    zone, policy = _zone_name(projection.zone), projection.policy.name
    alone, mapper = type(projection)(projection.zone, policy=projection.policy), CaseEventMapper()  # the cuts
    done, after = 0, 0
    parts = Parts(type(projection), dsn, search_path, zone, policy, workers)
    finished = False
    try:
        for cut in [*cut_at, goal + 1]:
            if cut - 1 > after:
                done += await parts.fold(after, min(cut - 1, goal))
                progress(done)
            if cut <= goal:  # the cut event itself, alone, before anything after it is folded
                done += await _fold_stretch(conn, alone, mapper, 0, 1, cut - 1, cut, leave_out=())
            after = cut
        finished = True
    finally:
        await parts.close(finished=finished)
    async with conn.transaction():
        if goal:
            await record_position(conn, name or projection.name, goal)
        await conn.execute(f"NOTIFY {READ_MODELS_CHANNEL}")
    progress(goal)
    return done
