"""A projection worker whose lock connection dies projects nothing until it holds the lock again.

PostgreSQL frees a session's advisory lock when its connection dies (killed
backend, network cut, idle_session_timeout), and a standby in another process
takes it over. A worker that kept applying batches on its other connections
would then run beside the standby, the very thing the lock is for.
"""

from __future__ import annotations

import asyncio

import asyncpg
from structlog.testing import capture_logs

from casedesk.projections.case_files import CaseFiles
from casedesk.projections.runner import TRY_LOCK, UNLOCK, ProjectionRunner, lock_key
from casedesk.services.case_service import CaseService
from casedesk.services.store.event_mapper import CaseEventMapper
from casedesk.services.store.event_store import EventStore
from casedesk.services.store.tracking import read_position
from tests.projections.helpers import running, wait_until_caught_up, write_mixed_cases


async def test_a_worker_that_lost_its_lock_connection_waits_for_the_lock_before_projecting_again(
    empty_pool: asyncpg.Pool,
) -> None:
    store = EventStore(empty_pool)
    cases = CaseService(store, CaseEventMapper())
    runner = ProjectionRunner(store, empty_pool, [CaseFiles()])
    key = lock_key("case_files")
    async with running(runner), empty_pool.acquire() as standby:
        await write_mixed_cases(cases, 2)
        await wait_until_caught_up(runner, "case_files")
        holder = await empty_pool.fetchval(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2"
            " AND classid::bigint = $1::int::bigint & 4294967295"
            " AND objid::bigint = hashtext(current_schema())::bigint & 4294967295", key)
        assert holder is not None
        with capture_logs() as logs:
            await empty_pool.execute("SELECT pg_terminate_backend($1)", holder)
            async with asyncio.timeout(10):  # the lock is free: another process takes it
                while not await standby.fetchval(TRY_LOCK, key):
                    await asyncio.sleep(0.05)
            before = await read_position(empty_pool, "case_files")
            await write_mixed_cases(cases, 2, seed=9)
            async with asyncio.timeout(10):  # the worker tries its next batch, and must fail it
                while not any(e["event"] == "projection_failed" for e in logs):
                    assert await read_position(empty_pool, "case_files") == before, "projected without the lock"
                    await asyncio.sleep(0.05)
        assert await read_position(empty_pool, "case_files") == before
        await standby.execute(UNLOCK, key)
        await wait_until_caught_up(runner, "case_files", within=15)  # it takes the lock back and catches up
    await store.close()
