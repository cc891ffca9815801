"""The keyed seal over the whole log names what a database writer did.

Each test seals a small log with the real sealer (run by the projection
runner), tampers with the database the way issue 15 found the plain chain
fooled, and expects the seal check, and `casedesk audit verify`, to name it.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest
from eventsourcing.persistence import StoredEvent

from casedesk.projections.runner import ProjectionRunner
from casedesk.services.store.audit_chain import ZERO_HASH, chain_hash, check_stream
from casedesk.services.store.audit_seal import AuditSeal, HeadsFile, check_seal, key_bytes
from casedesk.services.store.event_store import EventStore
from tests.api.conftest import with_schema
from tests.audit.test_cli_verify import run

TOPIC = "casedesk.domain.events:HandoffNoteAdded"
SECRET = "an audit key the database never sees"
KEY = key_bytes(SECRET)
Tamper = Callable[[asyncpg.Pool, list[uuid.UUID]], Awaitable[None]]


async def sealed_log(pool: asyncpg.Pool, heads: HeadsFile, streams: list[uuid.UUID]) -> None:
    """Three streams of four events, appended in two rounds and sealed after each."""
    store = EventStore(pool)
    seal = AuditSeal(KEY, heads)
    runner = ProjectionRunner(store, pool, [seal])
    for versions in (range(1, 3), range(3, 5)):
        for s in streams:
            await store.append([StoredEvent(s, v, TOPIC, f'{{"v": {v}}}'.encode()) for v in versions])
        while await runner.catch_up(seal):
            pass
    await store.close()


async def position_of(pool: asyncpg.Pool, stream: uuid.UUID, version: int) -> int:
    found: int = await pool.fetchval("SELECT notification_id FROM case_events WHERE originator_id = $1"
                                     " AND originator_version = $2", stream, version)
    return found


async def edit_and_rechain(pool: asyncpg.Pool, streams: list[uuid.UUID]) -> None:
    """Edit an event, then recompute its stream's SHA-256 chain as anyone with the database could."""
    victim = streams[1]
    await pool.execute("UPDATE case_events SET state = '{\"v\": 99}' WHERE originator_id = $1"
                       " AND originator_version = 2", victim)
    previous = ZERO_HASH
    for version, topic, state in await pool.fetch("SELECT originator_version, topic, state FROM case_events"
                                                   " WHERE originator_id = $1 ORDER BY 1", victim):
        previous = chain_hash(previous, topic, state, version)
        await pool.execute("UPDATE case_event_hashes SET hash = $3 WHERE originator_id = $1"
                           " AND originator_version = $2", victim, version, previous)
    check = await check_stream(pool, victim)
    assert check is not None and check.ok, "the plain chain is fooled: that is why the seal exists"


async def delete_last_event(pool: asyncpg.Pool, streams: list[uuid.UUID]) -> None:
    last = await pool.fetchrow("SELECT originator_id, originator_version, notification_id FROM case_events"
                               " ORDER BY notification_id DESC LIMIT 1")
    await pool.execute("DELETE FROM case_events WHERE notification_id = $1", last[2])
    await pool.execute("DELETE FROM case_event_hashes WHERE originator_id = $1 AND originator_version = $2",
                       last[0], last[1])
    await pool.execute("DELETE FROM audit_seals WHERE notification_id = $1", last[2])


async def delete_stream(pool: asyncpg.Pool, streams: list[uuid.UUID]) -> None:
    for table in ("case_events", "case_event_hashes", "audit_seals"):
        await pool.execute(f"DELETE FROM {table} WHERE originator_id = $1", streams[0])


async def swap_positions(pool: asyncpg.Pool, streams: list[uuid.UUID]) -> None:
    a, b = await position_of(pool, streams[0], 3), await position_of(pool, streams[2], 3)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("UPDATE case_events SET notification_id = -1 WHERE notification_id = $1", a)
        await conn.execute("UPDATE case_events SET notification_id = $1 WHERE notification_id = $2", a, b)
        await conn.execute("UPDATE case_events SET notification_id = $1 WHERE notification_id = -1", b)


TAMPERING: dict[str, tuple[Tamper, str]] = {
    "edited and rechained": (edit_and_rechain, "is not the event sealed there"),
    "last event deleted with its hash and seal": (delete_last_event, "which is gone"),
    "whole stream deleted": (delete_stream, "was sealed and is gone"),
    "positions swapped": (swap_positions, "is not the event sealed there"),
}


