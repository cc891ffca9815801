"""A new projection version is built beside the served one and switched to under load (issue 22).

Given a served case_files (version 1) kept live by its worker under a steady load of notes and
claims, when a worker of version 2 starts, it builds its tables beside the served ones and switches:
no read fails, no read goes backwards (a case's version, the tracking position), no case is claimed
twice, the old worker stops writing, the new version's DDL is in place, and what the new version
serves equals a rebuild from zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from functools import partial

import asyncpg
import pytest
from structlog.testing import capture_logs

from casedesk.domain import decisions as d
from casedesk.projections.case_files import CaseFiles
from casedesk.projections.runner import BuildParts, ProjectionRunner, rebuild
from casedesk.services import merchant_flags
from casedesk.services.case_service import CaseService
from casedesk.services.queue_claims import claim_next
from casedesk.services.store.event_mapper import CaseEventMapper
from casedesk.services.store.event_store import EventStore
from casedesk.services.store.tracking import read_position
from casedesk.services.tokens import Principal
from tests.projections.helpers import (
    AGENT,
    SUPERVISOR,
    all_rows,
    analyzed_with_rows,
    drain,
    running,
    write_mixed_cases,
)
from tests.projections.test_merge_rebuild import write_merges


class CaseFilesV2(CaseFiles):
    """The next version: its tables gain a column (the fold is the same; what matters is where it writes)."""

    version = 2
    next_version_sql = ("ALTER TABLE case_files ADD COLUMN IF NOT EXISTS served_by_v2 boolean",)


async def served(pool: asyncpg.Pool) -> int:
    return await pool.fetchval("SELECT version FROM projection_versions WHERE name = 'case_files'")


@pytest.mark.parametrize("workers", [1, 2], ids=["builder alone", "two processes"])
async def test_a_new_version_is_built_beside_and_switched_to_under_load(
        empty_pool: asyncpg.Pool, database_dsn: str, workers: int) -> None:
    store = EventStore(empty_pool)
    cases = CaseService(store, CaseEventMapper())
    old = ProjectionRunner(store, empty_pool, [CaseFiles()])
    # (with two, the new version's case files are folded in two processes, CASEDESK_BUILD_WORKERS=2)
    new = ProjectionRunner(store, empty_pool, [CaseFilesV2()], build_parts=BuildParts(database_dsn, workers))
    stop = asyncio.Event()
    failures: list[str] = []
    claimed: list[uuid.UUID] = []
    reads = 0

    async with running(old):
        ids = await write_mixed_cases(cases, 40)
        # (a merge and a merchant flag: in parts, each is folded alone, on the builder's connection)
        merged = await write_merges(cases, 2)
        await merchant_flags.flag(store, cases.mapper, SUPERVISOR, "SHADY ONLINE GAMES", "chargeback ring")
        async with asyncio.timeout(20):
            while (await read_position(empty_pool, "case_files") or 0) < (await store.max_notification_id() or 0):
                await asyncio.sleep(0.02)
        assert await served(empty_pool) == 1

        async def notes() -> None:
            n = 0
            while not stop.is_set():
                await cases.change(AGENT, ids[n % len(ids)], partial(
                    d.add_handoff_note, note_id=uuid.uuid4(), text=f"load {n}", for_department=None, pinned=False))
                n += 1
                # A steady load, not the most one loop can write: unpaced, on a shared 2-core machine, the
                # writer outran the new version's catch-up and the switch never came (a clean-clone run).
                await asyncio.sleep(0.002)

        async def claims() -> None:
            n = 0
            while not stop.is_set():
                agent = Principal(sub=f"claimer-{n}", name="C. Laimer", role="agent", departments=("fraud",),
                                  exp=2**40)
                claim = await claim_next(empty_pool, cases, agent, "fraud_alerts")
                if claim is not None:
                    claimed.append(claim.outcome.case.id)
                n += 1
                await asyncio.sleep(0.01)

        async def reader() -> None:
            nonlocal reads
            seen_version: dict[uuid.UUID, int] = {}
            seen_position = 0
            while not stop.is_set():
                try:
                    async with empty_pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
                        position = await read_position(conn, "case_files") or 0
                        rows = await conn.fetch("SELECT case_id, version FROM case_files"
                                                " WHERE case_id = ANY($1::uuid[])", ids)
                except Exception as error:  # any failed read is a failure of the switch
                    failures.append(repr(error))
                    continue
                reads += 1
                if position < seen_position:
                    failures.append(f"position went back {seen_position} -> {position}")
                seen_position = position
                if len(rows) != len(ids):
                    failures.append(f"{len(rows)} of {len(ids)} case files visible")
                for case_id, version in rows:
                    if version < seen_version.get(case_id, 0):
                        failures.append(f"{case_id} went back {seen_version[case_id]} -> {version}")
                    seen_version[case_id] = version
                await asyncio.sleep(0.002)

        load = [asyncio.create_task(work()) for work in (notes, claims, reader, reader)]
        try:
            await asyncio.sleep(0.3)
            # When a worker of version 2 starts beside the served version 1
            with capture_logs() as logged:
                async with running(new):
                    async with asyncio.timeout(120):
                        while await served(empty_pool) != 2:
                            await asyncio.sleep(0.05)
                    await asyncio.sleep(0.5)  # load goes on against the new version
                    stop.set()
                    await asyncio.gather(*load)
                    head = await store.max_notification_id()
                    async with asyncio.timeout(20):
                        while (await read_position(empty_pool, "case_files") or 0) < (head or 0):
                            await asyncio.sleep(0.02)
                    # Then the new worker serves: its DDL is in place and the old one no longer moves
                    assert await empty_pool.fetchval(
                        "SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema()"
                        " AND table_name = 'case_files' AND column_name = 'served_by_v2'") == 1
                    assert new.positions["case_files"] == head
                    assert old.positions["case_files"] < head
                    # The new tables were analyzed before the switch: plans are made from what they hold.
                    assert await analyzed_with_rows(empty_pool, "case_files")
        finally:
            stop.set()
            for task in load:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*load, return_exceptions=True)

    built_in_parts = [e for e in logged if e["event"] == "projection_built_in_parts"]
    assert [e["workers"] for e in built_in_parts] == ([2] if workers == 2 else [])
    assert failures == [] and reads > 20
    assert claimed and len(claimed) == len(set(claimed))
    live = await all_rows(empty_pool, ids + merged)
    # And what version 2 serves is what it builds from zero
    projection = CaseFilesV2()
    await rebuild(new, projection)
    await drain(ProjectionRunner(store, empty_pool, [projection]), projection)
    assert await all_rows(empty_pool, ids + merged) == live
    await store.close()
