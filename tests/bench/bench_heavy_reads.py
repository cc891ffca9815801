"""Heavy reads must not stall others (issue 15): simple reads' p99 while big answers are made.

One `casedesk serve` (as shipped: projections in their worker process) on a
fresh database holding 20 small cases, opened through the API, and one case of
LONG_CASE_EVENTS events (about 3 MB of history JSON), decided in memory by the
domain's decisions (bench_replay's long case), its personal data sealed under
the customer's key as `serve` seals it, and appended 250 events at a time
through the EventStore, hash chains and all. Once the projection has caught up,
a reader in the benchmark process sends `GET /v1/cases/{id}` of a small case
every PACE_S (100/s), each request its own task at its own tick (open loop, so
a stall shows in every read it holds up), while a heavy client, in a process of
its own (`python -m tests.bench.bench_heavy_reads URL history|breach`), does:

- `quiet`: nothing else runs (PHASE_S, before each loaded phase);
- `history`: two auditors `GET /v1/cases/{id}/history` of the long case in a loop, PHASE_S;
- `breach upload`: one supervisor uploads a BREACH_LINES-line NDJSON list of
  affected cards (each line opens a case: two events; each round's customers new),
  for as long as it takes.

ROUNDS rounds of quiet, history, quiet, breach; each kind's reads pooled over the rounds
(a p99 of 800 reads is the 8th slowest: one round alone moved by a third from run to run).
Figures: the reads' p99 in each loaded phase against the quiet p99 (target < 3x),
the quiet p50/p99, and how much heavy work was done (history reads, cards/s).
About a minute and a half on the 2-core machine.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

import aiohttp

from casedesk.domain import decisions as d
from casedesk.domain.case import replay
from casedesk.domain.events import CaseEvent, CaseOpened
from casedesk.domain.values import Actor, ContactStart, Money
from casedesk.services.privacy.customer_keys import CustomerKeys
from casedesk.services.store.database import create_pool
from casedesk.services.store.event_mapper import CaseEventMapper
from casedesk.services.store.event_store import EventStore
from casedesk.services.tokens import issue_token
from tests.bench import BenchContext, Figure
from tests.bench.bench_http import agent_token, open_cases
from tests.bench.bench_replay import CARDS, REGISTERED, customer, long_case_steps
from tests.bench.support import (
    TOKEN_SECRET,
    Server,
    absolute,
    casedesk_command,
    casedesk_env,
    free_port,
    fresh_database,
    quantile,
    wait_for_position,
)

LONG_CASE_EVENTS = 5_000
SMALL_CASES = 20
PACE_S = 0.010
PHASE_S = 8.0
ROUNDS = 2
HISTORY_READERS = 2
BREACH_LINES = 40_000
RATIO_BELOW = 3.0
APPEND_AT_ONCE = 250
HEAD = "SELECT max(notification_id) FROM case_events"
MASTER = "bench-heavy-master-key"
ACTOR = Actor(id="agent-7", name="K. Takano", role="agent", department="fraud")


def long_case() -> list[CaseEvent]:
    """The long case's events, decided in memory command by command (one event each after opening)."""
    contact_id, at = uuid.uuid4(), datetime.now(UTC)
    events: list[CaseEvent] = list(d.open_case(
        case_id=uuid.uuid4(), actor=ACTOR, at=at, customer=customer(0), cards=CARDS, reason="unrecognized_charge",
        channel="phone", summary="Customer does not recognise WEBTEL charges",
        amount_at_risk=Money(amount="1995", currency="USD"),
        contact=ContactStart(contact_id=contact_id, direction="inbound", channel="phone", phone=REGISTERED,
                             department="fraud")))
    case, step = replay(events), 0
    while case is not None and case.version < LONG_CASE_EVENTS:
        step += 1
        decide, contact_id = long_case_steps(case, contact_id, step)
        new = decide(case, actor=ACTOR, at=datetime.now(UTC))
        case = replay(new, case)
        events += new
    return events[:LONG_CASE_EVENTS]


