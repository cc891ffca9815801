"""The asyncpg event store against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
import random
import uuid

import asyncpg
import pytest
from eventsourcing.persistence import StoredEvent

from casedesk.services.store.event_store import (
    EventStore,
    IdempotencyRaceError,
    IdempotencyRecord,
    StreamConflictError,
)


@pytest.fixture
def pool(empty_pool: asyncpg.Pool) -> asyncpg.Pool:
    """A schema of its own: these made-up events (topic "t") must never reach a projection
    of the shared schema, which API tests that run after these would find stopped."""
    return empty_pool


def stream(case_id: uuid.UUID, first: int, count: int = 1) -> list[StoredEvent]:
    return [StoredEvent(case_id, v, "t", b"{}") for v in range(first, first + count)]


def key(name: str) -> IdempotencyRecord:
    return IdempotencyRecord("agent-1", name, b"hash", lambda ids: (200, str(ids).encode()))


async def test_a_command_that_lost_the_race_writes_nothing(pool: asyncpg.Pool) -> None:
    store = EventStore(pool)
    case_id = uuid.uuid4()
    await store.append(stream(case_id, 1, 2))
    with pytest.raises(StreamConflictError):
        await store.append(stream(case_id, 2, 3))
    assert [e.originator_version for e in await store.read_stream(case_id)] == [1, 2]
    await store.close()


async def test_racing_commands_on_one_case_exactly_one_wins(pool: asyncpg.Pool) -> None:
    store = EventStore(pool)
    case_id = uuid.uuid4()
    await store.append(stream(case_id, 1))
    outcomes = await asyncio.gather(
        *[store.append(stream(case_id, 2, 2)) for _ in range(20)], return_exceptions=True
    )
    assert sum(isinstance(o, list) for o in outcomes) == 1
    assert all(isinstance(o, (list, StreamConflictError)) for o in outcomes)
    assert [e.originator_version for e in await store.read_stream(case_id)] == [1, 2, 3]
    await store.close()


async def test_idempotency_key_is_written_with_the_events_or_not_at_all(pool: asyncpg.Pool) -> None:
    store = EventStore(pool)
    case_id, name = uuid.uuid4(), f"key-{uuid.uuid4()}"
    await store.append(stream(case_id, 1))
    with pytest.raises(StreamConflictError):
        await store.append(stream(case_id, 1), key(name))
    assert await pool.fetchval("SELECT count(*) FROM idempotency_keys WHERE key = $1", name) == 0
    ids = await store.append(stream(case_id, 2), key(name))
    with pytest.raises(IdempotencyRaceError):
        await store.append(stream(case_id, 3), key(name))
    assert len(await store.read_stream(case_id)) == 2
    stored = await pool.fetchval("SELECT response FROM idempotency_keys WHERE key = $1", name)
    assert stored == str(ids).encode()  # the answer rendered with the ids the events got
    assert await pool.fetchval("SELECT count(*) FROM idempotency_keys WHERE key = $1", name) == 1
    await store.close()


async def test_a_half_conflicting_batch_keeps_the_clean_commands(pool: asyncpg.Pool) -> None:
    store = EventStore(pool)
    a, b = uuid.uuid4(), uuid.uuid4()
    await store.append(stream(a, 1))
    # In one batch: b's command is clean; a's second command clashes on v1 but v2 is free.
    results = await asyncio.gather(
        store.append(stream(b, 1, 2)), store.append(stream(a, 1, 2)), return_exceptions=True
    )
    assert isinstance(results[0], list) and isinstance(results[1], StreamConflictError)
    assert [e.originator_version for e in await store.read_stream(a)] == [1]
    assert [e.originator_version for e in await store.read_stream(b)] == [1, 2]
    await store.close()


async def test_read_stream_between_versions(pool: asyncpg.Pool) -> None:
    store = EventStore(pool)
    case_id = uuid.uuid4()
    await store.append(stream(case_id, 1, 5))
    got = await store.read_stream(case_id, gt=1, lte=3)
    assert [e.originator_version for e in got] == [2, 3]
    last = await store.read_stream(case_id, desc=True, limit=1)
    assert last[0].originator_version == 5
    await store.close()


async def test_a_reader_polling_during_concurrent_writes_never_skips(empty_pool: asyncpg.Pool) -> None:
    """Many writers, one tailing reader: the reader's sequence equals the final log."""
    store = EventStore(empty_pool)
    seen: list[int] = []
    writing = True

    async def tail() -> None:
        last = 0
        while writing or last < (await store.max_notification_id() or 0):
            for n in await store.read_notifications(last, 1000, inclusive_of_start=False):
                seen.append(n.id)
                last = n.id
            await asyncio.sleep(0)

    async def writer() -> None:
        for _ in range(40):
            case_id = uuid.uuid4()
            await store.append(stream(case_id, 1, random.randint(1, 5)))

    reader = asyncio.create_task(tail())
    # Several stores = several independent writer tasks and connections, like processes.
    stores = [EventStore(empty_pool) for _ in range(4)]
    await asyncio.gather(*[
        s.append(stream(uuid.uuid4(), 1, 3)) for s in stores for _ in range(25)
    ], *[writer() for _ in range(8)])
    writing = False
    await reader
    everything = [n.id for n in await store.read_notifications(None, 100_000)]
    assert seen == everything
    assert all(a < b for a, b in itertools.pairwise(seen))
    for s in [store, *stores]:
        await s.close()


async def test_two_requests_with_one_key_in_one_batch_only_one_writes(pool: asyncpg.Pool) -> None:
    store = EventStore(pool)
    a, b, name = uuid.uuid4(), uuid.uuid4(), f"key-{uuid.uuid4()}"
    results = await asyncio.gather(
        store.append(stream(a, 1), key(name)), store.append(stream(b, 1), key(name)),
        return_exceptions=True,
    )
    assert isinstance(results[0], list) and isinstance(results[1], IdempotencyRaceError)
    assert await store.read_stream(b) == []
    await store.close()


async def test_a_long_case_loads_from_its_snapshot_and_the_events_after_it(pool: asyncpg.Pool) -> None:
    from functools import partial

    from casedesk.domain import decisions as d
    from casedesk.services.case_service import CaseService
    from casedesk.services.store.event_mapper import CaseEventMapper
    from tests.projections.helpers import AGENT, write_mixed_cases

    cases = CaseService(EventStore(pool), CaseEventMapper())
    [case_id, *_] = await write_mixed_cases(cases, 1)
    for n in range(130):
        await cases.change(AGENT, case_id, partial(d.add_handoff_note, note_id=uuid.uuid4(), text=f"n{n}",
                                                   for_department=None, pinned=False))
    expected = await cases.load(case_id)
    snapshots = await pool.fetch("SELECT originator_version FROM case_snapshots WHERE originator_id = $1", case_id)
    assert [r[0] for r in snapshots] == [100]
    cold = CaseService(EventStore(pool), CaseEventMapper())  # another process: nothing cached
    asked: list[int | None] = []
    read_stream = cold.store.read_stream

    async def spy(stream, **kw):  # type: ignore[no-untyped-def]
        asked.append(kw.get("gt"))
        return await read_stream(stream, **kw)

    cold.store.read_stream = spy  # type: ignore[method-assign]
    assert await cold.load(case_id) == expected
    assert asked == [100]  # only the events after the snapshot were read
    await cases.store.close()
    await cold.store.close()
