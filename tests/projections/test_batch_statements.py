"""A projection batch in few round trips, and the refusals its last message carries.

A live batch begins with one message (BEGIN, the asynchronous commit, the served version held) and
ends with one (the position moved, the version checked, a notification, COMMIT); a wake-up with
nothing new costs one statement. When the position is already there (a replayed batch) or another
version is served, the last message fails before its COMMIT and the batch changes nothing.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from functools import partial

import asyncpg
import pytest
from eventsourcing.persistence import IntegrityError

from casedesk.domain import decisions as d
from casedesk.projections import runner as runner_module
from casedesk.projections.case_files import CaseFiles
from casedesk.projections.runner import ProjectionRunner, SupersededError
from casedesk.services.case_service import CaseService
from casedesk.services.store.event_mapper import CaseEventMapper
from casedesk.services.store.event_store import EventStore
from casedesk.services.store.tracking import read_position
from tests.projections.helpers import AGENT, running, wait_until_caught_up, write_mixed_cases


async def counted_pool(dsn: str, schema: str, statements: list[str]) -> asyncpg.Pool:
    """A pool on `schema` whose connections append every statement they send to `statements`."""

    async def count(conn: asyncpg.Connection) -> None:
        conn.add_query_logger(lambda record: statements.append(record.query))

    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4, server_settings={"search_path": schema},
                                     init=count)
    assert pool is not None
    return pool


async def test_a_live_batch_of_one_note_takes_eight_statements_and_a_quiet_wake_up_one(
        database_dsn: str, empty_pool: asyncpg.Pool) -> None:
    schema = await empty_pool.fetchval("SELECT current_schema()")
    statements: list[str] = []
    worker_pool = await counted_pool(database_dsn, schema, statements)
    store = EventStore(empty_pool)
    cases = CaseService(store, CaseEventMapper())
    live = ProjectionRunner(store, worker_pool, [CaseFiles()])
    try:
        async with running(live):
            [case_id] = await write_mixed_cases(cases, 1)
            await wait_until_caught_up(live, "case_files")
            await asyncio.sleep(0.1)

            # Given a caught-up worker, when one note is added, then its batch is: the look, the
            # start, the case's version, its customer row, its file, its queue rows (gone, then
            # written again) and the end (the timeline part goes by COPY, not counted here).
            statements.clear()
            await cases.change(AGENT, case_id, partial(d.add_handoff_note, note_id=uuid.uuid4(), text="one more",
                                                       for_department=None, pinned=False))
            await wait_until_caught_up(live, "case_files")
            await asyncio.sleep(0.1)
            begun = next(n for n, s in enumerate(statements) if s.startswith("BEGIN;"))
            batch = statements[begun - 1:next(n for n, s in enumerate(statements) if s.endswith("; COMMIT")) + 1]
            assert len(batch) == 8, batch
            assert batch[0].startswith("SELECT p.after")
            assert not any("merchant_flags" in s for s in batch)  # the note names no merchant
            assert not any(s.startswith("INSERT INTO case_customers") for s in batch)  # nor changes a customer

            # When the worker wakes with nothing new (the fallback timer), then it looks once.
            statements.clear()
            live.wake()
            await asyncio.sleep(0.2)
            # (the fallback timer may have woken it too: looks, and nothing else)
            assert statements and all(s.startswith("SELECT p.after") for s in statements), statements
    finally:
        await worker_pool.close()
        await store.close()


async def marked_log(pool: asyncpg.Pool, cases: int) -> EventStore:
    """A store over a log of `cases` mixed cases, and a table `batch_marks` the batches below write to."""
    store = EventStore(pool)
    await write_mixed_cases(CaseService(store, CaseEventMapper()), cases)
    await pool.execute("CREATE TABLE batch_marks (folder text)")
    return store


async def mark(conn: asyncpg.Connection, folder: str) -> None:
    await conn.execute("INSERT INTO batch_marks (folder) VALUES ($1)", folder)


class Gated(CaseFiles):
    """Case files whose batch waits, inside its transaction, until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.inside, self.gate = asyncio.Event(), asyncio.Event()

    async def apply(self, conn: asyncpg.Connection, events: Sequence[object]) -> None:  # type: ignore[override]
        await mark(conn, "gated")
        self.inside.set()
        await self.gate.wait()


class Marking(CaseFiles):
    async def apply(self, conn: asyncpg.Connection, events: Sequence[object]) -> None:  # type: ignore[override]
        await mark(conn, "other")


async def test_a_batch_whose_position_another_batch_took_meanwhile_is_refused_and_changes_nothing(
        empty_pool: asyncpg.Pool) -> None:
    store = await marked_log(empty_pool, 2)
    gated = Gated()
    first = ProjectionRunner(store, empty_pool, [gated])
    # Given a batch inside its transaction (no advisory lock: two runners called directly, as a bug or
    # a rebuild beside a live worker would)
    folding = asyncio.create_task(first.catch_up(gated))
    await asyncio.wait_for(gated.inside.wait(), 10)
    # when another batch of the same events commits first
    other = ProjectionRunner(store, empty_pool, [Marking()])
    assert await other.catch_up(Marking()) > 0
    moved_to = await read_position(empty_pool, "case_files")
    gated.gate.set()
    # then the first is refused at its end, and neither its rows nor a position of its own remain.
    with pytest.raises(IntegrityError, match="already at or past"):
        await folding
    assert [r[0] for r in await empty_pool.fetch("SELECT folder FROM batch_marks")] == ["other"]
    assert await read_position(empty_pool, "case_files") == moved_to
    await store.close()