@pytest.mark.parametrize("kind", TAMPERING)
async def test_the_seal_names_the_tampering(empty_pool: asyncpg.Pool, tmp_path: Path, kind: str) -> None:
    heads = HeadsFile(tmp_path / "heads.jsonl", KEY)
    streams = [uuid.uuid4() for _ in range(3)]
    await sealed_log(empty_pool, heads, streams)
    async with empty_pool.acquire() as conn:
        clean = await check_seal(conn, KEY, heads)
    assert clean.ok and clean.events_checked == 12 and clean.heads_checked == 2, clean

    tamper, named = TAMPERING[kind]
    await tamper(empty_pool, streams)
    async with empty_pool.acquire() as conn:
        found = await check_seal(conn, KEY, heads)
    assert not found.ok and found.problem is not None and named in found.problem, found


async def test_a_head_forged_without_the_key_is_named(empty_pool: asyncpg.Pool, tmp_path: Path) -> None:
    heads = HeadsFile(tmp_path / "heads.jsonl", KEY)
    await sealed_log(empty_pool, heads, [uuid.uuid4()])
    HeadsFile(heads.path, key_bytes("someone else's key")).append(99, b"\0" * 32)
    async with empty_pool.acquire() as conn:
        found = await check_seal(conn, KEY, heads)
    assert not found.ok and found.problem is not None and "line 3" in found.problem


async def test_events_not_yet_sealed_are_not_tampering(empty_pool: asyncpg.Pool, tmp_path: Path) -> None:
    heads = HeadsFile(tmp_path / "heads.jsonl", KEY)
    await sealed_log(empty_pool, heads, [uuid.uuid4()])
    store = EventStore(empty_pool)
    await store.append([StoredEvent(uuid.uuid4(), 1, TOPIC, b'{"v": 1}')])
    await store.close()
    async with empty_pool.acquire() as conn:
        found = await check_seal(conn, KEY, heads)
    assert found.ok and found.events_checked == 5 and found.sealed_up_to < await empty_pool.fetchval(
        "SELECT max(notification_id) FROM case_events"), found


async def test_audit_verify_names_a_rechained_edit(database_dsn: str, schema: str, own_pool: asyncpg.Pool,
                                                   tmp_path: Path) -> None:
    # Where the CLI finds the generated key and the exported heads: the data directory.
    (tmp_path / "audit_key").write_text(SECRET)
    streams = [uuid.uuid4() for _ in range(3)]
    await sealed_log(own_pool, HeadsFile(tmp_path / "audit-heads.jsonl", KEY), streams)
    dsn = with_schema(database_dsn, schema)
    clean = await run(dsn, tmp_path)
    assert clean.returncode == 0 and "12 event(s) checked" in clean.stdout and ": ok" in clean.stdout, clean.stdout

    await edit_and_rechain(own_pool, streams)
    tampered = await run(dsn, tmp_path)
    position = await position_of(own_pool, streams[1], 2)
    assert tampered.returncode == 1, tampered.stdout + tampered.stderr
    assert "0 with a broken hash chain" in tampered.stdout  # the plain chains all pass ...
    assert f"position {position} (case {streams[1]} v2) is not the event sealed there" in tampered.stdout


async def test_a_seal_batch_rolled_back_after_sealing_leaves_a_chain_that_verifies(
        empty_pool: asyncpg.Pool, tmp_path: Path) -> None:
    # Given a sealer that remembers its last seal instead of reading it each batch
    heads = HeadsFile(tmp_path / "heads.jsonl", KEY)
    store = EventStore(empty_pool)
    seal = AuditSeal(KEY, heads)
    runner = ProjectionRunner(store, empty_pool, [seal])
    streams = [uuid.uuid4(), uuid.uuid4()]
    for s in streams:
        await store.append([StoredEvent(s, 1, TOPIC, b'{"v": 1}')])
    while await runner.catch_up(seal):
        pass
    # when its next batch seals and then rolls back (its memory is now ahead of the table),
    for s in streams:
        await store.append([StoredEvent(s, 2, TOPIC, b'{"v": 2}')])
    notifications = await store.read_notifications(await empty_pool.fetchval(
        "SELECT max(notification_id) FROM audit_seals"), 10, inclusive_of_start=False)
    async with empty_pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        await seal.apply(conn, notifications)
        await transaction.rollback()
    # and more events come before the next batch, which is committed
    await store.append([StoredEvent(streams[0], 3, TOPIC, b'{"v": 3}')])
    while await runner.catch_up(seal):
        pass
    # then every event is sealed once, in a chain the check (and every exported head) holds.
    async with empty_pool.acquire() as conn:
        found = await check_seal(conn, KEY, heads)
    assert found.ok and found.events_checked == 5, found
    await store.close()