async def write_long_case(dsn: str) -> uuid.UUID:
    """The long case in the store, its personal data sealed as `serve` seals it (so a history read
    opens a token per note, name and phone, as it does on a real issuer's data); its id."""
    pool = await create_pool(dsn, min_size=1, max_size=2)
    store, mapper = EventStore(pool), CaseEventMapper()
    try:
        events = long_case()
        opened = events[0]
        assert isinstance(opened, CaseOpened)
        [events] = await CustomerKeys(pool, MASTER).seal_many([(opened.customer.customer_id, events)])
        for start in range(0, len(events), APPEND_AT_ONCE):
            await store.append([mapper.to_stored_event(e) for e in events[start:start + APPEND_AT_ONCE]])
        return events[0].originator_id
    finally:
        await store.close()
        await pool.close()


async def paced_reads(session: aiohttp.ClientSession, case_ids: list[str], done: Callable[[], bool]) -> list[float]:
    """GET a small case every PACE_S until `done()`; each read's latency in ms (open loop)."""
    latencies: list[float] = []

    async def one(case_id: str) -> None:
        started = time.perf_counter()
        async with session.get(f"/v1/cases/{case_id}") as r:
            await r.read()
            if r.status != 200:
                raise RuntimeError(f"a simple read answered {r.status}")
        latencies.append((time.perf_counter() - started) * 1000)

    reads: list[asyncio.Task[None]] = []
    start = time.perf_counter()
    while not done():
        reads.append(asyncio.create_task(one(case_ids[len(reads) % len(case_ids)])))
        await asyncio.sleep(max(0.0, start + len(reads) * PACE_S - time.perf_counter()))
    await asyncio.gather(*reads)
    return latencies


def for_seconds(seconds: float) -> Callable[[], bool]:
    deadline = time.perf_counter() + seconds
    return lambda: time.perf_counter() > deadline


async def while_running(session: aiohttp.ClientSession, url: str, case_ids: list[str],
                        *heavy: str) -> tuple[list[float], int, float]:
    """Paced reads while a heavy client runs in a process of its own (so its reading does not
    slow the measuring loop); until it ends, or PHASE_S for a loop; what it did and in how many seconds."""
    client = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.bench.bench_heavy_reads", url, *heavy,
        stdout=asyncio.subprocess.PIPE)
    assert client.stdout is not None
    await client.stdout.readline()  # "ready": imported, about to start
    started = time.perf_counter()
    finished = asyncio.create_task(client.communicate())
    latencies = await paced_reads(session, case_ids, lambda: finished.done() or time.perf_counter() - started > PHASE_S)
    out, _ = await finished
    if client.returncode != 0:
        raise RuntimeError(f"the heavy client {heavy} failed")
    count, seconds = out.split()
    return latencies, int(count), float(seconds)


async def read_history(session: aiohttp.ClientSession, case_id: str, until: float) -> int:
    reads = 0
    while time.perf_counter() < until:
        async with session.get(f"/v1/cases/{case_id}/history") as r:
            body = await r.read()
            if r.status != 200 or len(body) < 1_000_000:
                raise RuntimeError(f"history answered {r.status} with {len(body):,} bytes")
        reads += 1
    return reads


async def upload_breach(session: aiohttp.ClientSession, round_: str) -> int:
    async with session.post("/v1/breaches", json={
            "merchant": "ShopNet", "window_start": "2024-01-01T00:00:00Z", "window_end": "2024-03-31T00:00:00Z",
            "data_exposed": ["card_number"], "reissue_fee_bearer": "merchant"}) as r:
        breach_id = (await r.json())["breach_id"]
    body = b"".join(json.dumps({
        "customer_id": f"cust-{round_}-{n}", "name": f"Customer {n}", "registered_phone": f"+81 90 {n:08d}",
        "card_id": f"card-{round_}-{n}", "last4": f"{n % 10_000:04d}", "network": "jcb"}).encode() + b"\n"
        for n in range(1, BREACH_LINES + 1))
    async with session.post(f"/v1/breaches/{breach_id}/affected-cards", data=body,
                            headers={"Content-Type": "application/x-ndjson"}) as r:
        report = await r.json()
    if report.get("cases_opened") != BREACH_LINES:
        raise RuntimeError(f"the breach upload opened {report.get('cases_opened')} of {BREACH_LINES}")
    return BREACH_LINES