class SwitchedMidBatch(CaseFiles):
    """Case files whose batch finds, at its end, another version served (written in its own transaction,
    as no switch can while the batch holds the version: the check under the lock is what is tested)."""

    async def apply(self, conn: asyncpg.Connection, events: Sequence[object]) -> None:  # type: ignore[override]
        await mark(conn, "old version")
        await conn.execute("UPDATE projection_versions SET version = 2 WHERE name = 'case_files'")


async def test_a_batch_that_finds_another_version_served_at_its_end_is_refused_and_changes_nothing(
        empty_pool: asyncpg.Pool) -> None:
    store = await marked_log(empty_pool, 1)
    await empty_pool.execute("INSERT INTO projection_versions (name, version) VALUES ('case_files', 1)")
    projection = SwitchedMidBatch()
    with pytest.raises(SupersededError, match="the tables hold version 2, this worker folds version 1"):
        await ProjectionRunner(store, empty_pool, [projection]).catch_up(projection)
    assert await empty_pool.fetchval("SELECT count(*) FROM batch_marks") == 0
    assert await empty_pool.fetchval("SELECT version FROM projection_versions WHERE name = 'case_files'") == 1
    assert await read_position(empty_pool, "case_files") is None
    await store.close()


async def test_a_batch_begun_when_another_version_is_served_stops_before_its_fold(
        empty_pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    store = await marked_log(empty_pool, 1)
    await empty_pool.execute("INSERT INTO projection_versions (name, version) VALUES ('case_files', 2)")
    # Given a look that did not see the switch (a switch between the look and the batch's start: the
    # look's own check is left out here to stand for it)
    monkeypatch.setattr(runner_module, "_LOOK", runner_module._LOOK.replace(
        "(SELECT version FROM projection_versions WHERE name = $1)", "NULL::integer"))
    projection = Marking()
    # when the batch begins, then it is refused there, before its fold writes anything.
    with pytest.raises(SupersededError, match="the tables hold version 2, this worker folds version 1"):
        await ProjectionRunner(store, empty_pool, [projection]).catch_up(projection)
    assert await empty_pool.fetchval("SELECT count(*) FROM batch_marks") == 0
    assert await read_position(empty_pool, "case_files") is None
    await store.close()


async def test_a_batch_cancelled_while_its_start_waits_leaves_no_transaction_open(empty_pool: asyncpg.Pool) -> None:
    store = EventStore(empty_pool)
    await write_mixed_cases(CaseService(store, CaseEventMapper()), 1)
    await empty_pool.execute("INSERT INTO projection_versions (name, version) VALUES ('case_files', 1)")
    runner = ProjectionRunner(store, empty_pool, [CaseFiles()])
    async with empty_pool.acquire() as switch, empty_pool.acquire() as holder:
        # Given a switch holding the served version's row, and a batch whose start waits for it
        async with switch.transaction():
            await switch.execute("SELECT 1 FROM projection_versions WHERE name = 'case_files' FOR UPDATE")
            folding = asyncio.create_task(runner.catch_up(CaseFiles(), holder))
            async with asyncio.timeout(10):
                while not await switch.fetchval(
                        "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1",
                        holder.get_server_pid()):
                    await asyncio.sleep(0.01)
            # when the worker is stopped there (its task cancelled)
            folding.cancel()
            with pytest.raises(asyncio.CancelledError):
                await folding
        # then its connection is in no transaction, and the next batch on it folds.
        await holder.execute("SELECT 1")
        assert not holder.is_in_transaction()  # as the server said it after that statement
        assert await runner.catch_up(CaseFiles(), holder) > 0
    await store.close()


async def test_a_session_that_lost_one_of_the_batch_statements_prepares_it_again(empty_pool: asyncpg.Pool) -> None:
    store = EventStore(empty_pool)
    cases = CaseService(store, CaseEventMapper())
    [case_id] = await write_mixed_cases(cases, 1)
    runner = ProjectionRunner(store, empty_pool, [CaseFiles()])
    prepared = "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'casedesk_batch_%'"
    async with empty_pool.acquire() as holder:
        # Given a session whose first batch prepared the start and the end, and which then lost the
        # start (a DEALLOCATE, as a pooler's reset would do)
        assert await runner.catch_up(CaseFiles(), holder) > 0
        assert await holder.fetchval(prepared) == 2
        await holder.execute("DEALLOCATE casedesk_batch_begun")
        # when its next batch begins, then it prepares what it lacks and folds.
        await cases.change(AGENT, case_id, partial(d.add_handoff_note, note_id=uuid.uuid4(), text="after",
                                                   for_department=None, pinned=False))
        assert await runner.catch_up(CaseFiles(), holder) == 1
        assert await holder.fetchval(prepared) == 2
        assert not holder.is_in_transaction()
    await store.close()
