"""At scale: case view and timeline reads on 1,000,000 events over 100,000 cases (SPEC §6).

Setup, on fresh databases: the log written by COPY (tests/bench/scale_log.py:
template cases decided by the domain, stamped out with fresh ids, hash chains
and notification ids as the store writes them), then every projection rebuilt
from zero as `casedesk rebuild` does (REBUILD_BATCH), timed. The same on a
small database (SMALL_EVENTS over SMALL_CASES) as the reference.

Then `casedesk serve` on each database, and for the figure's time, in
READ_ROUNDS interleaved rounds (small, large), READERS (2) aiohttp clients in this
process each `GET /v1/cases/{id}` then `GET /v1/cases/{id}/timeline` of a
random case (an agent of department fraud, where every case is), and a raw
asyncpg `SELECT view FROM case_files WHERE case_id = $1` of a random case on
each database. Latencies of all rounds are pooled per figure.

Figures: view and timeline p50/p99 at scale against the same reads on the
small database (target p99 < 10 ms), the raw row SELECT at scale against the
small one, the rebuild rate at scale against a raw read of the log (target
>= 20,000 events/s), and the COPY rate of the generator. Then (issue 22) the
case files rebuilt as `casedesk rebuild --workers N` folds them, with 1 and
with 2 processes, on the large log (target >= 40,000 events/s with 2).
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from casedesk.projections.runner import REBUILD_BATCH
from casedesk.services.store.database import create_pool
from casedesk.services.store.event_store import EventStore
from casedesk.services.tokens import issue_token
from tests.bench import BenchContext, Figure
from tests.bench.bench_replay import RAW_LOG, parts_rate, rebuild_rate
from tests.bench.scale_log import write_log
from tests.bench.support import (
    TOKEN_SECRET,
    Server,
    absolute,
    casedesk_command,
    casedesk_env,
    free_port,
    fresh_database,
    quantile,
)

DEFAULT_SECONDS = 6.0  # of reads per database, over all rounds
EVENTS, CASES = 1_000_000, 100_000
SMOKE_EVENTS, SMOKE_CASES = 100_000, 10_000  # when asked for under a second per figure
SMALL_EVENTS, SMALL_CASES = 10_000, 1_000
READ_ROUNDS = 3
READERS = 2  # agents reading back to back; at 4 the server (one process) is saturated and p99 is its queue
READ_BELOW_MS = 10.0
REBUILD_AT_LEAST = 20_000.0
PARTS_AT_LEAST = 40_000.0  # issue 22: two processes on the 1,000,000-event log


@dataclass(slots=True)
class Reads:
    view: list[float] = field(default_factory=list)
    timeline: list[float] = field(default_factory=list)
    raw: list[float] = field(default_factory=list)


@dataclass(slots=True)
class Built:
    db: BenchContext
    case_ids: list[Any]
    events: int
    cases: int
    write_rate: float
    rebuild_rate: float
    raw_rate: float
    parts_rates: dict[int, float] = field(default_factory=dict)  # processes -> events/s (the large log only)


async def build(db: BenchContext, cases: int, events: int, parts: tuple[int, ...] = ()) -> Built:
    """Write the log by COPY, rebuild the projections from zero; time both (and the case files'
    rebuild in `parts` processes, each count in turn)."""
    pool = await create_pool(db.dsn, min_size=2, max_size=4)
    store = EventStore(pool)
    try:
        written = await write_log(pool, cases, events)
        total = await pool.fetchval("SELECT count(*) FROM case_events")
        raw_rate = await _raw_log_rate(pool, total)
        rate = await rebuild_rate(store, pool, total)  # the replay bench's own timed rebuild
        assert await pool.fetchval("SELECT count(*) FROM case_files") == cases
        parts_rates = {n: await parts_rate(pool, db.dsn, total, n) for n in parts}
        assert await pool.fetchval("SELECT count(*) FROM case_files") == cases
        await pool.execute("VACUUM ANALYZE case_files")
    finally:
        await store.close()
        await pool.close()
    return Built(db, written.case_ids, events, cases, events / written.seconds, rate, raw_rate, parts_rates)


async def _raw_log_rate(pool: Any, total: int) -> float:
    started = time.perf_counter()
    after, seen = 0, 0
    while rows := await pool.fetch(RAW_LOG, after, REBUILD_BATCH):
        after = rows[-1][0]
        seen += len(rows)
    assert seen == total
    return total / (time.perf_counter() - started)


async def read_round(url: str, pool: Any, ids: list[Any], token: str, seconds: float, into: Reads) -> None:
    """READERS clients reading random cases' view then timeline; a raw SELECT alongside."""
    rng = random.Random()
    stop_at = time.perf_counter() + seconds
    headers = {"Authorization": f"Bearer {token}"}

    async def reader(session: aiohttp.ClientSession) -> None:
        while time.perf_counter() < stop_at:
            case_id = rng.choice(ids)
            for path, kept in ((f"/v1/cases/{case_id}", into.view), (f"/v1/cases/{case_id}/timeline", into.timeline)):
                started = time.perf_counter()
                async with session.get(path) as r:
                    await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"GET {path}: {r.status} {await r.text()}")
                kept.append(time.perf_counter() - started)

    async def raw() -> None:
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            await pool.fetchval("SELECT view FROM case_files WHERE case_id = $1", rng.choice(ids))
            into.raw.append(time.perf_counter() - started)
            await asyncio.sleep(0.002)

    connector = aiohttp.TCPConnector(limit=READERS)
    async with aiohttp.ClientSession(url, connector=connector, headers=headers) as session:
        await asyncio.gather(*[reader(session) for _ in range(READERS)], raw())


