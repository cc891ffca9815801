"""Command throughput over HTTP, and projection lag under that load (SPEC §6).

At the same concurrency (CONNECTIONS), each on its own fresh database:
- (a) casedesk: `casedesk serve` as a subprocess, as shipped (its projections in
  the worker process it starts, CASEDESK_PROJECTIONS=process);
  `POST /v1/cases/{id}/notes` on CASES existing cases, an agent's bearer token
  (department fraud); SPEC §6's targets are checked on this one;
- (a') casedesk one process: the same with CASEDESK_PROJECTIONS=in-process (API and
  projections in one event loop), shown for comparison, no targets;
- (b) the plain way: tests/bench/plain_app.py as a subprocess (aiohttp, JWT check,
  the eventsourcing library's PostgresApplicationRecorder in a thread);
- (c) raw asyncpg single-row INSERTs on casedesk's database (bench_store's figure);
- (d) the stack's limit: tests/bench/limit_app.py as a subprocess (aiohttp on uvloop,
  PyJWT check of the same token, msgspec decode of the same body and encode of an
  answer as long as casedesk's), no database: casedesk's rate as a share of it says
  how much of the work is our own (issue 22).
The load comes from another process: `wrk` (tests/bench/load.lua) when installed,
else a Python aiohttp generator in a process of its own. The time is split over
ROUNDS interleaved rounds (a, a', b, c, a, a', b, c, ...) after a warm-up of each
server, and each kind's median round is kept.

Projection lag: during every casedesk round LAG_CLIENTS side clients in this
process add notes (pausing LAG_INTERVAL after each answer) to cases of their own,
noting each answer's `position` and when it arrived, while another connection
reads case_files' tracking position every POLL_INTERVAL. A command's lag is from
its answer to the first poll (its answer's arrival) that saw the projection at or
past its position; 0 if that was before the answer. After each casedesk round its
projection is let catch up, so leftover work never runs during the next round.
"""

from __future__ import annotations

import asyncio
import bisect
import os
import sys
import time
import uuid
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import aiohttp
import asyncpg
import msgspec
from eventsourcing.persistence import StoredEvent

from casedesk.services.tokens import issue_token
from tests.bench import BenchContext, Figure
from tests.bench.bench_store import raw_insert_rate
from tests.bench.plain_app import open_recorder
from tests.bench.support import (
    REPO_ROOT,
    TOKEN_SECRET,
    LoadResult,
    Server,
    absolute,
    casedesk_command,
    casedesk_env,
    free_port,
    fresh_database,
    load,
    quantile,
    wait_for_position,
)

DEFAULT_SECONDS = 6.0  # per kind, split over ROUNDS (wrk counts whole seconds, at least 1 a round)
ROUNDS = 3
CONNECTIONS = 32
CASES = 320
LAG_CASES = 16
LAG_CLIENTS = 4  # side clients, one command in flight each
LAG_INTERVAL = 0.01  # each pauses 10 ms between its commands
POLL_INTERVAL = 0.001  # tracking position read every ~1 ms
LAG_START_DELAY = 0.25  # let the load get going before sampling
MAX_ERROR_SHARE = 0.01
MIN_LAG_SAMPLES = 20

AT_LEAST_VS_PLAIN = 4.0
AT_LEAST_VS_RAW = 0.5
LAG_P99_BELOW_MS = 50.0

NOTE_PATH = "/v1/cases/{id}/notes"
NOTE = msgspec.json.encode({
    "text": "Customer confirmed the two card-present transactions at 14:02 and 14:09 were not theirs;"
    " card blocked, replacement ordered. Call back after 17:00 about the dispute forms."
})
TRACKING = "SELECT notification_id FROM projection_tracking WHERE application_name = 'case_files'"
CASEDESK, IN_PROCESS, PLAIN, LIMIT = "casedesk", "casedesk one process", "plain", "no-database reference"


