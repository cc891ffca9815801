"""A live projection keeps the planner's statistics of its tables as the log grows (projections/runner.py)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from casedesk.projections import runner as runner_module
from casedesk.projections.case_files import CaseFiles
from casedesk.projections.runner import ProjectionRunner, TableStatistics
from casedesk.services.case_service import CaseService
from casedesk.services.store.event_mapper import CaseEventMapper
from casedesk.services.store.event_store import EventStore
from tests.projections.helpers import row_estimates, running, wait_until_caught_up, write_mixed_cases


def test_statistics_are_due_by_the_logs_growth_not_by_every_batch() -> None:
    statistics = TableStatistics(pool=None)  # type: ignore[arg-type]  # the rule alone: no database
    # Given a worker starting on an empty log, when the log reaches the threshold, then they are due.
    assert not statistics.due("case_files", 0, runner_module.ANALYZE_AFTER_EVENTS - 1)
    assert statistics.due("case_files", 0, runner_module.ANALYZE_AFTER_EVENTS)
    # Given taken at 100,000 events, then a fifth more is needed before the next.
    statistics.taken_at["case_files"] = 100_000
    assert not statistics.due("case_files", 0, 119_999)
    assert statistics.due("case_files", 0, 120_000)
    # Given a worker starting on a log of 100,000 events, then growth counts from there.
    assert not statistics.due("other", 100_000, 101_000)
    assert statistics.due("other", 100_000, 120_000)
    # Given tables emptied and filled again from zero (a rebuild), then growth counts from zero.
    assert statistics.due("case_files", 0, runner_module.ANALYZE_AFTER_EVENTS)


async def _analyzed(pool: asyncpg.Pool, tables: tuple[str, ...]) -> dict[str, float]:
    """Each table's row estimate: -1 until ANALYZE has looked at it (these tests skip before PostgreSQL 14)."""
    estimates = await row_estimates(pool, tables)
    if estimates is None:
        pytest.skip("a table never analyzed shows reltuples -1 from PostgreSQL 14 on")
    return estimates


async def test_a_live_projection_analyzes_its_tables_once_the_log_has_grown(
        empty_pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Given a live worker on an empty log, when cases are written past the threshold, then the
    projection's tables have statistics (before, the planner knows nothing of them: -1 rows), without
    waiting for autovacuum."""
    monkeypatch.setattr(runner_module, "ANALYZE_AFTER_EVENTS", 40)
    store = EventStore(empty_pool)
    projection = CaseFiles()
    tables = ("case_files", "queue_items", "case_customers")
    assert set((await _analyzed(empty_pool, tables)).values()) == {-1}
    live = ProjectionRunner(store, empty_pool, [projection])
    async with running(live):
        ids = await write_mixed_cases(CaseService(store, CaseEventMapper()), 12)
        await wait_until_caught_up(live, "case_files")
        async with asyncio.timeout(10):
            while -1 in (await _analyzed(empty_pool, tables)).values():
                await asyncio.sleep(0.05)
    assert live.statistics.taken_at["case_files"] >= 40
    assert 1 <= (await _analyzed(empty_pool, tables))["case_files"] <= len(ids)
    await store.close()


async def test_a_table_another_session_holds_does_not_hold_up_the_live_projection(
        empty_pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Given another session holding a table of the projection as VACUUM or CREATE INDEX CONCURRENTLY
    would (SHARE UPDATE EXCLUSIVE, which ANALYZE waits for), when the log grows past the threshold,
    then the worker goes on folding while the lock is held, and the other tables get their statistics."""
    monkeypatch.setattr(runner_module, "ANALYZE_AFTER_EVENTS", 40)
    store = EventStore(empty_pool)
    live = ProjectionRunner(store, empty_pool, [CaseFiles()])
    async with empty_pool.acquire() as vacuum, vacuum.transaction():
        await vacuum.execute("LOCK TABLE case_customers IN SHARE UPDATE EXCLUSIVE MODE")
        async with running(live):
            await write_mixed_cases(CaseService(store, CaseEventMapper()), 12)
            await wait_until_caught_up(live, "case_files", within=5)  # folded meanwhile, the lock still held
            async with asyncio.timeout(10):
                while (await _analyzed(empty_pool, ("case_files",)))["case_files"] == -1:
                    await asyncio.sleep(0.05)
        assert (await _analyzed(empty_pool, ("case_customers",)))["case_customers"] == -1  # passed over
    await store.close()