async def heavy_client(url: str, kind: str, *args: str) -> None:
    """The heavy client's process: `history <case id>` (HISTORY_READERS auditors for PHASE_S) or
    `breach <round>`."""
    print("ready", flush=True)
    started = time.perf_counter()
    timeout = aiohttp.ClientTimeout(total=600)
    if kind == "history":
        async with aiohttp.ClientSession(url, headers=_token("auditor"), timeout=timeout) as auditor:
            until = started + PHASE_S
            done = sum(await asyncio.gather(*[read_history(auditor, args[0], until) for _ in range(HISTORY_READERS)]))
    else:
        async with aiohttp.ClientSession(url, headers=_token("supervisor"), timeout=timeout) as supervisor:
            done = await upload_breach(supervisor, args[0])
    print(done, time.perf_counter() - started)


def _token(role: str) -> dict[str, str]:
    token = issue_token(TOKEN_SECRET, sub=f"bench-{role}", name="B. Enchmark", role=role, departments=["fraud"],
                        ttl=3600)
    return {"Authorization": f"Bearer {token}"}


async def run(ctx: BenchContext) -> list[Figure]:
    async with fresh_database(ctx, "heavy") as db:
        long_id = await write_long_case(db.dsn)
        port = free_port()
        env = {**casedesk_env(db.dsn), "CASEDESK_MASTER_KEY": MASTER}
        async with Server("heavy", casedesk_command(port), env, port) as server:
            small = await open_cases(server.url, agent_token("bench-agent"), SMALL_CASES)
            tracker = await db.connect()
            try:
                await wait_for_position(tracker, "case_files", await tracker.fetchval(HEAD))
            finally:
                await tracker.close()
            async with aiohttp.ClientSession(server.url, headers=_token("agent")) as reader:
                paced = partial(paced_reads, reader, small)
                await paced(for_seconds(1.0))  # warm-up
                quiet, loaded, breach = [], [], []
                history_reads, history_s, cards, breach_s = 0, 0.0, 0, 0.0
                for round_ in range(ROUNDS):
                    quiet += await paced(for_seconds(PHASE_S))
                    latencies, reads, seconds = await while_running(reader, server.url, small, "history",
                                                                    str(long_id))
                    loaded, history_reads, history_s = loaded + latencies, history_reads + reads, history_s + seconds
                    quiet += await paced(for_seconds(PHASE_S))
                    latencies, lines, seconds = await while_running(reader, server.url, small, "breach", str(round_))
                    breach, cards, breach_s = breach + latencies, cards + lines, breach_s + seconds
    quiet_p99 = quantile(quiet, 0.99)
    reference = f"quiet simple read p99 ({len(quiet):,} reads)"
    target = f"< {RATIO_BELOW:g}x"

    def against_quiet(name: str, latencies: list[float]) -> Figure:
        p99 = quantile(latencies, 0.99)
        ratio = p99 / quiet_p99
        return Figure(f"{name} ({len(latencies):,} reads)", p99, "ms", reference, quiet_p99, ratio, target,
                      ratio < RATIO_BELOW)

    return [
        absolute("simple read p50, quiet", quantile(quiet, 0.5), "ms", reference, quiet_p99),
        against_quiet(f"simple read p99, {HISTORY_READERS} auditors reading a {LONG_CASE_EVENTS:,}-event history",
                      loaded),
        against_quiet(f"simple read p99, {BREACH_LINES:,}-line breach upload", breach),
        Figure.versus(f"history reads of the {LONG_CASE_EVENTS:,}-event case meanwhile", history_reads / history_s,
                      "reads/s", "(no reference)", 0.0),
        Figure.versus("breach upload meanwhile", cards / breach_s, "cards/s", "(no reference)", 0.0),
    ]


if __name__ == "__main__":  # the heavy client (while_running)
    asyncio.run(heavy_client(*sys.argv[1:]))
