"""The event store's append rate, beside raw asyncpg inserts and the library's recorder.

Every append is one command's single event (a handoff note):
- "new stream": on a stream of its own at version 1;
- "next version": on an existing stream (each writer round-robins over streams it
  owns, so there are no conflicts) at the stream's next version.
References, on the same database in the same run:
- raw asyncpg: `INSERT INTO raw_bench ... VALUES ($1,$2,$3,$4)`, one autocommit
  transaction each, a pool as big as the concurrency;
- the eventsourcing library's PostgresApplicationRecorder (psycopg, sync, pool of
  16), one thread per writer via asyncio.to_thread, on the same table layout.
Each figure is measured in a fresh migrated schema, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

from casedesk.services.store.database import create_pool
from casedesk.services.store.event_store import EventStore
from tests.bench import BenchContext, Figure, Rate, measure_async, measure_threads

DEFAULT_SECONDS = 2.0  # per measured figure, split over ROUNDS
ROUNDS = 3
CONCURRENCY = (1, 16, 64)
LIBRARY_THREADS = (1, 16)
LIBRARY_POOL_SIZE = 16
STREAMS_PER_WRITER = 32  # for "next version"

# SPEC §6 sets these for HTTP command throughput under load; the store alone must
# clear them too, so they are shown (as floors) for the concurrent runs only.
AT_LEAST_VS_RAW = 0.5
AT_LEAST_VS_LIBRARY = 4.0

TOPIC = "casedesk.domain.events:HandoffNoteAdded"
STATE = (
    b'{"note_id":"5f0c6a4e-8d0b-4a57-9a53-2b7f1f0e4c11","text":"Customer confirmed the two'
    b" card-present transactions at 14:02 and 14:09 were not theirs; card blocked, replacement"
    b' ordered.","for_department":"disputes","pinned":false,"at":"2025-01-01T12:00:00Z"}'
)
EVENTS_UNIT = "events/s"

RAW_TABLE = """
CREATE TABLE raw_bench (
    originator_id uuid NOT NULL,
    originator_version bigint NOT NULL,
    topic text,
    state bytea,
    notification_id bigserial,
    PRIMARY KEY (originator_id, originator_version)
);
CREATE UNIQUE INDEX raw_bench_notification_id_idx ON raw_bench (notification_id ASC);
"""
RAW_INSERT = "INSERT INTO raw_bench (originator_id, originator_version, topic, state) VALUES ($1, $2, $3, $4)"


async def raw_insert_rate(ctx: BenchContext, writers: int, seconds: float) -> Rate:
    async with ctx.fresh_schema("bench_raw") as schema:
        pool = await create_pool(ctx.dsn, schema=schema, min_size=writers, max_size=writers)
        try:
            await pool.execute(RAW_TABLE)

            async def insert(_: int) -> None:
                await pool.execute(RAW_INSERT, uuid.uuid4(), 1, TOPIC, STATE)

            return await measure_async(insert, writers, seconds, ctx.warmup(seconds))
        finally:
            await pool.close()


async def casedesk_new_stream_rate(ctx: BenchContext, writers: int, seconds: float) -> Rate:
    async with ctx.fresh_schema("bench_store") as schema:
        pool = await create_pool(ctx.dsn, schema=schema, min_size=writers, max_size=writers)
        store = EventStore(pool)
        try:

            async def append(_: int) -> None:
                await store.append([StoredEvent(uuid.uuid4(), 1, TOPIC, STATE)])

            return await measure_async(append, writers, seconds, ctx.warmup(seconds))
        finally:
            await store.close()
            await pool.close()


async def casedesk_next_version_rate(ctx: BenchContext, writers: int, seconds: float) -> Rate:
    async with ctx.fresh_schema("bench_store") as schema:
        pool = await create_pool(ctx.dsn, schema=schema, min_size=writers, max_size=writers)
        store = EventStore(pool)
        try:
            streams = [[uuid.uuid4() for _ in range(STREAMS_PER_WRITER)] for _ in range(writers)]
            versions = [[1] * STREAMS_PER_WRITER for _ in range(writers)]
            turn = [0] * writers
            await store.append(
                [StoredEvent(s, 1, "casedesk.domain.events:CaseOpened", b"{}") for w in streams for s in w]
            )

            async def append(n: int) -> None:
                i = turn[n] = (turn[n] + 1) % STREAMS_PER_WRITER
                version = versions[n][i] + 1
                await store.append([StoredEvent(streams[n][i], version, TOPIC, STATE)])
                versions[n][i] = version

            return await measure_async(append, writers, seconds, ctx.warmup(seconds))
        finally:
            await store.close()
            await pool.close()


async def library_recorder_rate(ctx: BenchContext, threads: int, seconds: float) -> Rate:
    async with ctx.fresh_schema("bench_lib") as schema:
        datastore = await asyncio.to_thread(
            PostgresDatastore, **ctx.libpq_params(), schema=schema, pool_size=LIBRARY_POOL_SIZE
        )
        try:
            recorder = await asyncio.to_thread(PostgresApplicationRecorder, datastore, events_table_name="case_events")

            def insert(_: int) -> None:
                recorder.insert_events([StoredEvent(uuid.uuid4(), 1, TOPIC, STATE)])

            return await measure_threads(insert, threads, seconds, ctx.warmup(seconds))
        finally:
            await asyncio.to_thread(datastore.close)


def median_rate(rates: list[Rate]) -> Rate:
    """The middle sample (the lower middle one for an even count)."""
    return sorted(rates, key=lambda r: r.per_second)[(len(rates) - 1) // 2]


def figures(
    raw: dict[int, Rate],
    library: dict[int, Rate],
    casedesk: Sequence[tuple[str, dict[int, Rate]]],
) -> list[Figure]:
    out: list[Figure] = []
    raw_name = "raw asyncpg insert c={}".format
    lib_name = "library recorder {} thr".format
    base = raw[min(raw)]
    for c, rate in raw.items():
        out.append(Figure.versus(raw_name(c), rate.per_second, EVENTS_UNIT, raw_name(min(raw)), base.per_second))
    for t, rate in library.items():
        out.append(Figure.versus(lib_name(t), rate.per_second, EVENTS_UNIT, raw_name(t), raw[t].per_second))
    for label, rates in casedesk:
        for c, rate in rates.items():
            name = f"casedesk {label} c={c}"
            out.append(
                Figure.versus(
                    name,
                    rate.per_second,
                    EVENTS_UNIT,
                    raw_name(c),
                    raw[c].per_second,
                    at_least=AT_LEAST_VS_RAW if c > 1 else None,
                )
            )
            if c in library:
                out.append(
                    Figure.versus(
                        name,
                        rate.per_second,
                        EVENTS_UNIT,
                        lib_name(c),
                        library[c].per_second,
                        at_least=AT_LEAST_VS_LIBRARY if c > 1 else None,
                    )
                )
    return out


async def run(ctx: BenchContext, seconds: float | None = None) -> list[Figure]:
    """Append rates; `seconds` per figure (default CASEDESK_BENCH_SECONDS or 2 s).

    Each figure's time is split over ROUNDS interleaved rounds (raw, library and
    casedesk alternate) and the median round is kept, so a passing disk hiccup
    hits one sample of every kind instead of one whole figure.
    """
    seconds = ctx.duration(DEFAULT_SECONDS) if seconds is None else seconds
    each = seconds / ROUNDS
    samples: dict[str, dict[int, list[Rate]]] = {
        k: {c: [] for c in CONCURRENCY} for k in ("raw", "library", "new", "next")
    }
    for _ in range(ROUNDS):
        for c in CONCURRENCY:
            samples["raw"][c].append(await raw_insert_rate(ctx, c, each))
            if c in LIBRARY_THREADS:
                samples["library"][c].append(await library_recorder_rate(ctx, c, each))
            samples["new"][c].append(await casedesk_new_stream_rate(ctx, c, each))
            samples["next"][c].append(await casedesk_next_version_rate(ctx, c, each))
    median = {kind: {c: median_rate(rs) for c, rs in by_c.items() if rs} for kind, by_c in samples.items()}
    return figures(
        median["raw"],
        median["library"],
        [("new stream", median["new"]), ("next version", median["next"])],
    )
