"""Every stream carries a hash chain written with its events; tampering names its first version."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from eventsourcing.persistence import StoredEvent

from casedesk.services.store import event_store
from casedesk.services.store.audit_chain import ChainCheck, check_stream
from casedesk.services.store.event_store import EventStore
from casedesk.services.store.migrations import migrate, migration_files
from tests.audit.conftest import open_case_with_story

TOPIC = "casedesk.domain.events:HandoffNoteAdded"


def events(stream: uuid.UUID, first: int, count: int) -> list[StoredEvent]:
    return [StoredEvent(stream, v, TOPIC, f'{{"n": {v}, "s": "{stream}"}}'.encode())
            for v in range(first, first + count)]


def expected_chain(rows: list[StoredEvent]) -> list[bytes]:
    """The chain as the issue defines it, written out independently of audit_chain."""
    previous, chain = b"\0" * 32, []
    for e in rows:
        previous = hashlib.sha256(previous + e.topic.encode() + e.state + str(e.originator_version).encode()).digest()
        chain.append(previous)
    return chain


async def stored_hashes(pool: asyncpg.Pool, stream: uuid.UUID) -> list[bytes]:
    rows = await pool.fetch("SELECT hash FROM case_event_hashes WHERE originator_id = $1"
                            " ORDER BY originator_version", stream)
    return [bytes(r[0]) for r in rows]


@pytest.fixture
async def store(own_pool: asyncpg.Pool) -> AsyncIterator[EventStore]:
    store = EventStore(own_pool)
    yield store
    await store.close()


@pytest.fixture
async def five(store: EventStore) -> uuid.UUID:
    """A stream of five events, written by three commands."""
    stream = uuid.uuid4()
    for first, count in ((1, 2), (3, 1), (4, 2)):
        await store.append(events(stream, first, count))
    return stream


async def test_an_untouched_stream_verifies(store: EventStore, five: uuid.UUID) -> None:
    assert await check_stream(store.pool, five) == ChainCheck(ok=True, events_checked=5, first_bad_version=None)
    assert await stored_hashes(store.pool, five) == expected_chain(events(five, 1, 5))


async def test_one_batch_chains_consecutive_commands_on_each_stream(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: list[int] = []
    insert = event_store._insert

    async def counting(conn: asyncpg.Connection, items: list) -> list:
        batches.append(len(items))
        return await insert(conn, items)

    monkeypatch.setattr(event_store, "_insert", counting)
    streams = [uuid.uuid4() for _ in range(3)]
    winner = events(streams[0], 5, 1)
    loser = [StoredEvent(streams[0], 5, TOPIC, b'{"lost": true}')]
    outcomes = await asyncio.gather(
        *[store.append(events(s, first, 2)) for s in streams for first in (1, 3)],
        store.append(winner), store.append(loser), return_exceptions=True)
    assert batches == [8]  # all eight commands went in one transaction
    assert isinstance(outcomes[-1], event_store.StreamConflictError)
    assert await stored_hashes(store.pool, streams[0]) == expected_chain(events(streams[0], 1, 4) + winner)
    for s in streams[1:]:
        assert await stored_hashes(store.pool, s) == expected_chain(events(s, 1, 4))
        assert (await check_stream(store.pool, s)).ok


async def test_the_database_and_the_checker_agree_on_non_ascii_topics(store: EventStore) -> None:
    stream = uuid.uuid4()
    written = [StoredEvent(stream, 1, "casedesk.domain.événements:Noté", "メモ".encode()),
               StoredEvent(stream, 2, TOPIC, b"\x00\xff")]
    await store.append(written)
    assert await stored_hashes(store.pool, stream) == expected_chain(written)
    assert (await check_stream(store.pool, stream)).ok


async def test_a_lost_race_leaves_no_hash(store: EventStore, five: uuid.UUID) -> None:
    with pytest.raises(Exception, match="moved on"):
        await store.append([StoredEvent(five, 5, TOPIC, b'{"other": true}')])
    assert await stored_hashes(store.pool, five) == expected_chain(events(five, 1, 5))


async def test_events_written_with_a_tracking_position_are_chained(store: EventStore, five: uuid.UUID) -> None:
    await store.append_with_tracking(events(five, 6, 2), f"reader-{uuid.uuid4().hex[:6]}", 1)
    assert await check_stream(store.pool, five) == ChainCheck(ok=True, events_checked=7, first_bad_version=None)


async def test_a_changed_state_is_named(store: EventStore, five: uuid.UUID) -> None:
    await store.pool.execute("UPDATE case_events SET state = $2 WHERE originator_id = $1 AND originator_version = 3",
                             five, b'{"n": 300}')
    assert await check_stream(store.pool, five) == ChainCheck(ok=False, events_checked=3, first_bad_version=3)


async def test_a_deleted_event_is_named(store: EventStore, five: uuid.UUID) -> None:
    await store.pool.execute("DELETE FROM case_events WHERE originator_id = $1 AND originator_version = 3", five)
    assert (await check_stream(store.pool, five)).first_bad_version == 3


async def test_a_deleted_event_renumbered_away_is_named(store: EventStore, five: uuid.UUID) -> None:
    await store.pool.execute("DELETE FROM case_events WHERE originator_id = $1 AND originator_version = 3", five)
    for version in (4, 5):
        await store.pool.execute("UPDATE case_events SET originator_version = $2 - 1"
                                 " WHERE originator_id = $1 AND originator_version = $2", five, version)
    assert (await check_stream(store.pool, five)).first_bad_version == 3


async def test_a_deleted_last_event_is_named_by_its_hash(store: EventStore, five: uuid.UUID) -> None:
    await store.pool.execute("DELETE FROM case_events WHERE originator_id = $1 AND originator_version = 5", five)
    assert await check_stream(store.pool, five) == ChainCheck(ok=False, events_checked=4, first_bad_version=5)


async def test_swapped_states_are_named(store: EventStore, five: uuid.UUID) -> None:
    await store.pool.execute(
        "UPDATE case_events e SET state = o.state FROM case_events o WHERE e.originator_id = $1"
        " AND o.originator_id = $1 AND (e.originator_version, o.originator_version) IN ((2, 4), (4, 2))", five)
    assert (await check_stream(store.pool, five)).first_bad_version == 2


async def test_swapped_versions_are_named(store: EventStore, five: uuid.UUID) -> None:
    for old, new in ((3, -3), (4, 3), (-3, 4)):  # the primary key is checked row by row
        await store.pool.execute("UPDATE case_events SET originator_version = $3"
                                 " WHERE originator_id = $1 AND originator_version = $2", five, old, new)
    assert (await check_stream(store.pool, five)).first_bad_version == 3


async def test_a_deleted_hash_is_named(store: EventStore, five: uuid.UUID) -> None:
    await store.pool.execute("DELETE FROM case_event_hashes WHERE originator_id = $1 AND originator_version = 4", five)
    assert (await check_stream(store.pool, five)).first_bad_version == 4


async def test_an_unknown_stream_has_no_chain(store: EventStore) -> None:
    assert await check_stream(store.pool, uuid.uuid4()) is None


async def test_migration_chains_the_events_stored_before_it(database_dsn: str) -> None:
    schema = f"m_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(database_dsn)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}; SET search_path TO {schema}")
        before = [(n, sql) for n, sql in migration_files() if n < "006"]
        for _, sql in before:
            await conn.execute(sql)
        await conn.execute("CREATE TABLE schema_migrations (name text PRIMARY KEY, applied_at timestamptz"
                           " NOT NULL DEFAULT now())")
        await conn.executemany("INSERT INTO schema_migrations (name) VALUES ($1)", [(n,) for n, _ in before])
        streams = {s: events(s, 1, n) for s, n in ((uuid.uuid4(), 3), (uuid.uuid4(), 1))}
        for rows in streams.values():
            await conn.executemany("INSERT INTO case_events (originator_id, originator_version, topic, state)"
                                   " VALUES ($1, $2, $3, $4)",
                                   [(e.originator_id, e.originator_version, e.topic, e.state) for e in rows])
        assert await migrate(conn) == ["006_audit.sql"] + [n for n, _ in migration_files() if n > "006_audit.sql"]
        for stream, rows in streams.items():
            hashes = await conn.fetch("SELECT hash FROM case_event_hashes WHERE originator_id = $1"
                                      " ORDER BY originator_version", stream)
            assert [bytes(h[0]) for h in hashes] == expected_chain(rows)
            assert (await check_stream(conn, stream)).ok
    finally:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        await conn.close()


async def test_verify_over_http_names_the_tampered_version(client, auth, own_pool: asyncpg.Pool) -> None:
    case_id = await open_case_with_story(client, auth())
    r = await client.get(f"/v1/cases/{case_id}/verify", headers=auth(role="auditor"))
    assert r.status == 200 and await r.json() == {"ok": True, "events_checked": 7, "first_bad_version": None}
    await own_pool.execute("UPDATE case_events SET state = state || ' '::bytea"
                           " WHERE originator_id = $1 AND originator_version = 4", case_id)
    r = await client.get(f"/v1/cases/{case_id}/verify", headers=auth(role="admin"))
    assert await r.json() == {"ok": False, "events_checked": 4, "first_bad_version": 4}


async def test_verify_is_for_auditors_and_admins(client, auth) -> None:
    """CONTRACT.md's role table gives verify to the auditor (and admin: everything), not to supervisors."""
    case_id = await open_case_with_story(client, auth())
    assert (await client.get(f"/v1/cases/{case_id}/verify", headers=auth())).status == 403
    assert (await client.get(f"/v1/cases/{case_id}/verify", headers=auth(role="supervisor"))).status == 403
    assert (await client.get(f"/v1/cases/{case_id}/verify", headers=auth(role="admin"))).status == 200
    assert (await client.get(f"/v1/cases/{uuid.uuid4()}/verify", headers=auth(role="auditor"))).status == 404