def new_case_body(n: int) -> dict[str, object]:
    return {
        "customer": {"customer_id": f"cust-{n:06d}", "name": "Taro Yamada", "registered_phone": "+81 90 1234 5678"},
        "cards": [{"card_id": "card-p", "last4": "4242", "network": "visa", "kind": "primary"}],
        "reason": "unrecognized_charge",
        "channel": "phone",
        "summary": "Customer does not recognise a USD 19.95 charge from WEBTEL",
        "amount_at_risk": {"amount": "19.95", "currency": "USD"},
    }


def agent_token(sub: str) -> str:
    return issue_token(TOKEN_SECRET, sub=sub, name="B. Enchmark", role="agent", departments=["fraud"], ttl=4 * 3600)


async def open_cases(base_url: str, token: str, count: int) -> list[str]:
    """Open `count` cases through casedesk's API, 16 at a time."""
    gate = asyncio.Semaphore(16)
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(base_url, headers=headers) as session:

        async def one(n: int) -> str:
            async with gate, session.post("/v1/cases", json=new_case_body(n)) as r:
                body = await r.json()
                if r.status != 201:
                    raise RuntimeError(f"opening a case answered {r.status}: {body}")
                return str(body["case_id"])

        return list(await asyncio.gather(*[one(n) for n in range(count)]))


def seed_plain(dsn: str, case_ids: Sequence[str]) -> None:
    """The plain server's cases: one opening event each, written with the library's recorder."""
    datastore, recorder = open_recorder(dsn, pool_size=1)
    try:
        state = b'{"summary":"Customer does not recognise a USD 19.95 charge from WEBTEL"}'
        recorder.insert_events(
            [StoredEvent(uuid.UUID(c), 1, "casedesk.domain.events:CaseOpened", state) for c in case_ids]
        )
    finally:
        datastore.close()


class LagProbe:
    """Side commands with their answer's position and time; the tracking position every ~1 ms."""

    def __init__(self, db: BenchContext, base_url: str, case_ids: Sequence[str]) -> None:
        self.db, self.base_url, self.case_ids = db, base_url, list(case_ids)
        self.token = agent_token("bench-lag-probe")
        self.lags_ms: list[float] = []
        self.unseen = 0

    async def during(self, load_task: asyncio.Task[LoadResult], started: asyncio.Event) -> None:
        """Sample while `load_task` runs (once `started`); then wait (up to 10 s) for the last position."""
        conn = await self.db.connect()
        seen_at: list[float] = []
        seen: list[int] = []
        answers: list[tuple[float, int]] = []
        polling = True

        async def poll() -> None:
            while polling:
                started = time.perf_counter()
                position = await conn.fetchval(TRACKING) or 0
                seen_at.append(time.perf_counter())
                seen.append(position)
                await asyncio.sleep(max(0.0, POLL_INTERVAL - (time.perf_counter() - started)))

        async def side(session: aiohttp.ClientSession, ids: list[str]) -> None:
            await started.wait()
            await asyncio.sleep(LAG_START_DELAY)
            turn = 0
            while not load_task.done():
                case_id = ids[turn % len(ids)]
                turn += 1
                async with session.post(NOTE_PATH.replace("{id}", case_id), data=NOTE) as r:
                    raw = await r.read()
                    arrived = time.perf_counter()
                if r.status != 201:
                    raise RuntimeError(f"a side command answered {r.status}: {raw[:500]!r}")
                answers.append((arrived, int(msgspec.json.decode(raw)["position"])))
                await asyncio.sleep(LAG_INTERVAL)

        poller = asyncio.create_task(poll())
        try:
            headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
            async with aiohttp.ClientSession(self.base_url, headers=headers) as session:
                await asyncio.gather(*[side(session, self.case_ids[n::LAG_CLIENTS]) for n in range(LAG_CLIENTS)])
            last = max((p for _, p in answers), default=0)
            deadline = time.perf_counter() + 10
            while (not seen or seen[-1] < last) and time.perf_counter() < deadline:
                await asyncio.sleep(0.005)
        finally:
            polling = False
            await asyncio.gather(poller, return_exceptions=True)
            await conn.close()
        for arrived, position in answers:
            i = bisect.bisect_left(seen, position)  # seen only grows: the first poll at/past it
            if i == len(seen):
                self.unseen += 1
                continue
            self.lags_ms.append(max(0.0, seen_at[i] - arrived) * 1000)


