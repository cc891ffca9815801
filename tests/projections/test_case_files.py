"""The case_files projection: live equals a rebuild from zero; a crash mid-batch loses and doubles nothing."""

from __future__ import annotations

import asyncio
from functools import partial

import asyncpg
import pytest

from casedesk.domain import decisions as d
from casedesk.projections.case_files import CaseFiles
from casedesk.projections.runner import ProjectionRunner, rebuild
from casedesk.services.case_service import CaseService
from casedesk.services.store.event_mapper import CaseEventMapper
from casedesk.services.store.event_store import EventStore
from casedesk.services.store.tracking import read_position
from tests.projections.helpers import AGENT, all_rows, drain, rows, running, wait_until_caught_up, write_mixed_cases


async def test_live_projection_equals_a_rebuild_from_zero(empty_pool: asyncpg.Pool, database_dsn: str) -> None:
    store = EventStore(empty_pool)
    live = ProjectionRunner(store, empty_pool, [CaseFiles()])
    async with running(live):  # runs while the commands are written
        ids = await write_mixed_cases(CaseService(store, CaseEventMapper()), 30)
        await wait_until_caught_up(live, "case_files")
    before = await all_rows(empty_pool, ids)

    projection = CaseFiles()
    await rebuild(live, projection)
    assert await rows(empty_pool, "case_files", "case_id", ids) == []
    await drain(ProjectionRunner(store, empty_pool, [projection]), projection)
    after = await all_rows(empty_pool, ids)
    assert len(before["case_files"]) == 30 and before["queue_items"] and before["outbound_attempts"]
    assert len(before["case_customers"]) == 30
    assert any(r[0] == "processor_failures" for r in before["queue_items"])  # refused instructions too
    assert after == before
    await store.close()


class SlowCaseFiles(CaseFiles):
    """CaseFiles that stalls inside its batch transaction, so it can be killed there."""

    def __init__(self) -> None:
        super().__init__()
        self.inside = asyncio.Event()

    async def apply(self, conn, events) -> None:  # type: ignore[no-untyped-def]
        await super().apply(conn, events)
        self.inside.set()
        await asyncio.sleep(30)


async def test_a_worker_killed_mid_batch_applies_nothing_twice_and_misses_nothing(empty_pool: asyncpg.Pool) -> None:
    store = EventStore(empty_pool)
    ids = await write_mixed_cases(CaseService(store, CaseEventMapper()), 12)
    slow = SlowCaseFiles()
    doomed = ProjectionRunner(store, empty_pool, [slow], batch=25)
    await doomed.start()
    try:
        await asyncio.wait_for(slow.inside.wait(), 10)
    finally:
        await doomed.stop(grace=0)  # killed inside the transaction: the batch rolls back
    assert await read_position(empty_pool, "case_files") is None
    assert await rows(empty_pool, "case_files", "case_id", ids) == []

    restarted = ProjectionRunner(store, empty_pool, [CaseFiles()], batch=25)
    async with running(restarted):
        await wait_until_caught_up(restarted, "case_files")
    resumed = await all_rows(empty_pool, ids)

    fresh = CaseFiles()
    await rebuild(restarted, fresh)
    await drain(ProjectionRunner(store, empty_pool, [fresh]), fresh)
    assert resumed == await all_rows(empty_pool, ids)
    versions = {r[0]: r[1] for r in resumed["case_files"]}
    for case_id in ids:
        assert versions[case_id] == len(await store.read_stream(case_id))
    await store.close()


async def test_only_one_runner_works_a_projection_at_a_time(empty_pool: asyncpg.Pool) -> None:
    store = EventStore(empty_pool)
    first = ProjectionRunner(store, empty_pool, [CaseFiles()])
    second = ProjectionRunner(store, empty_pool, [CaseFiles()])
    async with running(first):
        await wait_until_caught_up(first, "case_files")  # first holds the lock now
        async with running(second):
            await write_mixed_cases(CaseService(store, CaseEventMapper()), 3)
            await wait_until_caught_up(first, "case_files")
            assert "case_files" not in second.positions  # standing by on the advisory lock
            await first.stop()  # its lock goes with it; the standby takes over
            await write_mixed_cases(CaseService(store, CaseEventMapper()), 2, seed=9)
            await wait_until_caught_up(second, "case_files", within=15)
    await store.close()


async def test_stopping_lets_the_batch_in_hand_finish(empty_pool: asyncpg.Pool) -> None:
    store = EventStore(empty_pool)
    await write_mixed_cases(CaseService(store, CaseEventMapper()), 4)
    goal = await store.max_notification_id()
    slowish = CaseFiles()
    original = slowish.apply

    async def apply(conn, events):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.3)
        await original(conn, events)

    slowish.apply = apply  # type: ignore[method-assign]
    runner = ProjectionRunner(store, empty_pool, [slowish], batch=1000)
    await runner.start()
    await asyncio.sleep(0.1)  # inside its first batch
    await runner.stop(grace=5)
    assert await read_position(empty_pool, "case_files") == goal  # finished, not cut short
    await store.close()


class FailsOnce(CaseFiles):
    """Applies its first batch in memory, then fails it (the transaction rolls back)."""

    failed = False

    async def apply(self, conn, events) -> None:  # type: ignore[no-untyped-def]
        await super().apply(conn, events)
        if not self.failed:
            self.failed = True
            raise RuntimeError("crash after folding, before commit")


async def test_a_rolled_back_batch_does_not_leave_its_folds_in_memory(empty_pool: asyncpg.Pool) -> None:
    store = EventStore(empty_pool)
    cases = CaseService(store, CaseEventMapper())
    ids = await write_mixed_cases(cases, 6)
    flaky = FailsOnce()
    flaky.failed = True  # not yet
    runner = ProjectionRunner(store, empty_pool, [flaky], batch=20)
    await drain(runner, flaky)  # warm: every case file is in memory now
    for case_id in ids:  # claims count in queue_activity, which is made from events, not the view
        await cases.change(AGENT, case_id, partial(d.assign, agent_id="a-9", agent_name="Agent 9",
                                                   queue="fraud_alerts"))
    flaky.failed = False
    with pytest.raises(RuntimeError):
        await runner.catch_up(flaky)
    await drain(runner, flaky)  # the same instance carries on after the rollback
    survived = await all_rows(empty_pool, ids)
    fresh = CaseFiles()
    await rebuild(runner, fresh)
    await drain(ProjectionRunner(store, empty_pool, [fresh]), fresh)
    assert survived == await all_rows(empty_pool, ids)
    await store.close()


async def test_files_read_back_from_the_table_fold_on_as_if_remembered(empty_pool: asyncpg.Pool) -> None:
    """case_files.file keeps only what view and timeline do not (the contacts started); a
    projection that forgets every file between batches rebuilds it from the three columns,
    pinned note and all, and must end where one that folds everything in memory does."""
    store = EventStore(empty_pool)
    ids = await write_mixed_cases(CaseService(store, CaseEventMapper()), 12, seed=11)
    forgetful = CaseFiles(remembered=0)
    await drain(ProjectionRunner(store, empty_pool, [forgetful], batch=3), forgetful)
    read_back = await all_rows(empty_pool, ids)

    whole = CaseFiles()
    runner = ProjectionRunner(store, empty_pool, [whole], batch=10_000)
    await rebuild(runner, whole)
    await drain(runner, whole)
    assert read_back == await all_rows(empty_pool, ids)
    pinned = await empty_pool.fetchval("SELECT count(*) FROM case_files WHERE view LIKE '%\"pinned_note\":{%'")
    assert pinned > 0  # the timeline answer's pinned copy was there to skip
    await store.close()
