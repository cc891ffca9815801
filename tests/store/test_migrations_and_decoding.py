"""Migrations under a race, and a stored event that cannot be decoded."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from eventsourcing.persistence import StoredEvent

from casedesk.services.case_service import CaseService
from casedesk.services.store.event_mapper import CaseEventMapper, UndecodableEventError
from casedesk.services.store.event_store import EventStore
from casedesk.services.store.migrations import migrate, migration_files
from tests.projections.helpers import write_mixed_cases


async def test_two_processes_migrating_at_once_apply_each_file_once(database_dsn: str) -> None:
    schema = f"m_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(database_dsn)
    await admin.execute(f"CREATE SCHEMA {schema}")
    conns = [await asyncpg.connect(database_dsn, server_settings={"search_path": schema}) for _ in range(3)]
    try:
        applied = await asyncio.gather(*[migrate(c) for c in conns])
        names = [name for name, _ in migration_files()]
        assert sorted(n for run in applied for n in run) == names  # each file applied by exactly one
        recorded = await conns[0].fetch("SELECT name FROM schema_migrations ORDER BY name")
        assert [r[0] for r in recorded] == names
        assert await migrate(conns[0]) == []  # idempotent
    finally:
        for c in conns:
            await c.close()
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


async def test_an_undecodable_stored_event_names_its_stream_and_version(empty_pool: asyncpg.Pool) -> None:
    store = EventStore(empty_pool)  # a schema of its own: a projection of the shared one would stop at it
    cases = CaseService(store, CaseEventMapper())
    [case_id] = await write_mixed_cases(cases, 1)
    version = len(await store.read_stream(case_id))
    topic = (await store.read_stream(case_id))[-1].topic
    await store.append([StoredEvent(case_id, version + 1, topic, b'{"not": "an event"}')])
    fresh = CaseService(store, CaseEventMapper())
    with pytest.raises(UndecodableEventError) as refused:
        await fresh.load(case_id)
    assert str(case_id) in str(refused.value) and f"v{version + 1}" in str(refused.value)
    await store.close()


async def test_migration_011_forgets_the_snapshots_of_escalated_cases_only(empty_pool: asyncpg.Pool) -> None:
    # A snapshot from before `open_escalations` existed would leave an escalation that can never conclude.
    escalated, plain = uuid.uuid4(), uuid.uuid4()
    async with empty_pool.acquire() as conn:
        for case_id, topic in ((escalated, "CaseOpened"), (escalated, "CaseEscalated"), (plain, "CaseOpened")):
            version = 1 + await conn.fetchval(
                "SELECT count(*) FROM case_events WHERE originator_id = $1", case_id)
            await conn.execute("INSERT INTO case_events (originator_id, originator_version, topic, state)"
                               " VALUES ($1, $2, $3, '{}')", case_id, version, f"casedesk.domain.events:{topic}")
        for case_id in (escalated, plain):
            await conn.execute("INSERT INTO case_snapshots VALUES ($1, 100, 'casedesk.domain.case:FraudCase', '{}')",
                               case_id)
        [sql] = [text for name, text in migration_files() if name.startswith("011_")]
        await conn.execute(sql)
        kept = {r[0] for r in await conn.fetch("SELECT originator_id FROM case_snapshots")}
    assert kept == {plain}