def median_round(results: list[LoadResult]) -> LoadResult:
    return sorted(results, key=lambda r: r.per_second)[(len(results) - 1) // 2]


def check_errors(name: str, result: LoadResult, server: Server) -> None:
    if result.errors > MAX_ERROR_SHARE * max(result.requests, 1):
        raise RuntimeError(
            f"{name}: {result.errors} of {result.requests} requests failed ({result.generator});"
            f" server log:\n{server.log_tail()}"
        )


@dataclass
class Casedesk:
    """One casedesk layout under test: its database, servers, cases, lag probe and rounds."""

    label: str
    db: BenchContext
    api: Server
    ids: list[str]
    probe: LagProbe
    tracker: asyncpg.Connection
    results: list[LoadResult] = field(default_factory=list)

    @classmethod
    async def start(cls, stack: AsyncExitStack, ctx: BenchContext, label: str, token: str, *,
                    projections: str) -> Casedesk:
        """A fresh database and `casedesk serve` on it, CASEDESK_PROJECTIONS=`projections`."""
        db = await stack.enter_async_context(fresh_database(ctx, "bench_http", migrated=False))
        port = free_port()
        env = {**casedesk_env(db.dsn), "CASEDESK_PROJECTIONS": projections}
        api = await stack.enter_async_context(Server(label, casedesk_command(port), env, port))
        ids = await open_cases(api.url, token, CASES + LAG_CASES)
        tracker = await db.connect()
        stack.push_async_callback(tracker.close)
        return cls(label, db, api, ids[:CASES], LagProbe(db, api.url, ids[CASES:]), tracker)

    async def caught_up(self) -> None:
        await _caught_up(self.tracker)

    async def measure(self, token: str, seconds: int) -> None:
        started = asyncio.Event()
        task = asyncio.create_task(load(self.api.url, NOTE_PATH, self.ids, NOTE, token, CONNECTIONS, seconds, started))
        await self.probe.during(task, started)
        self.results.append(await task)
        check_errors(self.label, self.results[-1], self.api)
        await self.caught_up()
        if self.probe.unseen:
            raise RuntimeError(f"{self.label}: {self.probe.unseen} side commands never showed up in case_files in 10 s")


async def run(ctx: BenchContext, seconds: float | None = None) -> list[Figure]:
    seconds = ctx.duration(DEFAULT_SECONDS) if seconds is None else seconds
    each = max(1, round(seconds / ROUNDS))
    warmup = max(1, round(ctx.warmup(seconds * ROUNDS)))
    token = agent_token("bench-agent")
    plain_results: list[LoadResult] = []
    raw_rates = []
    async with AsyncExitStack() as stack:
        single = await Casedesk.start(stack, ctx, CASEDESK, token, projections="process")
        split = await Casedesk.start(stack, ctx, IN_PROCESS, token, projections="in-process")
        plain_db = await stack.enter_async_context(fresh_database(ctx, "bench_plain", migrated=False))
        plain_port = free_port()
        plain = await stack.enter_async_context(Server(
            PLAIN, [sys.executable, "-m", "tests.bench.plain_app", "--port", str(plain_port)],
            {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PLAIN_DSN": plain_db.dsn, "PLAIN_TOKEN_SECRET": TOKEN_SECRET},
            plain_port))
        await asyncio.to_thread(seed_plain, plain_db.dsn, single.ids)
        limit = await stack.enter_async_context(await _limit_server(single, token))
        limit_results: list[LoadResult] = []
        for casedesk in (single, split):
            await load(casedesk.api.url, NOTE_PATH, casedesk.ids, NOTE, token, CONNECTIONS, warmup)
            await casedesk.caught_up()
        await load(plain.url, NOTE_PATH, single.ids, NOTE, token, CONNECTIONS, warmup)
        await load(limit.url, NOTE_PATH, single.ids, NOTE, token, CONNECTIONS, warmup)
        for _ in range(ROUNDS):
            await single.measure(token, each)
            await split.measure(token, each)
            plain_results.append(await load(plain.url, NOTE_PATH, single.ids, NOTE, token, CONNECTIONS, each))
            check_errors(PLAIN, plain_results[-1], plain)
            raw_rates.append(await raw_insert_rate(single.db, CONNECTIONS, each))
            limit_results.append(await load(limit.url, NOTE_PATH, single.ids, NOTE, token, CONNECTIONS, each))
            check_errors(LIMIT, limit_results[-1], limit)
    b = median_round(plain_results)
    raw = sorted(raw_rates, key=lambda r: r.per_second)[(len(raw_rates) - 1) // 2].per_second
    c = CONNECTIONS
    name_b, name_c = f"plain (library recorder) c={c}", f"raw asyncpg insert c={c}"
    d = median_round(limit_results)
    name_d = f"{LIMIT} (same stack, no database) c={c}"
    figures = [Figure.versus(name_b, b.per_second, "req/s", name_c, raw)]
    for casedesk in (single, split):
        a, lags = median_round(casedesk.results), casedesk.probe.lags_ms
        if len(lags) < MIN_LAG_SAMPLES:
            raise RuntimeError(f"{casedesk.label}: only {len(lags)} projection lag samples")
        name_a = f"{casedesk.label} POST note c={c}"
        shipped = casedesk is single  # the targets are the shipped layout's; the other is for comparison
        figures += [
            Figure.versus(name_a, a.per_second, "req/s", name_b, b.per_second,
                          at_least=AT_LEAST_VS_PLAIN if shipped else None),
            Figure.versus(name_a, a.per_second, "req/s", name_c, raw, at_least=AT_LEAST_VS_RAW if shipped else None),
            Figure.versus(name_a, a.per_second, "req/s", name_d, d.per_second),
            Figure.versus(f"{casedesk.label} note p50 latency", a.p50_ms, "ms", "plain p50 latency", b.p50_ms),
            Figure.versus(f"{casedesk.label} note p99 latency", a.p99_ms, "ms", "plain p99 latency", b.p99_ms),
            absolute(f"{casedesk.label} projection lag p50", quantile(lags, 0.5), "ms",
                     f"{casedesk.label} note p50 latency", a.p50_ms),
            absolute(f"{casedesk.label} projection lag p99", quantile(lags, 0.99), "ms",
                     f"{casedesk.label} note p99 latency", a.p99_ms, below=LAG_P99_BELOW_MS if shipped else None),
        ]
    return figures


async def _limit_server(casedesk: Casedesk, token: str) -> Server:
    """The no-database reference, answering as many bytes as casedesk's note answer does."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession(casedesk.api.url, headers=headers) as session, \
            session.post(NOTE_PATH.replace("{id}", casedesk.ids[0]), data=NOTE) as r:
        answer = await r.read()
        if r.status != 201:
            raise RuntimeError(f"a note answered {r.status}: {answer[:500]!r}")
    port = free_port()
    return Server(LIMIT, [sys.executable, "-m", "tests.bench.limit_app", "--port", str(port),
                          "--answer-bytes", str(len(answer))],
                  {**os.environ, "PYTHONPATH": str(REPO_ROOT), "LIMIT_TOKEN_SECRET": TOKEN_SECRET}, port)


async def _caught_up(tracker: asyncpg.Connection) -> None:
    """Wait until casedesk's case_files projection has applied everything written so far."""
    head = await tracker.fetchval("SELECT coalesce(max(notification_id), 0) FROM case_events")
    await wait_for_position(tracker, "case_files", head)