async def measure(built: list[Built], seconds: float) -> list[Reads]:
    token = issue_token(TOKEN_SECRET, sub="bench-reader", name="R. Eader", role="agent", departments=["fraud"],
                        ttl=4 * 3600)
    reads = [Reads() for _ in built]
    async with Servers(built) as servers:
        pools = [await create_pool(b.db.dsn, min_size=1, max_size=1) for b in built]
        try:
            for b, server, pool in zip(built, servers, pools, strict=True):  # warm-up
                await read_round(server.url, pool, b.case_ids, token, 0.5, Reads())
            for _ in range(READ_ROUNDS):
                for b, server, pool, into in zip(built, servers, pools, reads, strict=True):
                    await read_round(server.url, pool, b.case_ids, token, seconds / READ_ROUNDS, into)
        finally:
            for pool in pools:
                await pool.close()
    return reads


class Servers:
    """`casedesk serve` on each database, all up together."""

    def __init__(self, built: list[Built]) -> None:
        self.servers = [Server("casedesk", casedesk_command(port), casedesk_env(b.db.dsn), port)
                        for b in built for port in [free_port()]]

    async def __aenter__(self) -> list[Server]:
        entered: list[Server] = []
        try:
            for server in self.servers:
                entered.append(await server.__aenter__())
        except BaseException:
            for server in entered:
                await server.__aexit__(None, None, None)
            raise
        return entered

    async def __aexit__(self, *exc: object) -> None:
        for server in self.servers:
            await server.__aexit__(None, None, None)


async def run(ctx: BenchContext, seconds: float | None = None) -> list[Figure]:
    seconds = ctx.duration(DEFAULT_SECONDS) if seconds is None else seconds
    events, cases = (EVENTS, CASES) if seconds >= 1 else (SMOKE_EVENTS, SMOKE_CASES)
    async with fresh_database(ctx, "bench_scale_small") as small_db, fresh_database(ctx, "bench_scale") as big_db:
        small = await build(small_db, SMALL_CASES, SMALL_EVENTS)
        big = await build(big_db, cases, events, parts=(1, 2))
        small_reads, big_reads = await measure([small, big], max(seconds, 0.3))
    ms = 1000
    at = f"{events:,} events / {cases:,} cases"
    ref = f"{SMALL_EVENTS:,} events"
    figures = []
    for what, big_ms, small_ms in (("case view", big_reads.view, small_reads.view),
                                   ("timeline", big_reads.timeline, small_reads.timeline)):
        figures += [
            Figure.versus(f"{what} p50, {at}", quantile(big_ms, 0.5) * ms, "ms",
                          f"{what} p50, {ref}", quantile(small_ms, 0.5) * ms),
            absolute(f"{what} p99, {at}", quantile(big_ms, 0.99) * ms, "ms",
                     f"{what} p99, {ref}", quantile(small_ms, 0.99) * ms, below=READ_BELOW_MS),
        ]
    figures += [
        Figure.versus(f"raw SELECT case_files row p99, {at}", quantile(big_reads.raw, 0.99) * ms, "ms",
                      f"raw SELECT p99, {ref}", quantile(small_reads.raw, 0.99) * ms),
        absolute(f"rebuild all projections, {at}", big.rebuild_rate, "events/s",
                 f"raw read of the log, batch {REBUILD_BATCH:,}", big.raw_rate, at_least=REBUILD_AT_LEAST),
        Figure.versus(f"log written by COPY (+ hash chains), {at}", big.write_rate, "events/s",
                      f"raw read of the log, batch {REBUILD_BATCH:,}", big.raw_rate),
        absolute(f"case files rebuilt in 2 processes (--workers 2), {at}", big.parts_rates[2], "events/s",
                 "the same in 1 process (--workers 1)", big.parts_rates[1], at_least=PARTS_AT_LEAST),
    ]
    return figures
