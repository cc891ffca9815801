"""Presence: what 500 agents' heartbeats cost the command path, and how fast a note reaches a case stream (issue 19).

One `casedesk serve` as shipped (projections in its worker process) on a fresh
database. The load is bench_http's: `POST /v1/cases/{id}/notes` on CASES cases,
CONNECTIONS at once, from another process. Rounds alternate (ROUNDS of each):
- alone: the note load only;
- (rounds of both kinds alternate, their order swapped every round);
- with heartbeats: the same load while AGENTS agents, each with a token of its
  own and a case of the CASES, send `POST .../presence` every 15 s (AGENTS / 15
  a second, spread evenly), as their open case pages do. Every agent beats
  once before the first round, so the rounds measure the steady state (a beat
  that changes nothing: one upsert, no NOTIFY) with whatever expires between
  rounds arriving again (an upsert and a NOTIFY), as in a day's work.
Figure: note throughput with heartbeats / alone (target: >= 0.95, i.e. < 5 % cost).

Delivery, in rounds of a third kind (heartbeats and the note load as above, so
that its own notes do not count against the throughput figure): STREAMS other agents hold
`GET /v1/cases/{id}/stream` open on probe cases of their own, and a writer adds
a note to each probe case in turn, pausing PROBE_INTERVAL after each answer.
A note's delivery is from its answer's arrival (the event is committed) to the
`case-event` of its version on the other agent's stream (0 if that came first).
Figure: delivery p99 (target < 100 ms), against the note load's p99 latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from contextlib import AsyncExitStack

import aiohttp
import msgspec

from casedesk.services.tokens import issue_token
from tests.bench import BenchContext, Figure
from tests.bench.bench_http import NOTE, NOTE_PATH, check_errors, median_round, open_cases
from tests.bench.support import (
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
)

DEFAULT_SECONDS = 10.0  # per kind, split over ROUNDS (a 5 % difference needs more than bench_http's 6 s)
ROUNDS = 5
CONNECTIONS = 32
CASES = 320
AGENTS = 500
HEARTBEAT_EVERY = 15.0
STREAMS = 8
PROBE_INTERVAL = 0.05
MIN_DELIVERIES = 20
AT_LEAST_WITH_HEARTBEATS = 0.95
DELIVERY_P99_BELOW_MS = 100.0


def token_of(sub: str, name: str) -> str:
    return issue_token(TOKEN_SECRET, sub=sub, name=name, role="agent", departments=["fraud"], ttl=4 * 3600)


class Heartbeats:
    """AGENTS agents beating every HEARTBEAT_EVERY seconds, evenly spread: AGENTS / HEARTBEAT_EVERY a second."""

    def __init__(self, base_url: str, case_ids: list[str]) -> None:
        self.base_url = base_url
        self.agents = [(token_of(f"bench-present-{n:03d}", f"Agent {n:03d}"), case_ids[n % len(case_ids)])
                       for n in range(AGENTS)]
        self.sent = self.failed = 0

    async def beat(self, session: aiohttp.ClientSession, n: int) -> None:
        token, case_id = self.agents[n % AGENTS]
        async with session.post(f"/v1/cases/{case_id}/presence", data=b'{"activity":"viewing"}',
                                headers={"Authorization": f"Bearer {token}",
                                         "Content-Type": "application/json"}) as r:
            await r.read()
            self.sent += 1
            self.failed += r.status != 204

    async def everyone_once(self) -> None:
        gate = asyncio.Semaphore(16)
        async with aiohttp.ClientSession(self.base_url) as session:
            async def one(n: int) -> None:
                async with gate:
                    await self.beat(session, n)
            await asyncio.gather(*[one(n) for n in range(AGENTS)])

    async def during(self, load_task: asyncio.Task[LoadResult], started: asyncio.Event) -> None:
        await started.wait()
        pause = HEARTBEAT_EVERY / AGENTS
        beats: set[asyncio.Task[None]] = set()
        async with aiohttp.ClientSession(self.base_url) as session:
            n, begun = 0, time.perf_counter()
            while not load_task.done():
                task = asyncio.create_task(self.beat(session, n))
                beats.add(task)
                task.add_done_callback(beats.discard)
                n += 1
                await asyncio.sleep(max(0.0, begun + n * pause - time.perf_counter()))
            await asyncio.gather(*beats, return_exceptions=True)


class DeliveryProbe:
    """Notes on probe cases, each watched by another agent's case stream; the time to delivery."""

    def __init__(self, base_url: str, case_ids: list[str]) -> None:
        self.base_url, self.case_ids = base_url, case_ids
        self.writer = token_of("bench-writer", "W. Riter")
        self.delivery_ms: list[float] = []
        self.lost = 0

    async def during(self, load_task: asyncio.Task[LoadResult], started: asyncio.Event) -> None:
        arrived: dict[tuple[str, int], float] = {}
        answered: dict[tuple[str, int], float] = {}
        ready = [asyncio.Event() for _ in self.case_ids]

        async def watch(session: aiohttp.ClientSession, index: int, case_id: str) -> None:
            token = token_of(f"bench-watcher-{index}", f"Watcher {index}")
            async with session.get(f"/v1/cases/{case_id}/stream", params={"access_token": token}) as r:
                event = ""
                async for raw in r.content:
                    line = raw.decode().rstrip("\r\n")
                    if line.startswith("event:"):
                        event = line[6:].strip()
                        ready[index].set()
                    elif line.startswith("data:") and event == "case-event":
                        body = msgspec.json.decode(line[5:].strip())
                        arrived[(case_id, int(body["version"]))] = time.perf_counter()

        async def write(session: aiohttp.ClientSession) -> None:
            await started.wait()
            headers = {"Authorization": f"Bearer {self.writer}", "Content-Type": "application/json"}
            turn = 0
            while not load_task.done():
                case_id = self.case_ids[turn % len(self.case_ids)]
                turn += 1
                async with session.post(NOTE_PATH.replace("{id}", case_id), data=NOTE, headers=headers) as r:
                    raw = await r.read()
                    at = time.perf_counter()
                if r.status != 201:
                    raise RuntimeError(f"a probe note answered {r.status}: {raw[:300]!r}")
                answered[(case_id, int(msgspec.json.decode(raw)["version"]))] = at
                await asyncio.sleep(PROBE_INTERVAL)

        async with aiohttp.ClientSession(self.base_url, timeout=aiohttp.ClientTimeout(total=None)) as session:
            watchers = [asyncio.create_task(watch(session, i, c)) for i, c in enumerate(self.case_ids)]
            try:
                async with asyncio.timeout(10):
                    await asyncio.gather(*[r.wait() for r in ready])
                await write(session)
                deadline = time.perf_counter() + 2
                while set(answered) - set(arrived) and time.perf_counter() < deadline:
                    await asyncio.sleep(0.01)
            finally:
                for task in watchers:
                    task.cancel()
                await asyncio.gather(*watchers, return_exceptions=True)
        for key, at in answered.items():
            if key not in arrived:
                self.lost += 1
            else:
                self.delivery_ms.append(max(0.0, arrived[key] - at) * 1000)


