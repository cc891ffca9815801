"""Effects (issue 17): how soon the card processor hears a decision, how fast webhooks go out.

- Instruction latency: real processes (API, processor-instruction sender,
  processor simulator), one suspension at a time 20 ms apart; from the
  suspension's HTTP answer to the simulator's transaction receiving the call
  (tests/effects/processor/latency.py). Target p99 < 100 ms.
- Webhook delivery: 1,000 cases of 5 events, replayed from position 1 to one
  receiver process that verifies every signature with `standardwebhooks`
  (tests/effects/measure_webhook_rate.py). Target >= 2,000 events/s.

- What they cost: `POST note` throughput (c=32, as bench_http) of `casedesk
  serve` with both senders running (the processor simulator, and a webhook
  subscription of every event to a verifying receiver process), against the
  same serve without them. Target < 10 %. Each kind runs COST_ROUNDS times,
  the kinds alternating and their order reversed every round (a machine that
  slows down or speeds up over the run favours none), each round a fresh
  serve on a fresh database; the median round of each kind is kept. An
  issuer's receiver runs on its own machine; on this 2-core one it would
  take a third of the CPU the note load has (it verifies a signature per
  event), so for the target it runs at niceness 19: it takes what the API
  leaves and catches up after the load. The same figure with the receiver at
  the API's priority is shown beside it, without a target. The sender runs
  at CASEDESK_WEBHOOK_NICE (10) and, as serve runs it, rests while the CPUs are
  saturated by the API's work, for at most CASEDESK_WEBHOOK_PEAK_DELAY (30 s) of
  lag (services/effects/peak_yield.py): at a peak delivery lags; how long the
  receiver needs after the load to hold every note's event is shown too.

The first two are absolute figures against their targets (the reference column
is the target): nothing else on this machine does the same work to compare with.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
import asyncpg

from casedesk.services.tokens import issue_token
from tests.bench import BenchContext, Figure
from tests.bench.bench_http import CONNECTIONS, NOTE, NOTE_PATH, open_cases
from tests.bench.support import TOKEN_SECRET, Server, casedesk_command, casedesk_env, free_port, fresh_database, load
from tests.effects import measure_webhook_rate
from tests.effects.processor import latency

SUSPENSIONS = 200
CASES, NOTES = 1_000, 4
LATENCY_TARGET_MS = 100.0
RATE_TARGET = 2_000.0
COST_TARGET = 0.9  # with the senders, at least 90 % of the throughput without
COST_SECONDS = 8
COST_ROUNDS = 5  # 3 left a spread of 0.78-1.06x between runs: fresh serves vary by +-15 %
CATCH_UP_LIMIT = 120.0  # seconds after the load: longer is a failed delivery, not lag


def _under(name: str, value: float, target: float) -> Figure:
    return Figure(name, value, "ms", f"target < {target:g} ms", target, value / target, f"< {target:g} ms",
                  value < target)


async def _subscribe_a_receiver(stack: AsyncExitStack, api_url: str, folder: Path, *, nice: int) -> Path:
    """A verifying receiver process at niceness `nice`, subscribed to every event; the file it keeps."""
    port, secret, kept = free_port(), folder / "secret", folder / "received.jsonl"
    receiver = await asyncio.create_subprocess_exec(
        "nice", "-n", str(nice), sys.executable, "-m", "tests.effects.webhook_receiver", "--port", str(port), "--secret-file", str(secret),
        "--out", str(kept), "--fail-flag", str(folder / "down"), "--delay", "0",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    stack.push_async_callback(receiver.wait)
    stack.callback(receiver.terminate)
    admin = {"Authorization": "Bearer " + issue_token(TOKEN_SECRET, sub="bench-admin", name="Ops", role="admin",
                                                          departments=[])}
    async with aiohttp.ClientSession() as session:
        for _ in range(100):  # until it listens
            try:
                async with session.get(f"http://127.0.0.1:{port}/alive"):
                    break
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
        async with session.post(f"{api_url}/v1/webhooks", headers=admin,
                                json={"url": f"http://127.0.0.1:{port}/hook", "event_types": ["*"]}) as answer:
            created = await answer.json()
            if answer.status != 201:
                raise RuntimeError(f"webhook subscription refused: {created}")
    secret.write_text(created["secret"])
    return kept


def _notes_received(path: Path) -> int:
    """Distinct note events the receiver holds (delivery is at least once: a retry is a second line)."""
    try:
        with path.open("rb") as f:
            # Only whole lines: the last one may be half written as it is read.
            return len({json.loads(line)["id"] for line in f if line.endswith(b"\n") and b"HandoffNoteAdded" in line})
    except FileNotFoundError:
        return 0


async def _caught_up(kept: Path, dsn: str) -> float:
    """Seconds until the receiver holds every note event stored (CATCH_UP_LIMIT if it never does)."""
    conn = await asyncpg.connect(dsn)
    try:
        stored = await conn.fetchval("SELECT count(*) FROM case_events WHERE topic LIKE '%HandoffNoteAdded'")
    finally:
        await conn.close()
    started = time.perf_counter()
    while _notes_received(kept) < stored:
        if time.perf_counter() - started > CATCH_UP_LIMIT:
            return CATCH_UP_LIMIT
        await asyncio.sleep(0.2)
    return time.perf_counter() - started


async def _note_rate(ctx: BenchContext, *, with_senders: bool, receiver_nice: int = 19) -> tuple[float, float]:
    """(notes/s, seconds the receiver needed after the load to hold every note's event; 0 without senders)."""
    async with AsyncExitStack() as stack:
        db = await stack.enter_async_context(fresh_database(ctx, "bench_cost", migrated=False))
        env = casedesk_env(db.dsn)
        if with_senders:  # serve's defaults: the processor simulator and both senders as its children
            env = {k: v for k, v in env.items() if k not in ("CASEDESK_PROCESSOR_INSTRUCTIONS", "CASEDESK_WEBHOOKS")}
            env["CASEDESK_WEBHOOK_ALLOW_PRIVATE"] = "1"  # the receiver is on loopback
        port = free_port()
        label = "casedesk with senders" if with_senders else "casedesk without senders"
        api = await stack.enter_async_context(Server(label, casedesk_command(port), env, port))
        token = issue_token(TOKEN_SECRET, sub="bench-agent", name="K. Takano", role="agent", departments=["fraud"])
        ids = await open_cases(api.url, token, 200)
        kept = None
        if with_senders:
            kept = await _subscribe_a_receiver(stack, api.url, Path(stack.enter_context(tempfile.TemporaryDirectory())),
                                               nice=receiver_nice)
        result = await load(api.url, NOTE_PATH, ids, NOTE, token, CONNECTIONS, COST_SECONDS)
        if result.errors:
            raise RuntimeError(f"{label}: {result.errors} requests failed")
        lag = await _caught_up(kept, db.dsn) if kept is not None else 0.0
        return result.per_second, lag


def _median(values: list[float]) -> float:
    return sorted(values)[(len(values) - 1) // 2]


async def run(ctx: BenchContext) -> list[Figure]:
    delays = await latency.measure(SUSPENSIONS, dsn=ctx.dsn)
    p50, p99 = delays[len(delays) // 2], delays[max(0, int(len(delays) * 0.99) - 1)]
    events, seconds = await measure_webhook_rate.measure(ctx.dsn, CASES, NOTES)
    rate = events / seconds
    kinds = {"without": {"with_senders": False}, "with": {"with_senders": True},
             "sharing": {"with_senders": True, "receiver_nice": 0}}
    rounds: dict[str, list[tuple[float, float]]] = {kind: [] for kind in kinds}
    for n in range(COST_ROUNDS):
        for kind in (list(kinds) if n % 2 == 0 else list(reversed(kinds))):
            rounds[kind].append(await _note_rate(ctx, **kinds[kind]))  # type: ignore[arg-type]
    without, with_them, sharing = (_median([rate for rate, _ in rounds[kind]]) for kind in kinds)
    lag = _median([lag for _, lag in rounds["with"]])
    return [
        _under(f"processor instruction p50, answer -> processor ({len(delays)} suspensions)", p50, LATENCY_TARGET_MS),
        _under(f"processor instruction p99, answer -> processor ({len(delays)} suspensions)", p99, LATENCY_TARGET_MS),
        Figure(f"webhook delivery to one verifying receiver ({events:,} events)", rate, "events/s",
               f"target {RATE_TARGET:,.0f} events/s", RATE_TARGET, rate / RATE_TARGET, f">= {RATE_TARGET:,.0f}/s",
               rate >= RATE_TARGET),
        Figure.versus(f"POST note c={CONNECTIONS} with the processor and webhook senders running"
                      " (receiver niced, as if on its own machine)", with_them,
                      "req/s", "the same serve without them", without, at_least=COST_TARGET),
        Figure.versus(f"POST note c={CONNECTIONS} with both senders, the receiver sharing the CPU at equal priority",
                      sharing, "req/s", "the same serve without them", without),
        Figure(f"webhook lag: after {COST_SECONDS} s of that load, until the niced receiver holds every note",
               lag, "s", f"the load's {COST_SECONDS} s", COST_SECONDS, lag / COST_SECONDS),
    ]
