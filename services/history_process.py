"""Audit histories made in a process of their own, so auditors never hold agents back (issue 15).

A 5,000-event history is some 60 ms of Python: reading 3 MB of rows, folding the case,
encoding the answer. Cut into slices that give way to agents (services/turn_taking.py)
it still cost agents' reads 7-10x their quiet p99 with two auditors reading: a slice
runs to its end before a read's next step, and the garbage collector walks everything
such a read leaves behind. Here the API process hands the history to a worker process
(one, spawned at startup, its own event loop and connection pool) and awaits the
document's bytes; the worker reads and folds exactly as the API would
(projections/timeline/history.py) and opens the sealed tokens, reading the customers'
keys afresh for each document (it hears no erasure NOTIFY between documents, so it
trusts no key it read before). The API only sends the bytes. CASEDESK_HISTORY=process
(what serve does) or in-process (what tests build unless they ask). The process runs
niced (CASEDESK_HISTORY_NICE, 10), so the API's loop gets a core before it.

The answer comes back through the executor's result thread, which needs the GIL to take
in 3 MB; at Python's default switch interval (5 ms) the event loop then waits up to 5 ms
for each hand-over, so the API process switches every HANDOVER_SECONDS instead (measured:
agents' read p99 17.6 -> 12.4 ms with two auditors reading; no other thread contends).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from uuid import UUID
from zoneinfo import ZoneInfo

import asyncpg
import structlog

from casedesk.domain.clock_policies import policy_named
from casedesk.domain.errors import CaseNotFoundError
from casedesk.projections.timeline.history import VersionNotWrittenError, case_history_document
from casedesk.services.privacy.customer_keys import CustomerKeys
from casedesk.services.store.database import create_pool, database_unreachable
from casedesk.services.store.event_mapper import CaseEventMapper
from casedesk.services.store.event_store import EventStore

HANDOVER_SECONDS = 0.0005
log = structlog.get_logger("casedesk.history")


class _Worker:
    """What the worker process holds between histories: its loop, pool and store."""

    loop: asyncio.AbstractEventLoop
    pool: asyncpg.Pool
    store: EventStore
    mapper: CaseEventMapper
    keys: CustomerKeys
    zone: ZoneInfo
    policy: str


_worker = _Worker()


def _leave_with_parent() -> None:
    """Exit as soon as the API process is gone (kill -9 of serve): the executor's queue would
    never tell this process, and it would hold its database connections for good."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(0)

    threading.Thread(target=watch, name="history-parent-watch", daemon=True).start()


def _start(dsn: str, zone: str, policy: str, statement_cache: bool, master_key: str, sealing: bool,
           nice: int) -> None:
    """The worker process's start: an event loop of its own and a small pool (run once)."""
    from casedesk.services.cli import freeze_startup_objects

    # An auditor's document is background work to the agents' reads: at nice 0 this process, busy
    # for a document's 50 ms, held a core that the API's loop then waited for (its run-queue wait,
    # /proc/<pid>/schedstat, made up nine tenths of its late turns with two auditors reading).
    os.nice(nice)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C stops serve, which stops this
    _leave_with_parent()
    _worker.loop = asyncio.new_event_loop()
    # No connection yet (min_size 0): a database away now is a 503 for the history asked, not a
    # worker that fails to start.
    _worker.pool = _worker.loop.run_until_complete(create_pool(dsn, min_size=0, max_size=2,
                                                                        statement_cache=statement_cache))
    _worker.store, _worker.mapper = EventStore(_worker.pool), CaseEventMapper()
    _worker.keys = CustomerKeys(_worker.pool, master_key, sealing=sealing)
    _worker.zone, _worker.policy = ZoneInfo(zone), policy
    freeze_startup_objects()


async def _opened_document(case_id: UUID, version: int | None, as_of: datetime | None) -> bytes:
    document = await case_history_document(_worker.store, _worker.mapper, case_id, _worker.zone, version=version,
                                           as_of=as_of, policy=policy_named(_worker.policy))
    _worker.keys.read_keys_afresh()  # an erasure since the last document must show
    return await _worker.keys.open_json(document)


def _document(case_id: UUID, version: int | None, as_of: datetime | None) -> bytes:
    """The opened document; an error goes back to the API as one it can unpickle and answer:
    the history's own refusals as they are, the database out of reach as a ConnectionError (503),
    anything else as a RuntimeError naming it (500) (an exception with arguments of its own
    would not unpickle, and would break the executor for every history waiting)."""
    try:
        return _worker.loop.run_until_complete(_opened_document(case_id, version, as_of))
    except (CaseNotFoundError, VersionNotWrittenError):
        raise
    except Exception as error:
        if database_unreachable(error):
            raise ConnectionError(f"the history process could not reach the database ({type(error).__name__})"
                                  ) from None
        raise RuntimeError(f"the history process failed: {error!r}") from None


class HistoryProcess:
    """The API's handle on the history worker process."""

    def __init__(self, dsn: str, zone: str, policy: str, master_key: str, *, sealing: bool = True,
                 statement_cache: bool = True, nice: int = 10) -> None:
        self._start_with = (dsn, zone, policy, statement_cache, master_key, sealing, nice)
        self._processes: ProcessPoolExecutor | None = None

    async def document(self, case_id: UUID, version: int | None, as_of: datetime | None) -> bytes:
        """The history document as case_history_document makes it, its tokens opened (its errors
        raised here)."""
        for attempt in (1, 2):
            if self._processes is None:
                # Made at the first history asked for, not at startup: the executor's queues start
                # multiprocessing's resource tracker, a process a server with no auditor need not have.
                sys.setswitchinterval(HANDOVER_SECONDS)
                # Spawned, not forked: a fork would copy the API's loop, pool and sockets.
                self._processes = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                                      initializer=_start, initargs=self._start_with)
            processes = self._processes
            try:
                return await asyncio.get_running_loop().run_in_executor(processes, _document, case_id, version,
                                                                        as_of)
            except BrokenProcessPool:
                # The worker died (killed, out of memory): a new one for this history and the next.
                log.warning("history_process_lost", attempt=attempt)
                if self._processes is processes:
                    processes.shutdown(wait=False, cancel_futures=True)
                    self._processes = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._processes is not None:
            self._processes.shutdown(wait=False, cancel_futures=True)