async def run(ctx: BenchContext, seconds: float | None = None) -> list[Figure]:
    seconds = ctx.duration(DEFAULT_SECONDS) if seconds is None else seconds
    each = max(1, round(seconds / ROUNDS))
    warmup = max(1, round(ctx.warmup(seconds * ROUNDS)))
    token = token_of("bench-agent", "B. Enchmark")
    alone: list[LoadResult] = []
    beating: list[LoadResult] = []
    delivering: list[LoadResult] = []  # the rounds with the delivery probe: their throughput is not compared
    async with AsyncExitStack() as stack:
        db = await stack.enter_async_context(fresh_database(ctx, "bench_presence", migrated=False))
        port = free_port()
        api = await stack.enter_async_context(Server("casedesk", casedesk_command(port),
                                                     {**casedesk_env(db.dsn), "CASEDESK_PROJECTIONS": "process"}, port))
        ids = await open_cases(api.url, token, CASES + STREAMS)
        note_ids, probe_ids = ids[:CASES], ids[CASES:]
        heartbeats = Heartbeats(api.url, note_ids)
        probe = DeliveryProbe(api.url, probe_ids)
        await load(api.url, NOTE_PATH, note_ids, NOTE, token, CONNECTIONS, warmup)
        await heartbeats.everyone_once()
        for turn in range(ROUNDS):
            # alone and with heartbeats side by side, their order swapped every round (a machine that slows
            # down or speeds up over the run favours neither); the delivery round after both.
            for measured in ((alone, beating) if turn % 2 == 0 else (beating, alone)) + (delivering,):
                if measured is alone:
                    alone.append(await load(api.url, NOTE_PATH, note_ids, NOTE, token, CONNECTIONS, each))
                    check_errors("notes alone", alone[-1], api)
                    continue
                started = asyncio.Event()
                task = asyncio.create_task(load(api.url, NOTE_PATH, note_ids, NOTE, token, CONNECTIONS, each,
                                                started))
                side = [heartbeats.during(task, started)]
                if measured is delivering:
                    side.append(probe.during(task, started))
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.gather(*side)
                measured.append(await task)
                check_errors("notes with heartbeats", measured[-1], api)
    if heartbeats.failed:
        raise RuntimeError(f"{heartbeats.failed} of {heartbeats.sent} heartbeats failed")
    if len(probe.delivery_ms) < MIN_DELIVERIES or probe.lost:
        raise RuntimeError(f"{len(probe.delivery_ms)} notes delivered to a stream, {probe.lost} never")
    a, b, d = median_round(alone), median_round(beating), median_round(delivering)
    c = CONNECTIONS
    name_alone = f"POST note c={c}, no presence"
    name_with = f"POST note c={c}, {AGENTS} agents' heartbeats ({AGENTS / HEARTBEAT_EVERY:.0f}/s)"
    deliveries = probe.delivery_ms
    return [
        Figure.versus(name_with, b.per_second, "req/s", name_alone, a.per_second,
                      at_least=AT_LEAST_WITH_HEARTBEATS),
        absolute("note delivery to another agent's case stream p50", quantile(deliveries, 0.5), "ms",
                 f"{name_with} p50 latency", d.p50_ms),
        absolute("note delivery to another agent's case stream p99", quantile(deliveries, 0.99), "ms",
                 f"{name_with} p99 latency", d.p99_ms, below=DELIVERY_P99_BELOW_MS),
    ]
