"""casedesk on several processes (SPEC §8): command throughput, and how far the standby lags.

deploy/local-cluster is started in a temp dir (its own primary, hot standby,
PgBouncer in transaction mode, three `casedesk serve`, two `casedesk project`);
the harness's database (ctx) is not used. Every figure is on that one cluster
database, interleaved over ROUNDS rounds, median round kept:

- `1 API direct`: one extra `casedesk serve` straight on the primary (statement
  cache on, no PgBouncer) — the one-process reference;
- `1 API via PgBouncer`: the cluster's api-1 alone (statement cache off);
- `3 APIs via PgBouncer`: the same total connections split over api-1..3, one
  load generator per API, their requests summed over the longest run.
Each is `POST /v1/cases/{id}/notes` on CASES existing cases (each generator on
its own slice, so no two in-flight requests share a case).

Standby read lag: during the 3-API rounds, LAG_CLIENTS side clients add notes
through the APIs in turn, noting each answer's `position` and arrival, while two
connections read case_files' tracking position every ~1 ms, one on the
primary, one on the standby. A command's standby lag is from its answer to the
first standby poll at or past its position (0 if that came first): how long a
read with that `min_position` on the standby would wait. The same on the
primary is the reference: what the standby adds is the ratio. The same is
measured first for QUIET_SECONDS with the side clients alone (no load).

Two cores shared by five engineers: everything here (PostgreSQL ×2, PgBouncer,
four API processes, two workers, the load) competes for them, so the absolute
numbers are noisy and three API processes cannot show the scaling they would
on a bigger machine; read the ratios, and run it twice. `events per append
transaction` (rows of case_events sharing one xmin, over each round) shows the
group commit: appends from all processes serialize on the table lock that keeps
notification ids in commit order, and each process batches only its own
requests, so more processes on one database mean smaller batches.
"""

from __future__ import annotations

import asyncio
import bisect
import os
import statistics
import sys
import time
from collections.abc import Awaitable
from contextlib import AsyncExitStack

import aiohttp
import asyncpg
import msgspec

from casedesk.services.tokens import issue_token
from tests.bench import BenchContext, Figure
from tests.bench.bench_http import NOTE, NOTE_PATH, median_round, open_cases
from tests.bench.support import LoadResult, Server, absolute, casedesk_command, free_port, load, quantile
from tests.topology.cluster import LocalCluster, why_no_cluster

DEFAULT_SECONDS = 6.0
ROUNDS = 3
CONNECTIONS = 30  # 10 per API in the 3-API runs
CASES = 330
LAG_CASES = 12
LAG_CLIENTS = 4
LAG_INTERVAL = 0.01
POLL_INTERVAL = 0.001
TRACKING = "SELECT notification_id FROM projection_tracking WHERE application_name = 'case_files'"
MAX_ERROR_SHARE = 0.01
QUIET_SECONDS = 3.0

DIRECT, ONE, THREE = "1 API direct", "1 API via PgBouncer", "3 APIs via PgBouncer"


class ReplicaLag:
    """Side commands' (arrival, position), and the tracking position seen on primary and standby."""

    def __init__(self) -> None:
        self.answers: list[tuple[float, int]] = []
        self.lags_ms: dict[str, list[float]] = {"primary": [], "standby": []}
        self.unseen = 0

    async def during(self, running: asyncio.Future[object], urls: list[str], token: str, ids: list[str],
                     dsns: dict[str, str]) -> None:
        conns = {name: await asyncpg.connect(dsn) for name, dsn in dsns.items()}
        seen: dict[str, tuple[list[float], list[int]]] = {name: ([], []) for name in dsns}
        polling = True

        async def poll(name: str) -> None:
            at, positions = seen[name]
            while polling:
                started = time.perf_counter()
                positions.append(await conns[name].fetchval(TRACKING) or 0)
                at.append(time.perf_counter())
                await asyncio.sleep(max(0.0, POLL_INTERVAL - (time.perf_counter() - started)))

        async def side(session: aiohttp.ClientSession, n: int) -> None:
            mine, turn = ids[n::LAG_CLIENTS], 0
            while not running.done():
                url = urls[turn % len(urls)] + NOTE_PATH.replace("{id}", mine[turn % len(mine)])
                turn += 1
                async with session.post(url, data=NOTE) as r:
                    raw = await r.read()
                    arrived = time.perf_counter()
                if r.status != 201:
                    raise RuntimeError(f"a side command answered {r.status}: {raw[:300]!r}")
                self.answers.append((arrived, int(msgspec.json.decode(raw)["position"])))
                await asyncio.sleep(LAG_INTERVAL)

        pollers = [asyncio.create_task(poll(name)) for name in dsns]
        first = len(self.answers)
        try:
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            async with aiohttp.ClientSession(headers=headers) as session:
                await asyncio.gather(*[side(session, n) for n in range(LAG_CLIENTS)])
            last = max((p for _, p in self.answers), default=0)
            deadline = time.perf_counter() + 10
            while any(not p or p[-1] < last for _, p in seen.values()) and time.perf_counter() < deadline:
                await asyncio.sleep(0.005)
        finally:
            polling = False
            await asyncio.gather(*pollers, return_exceptions=True)
            for conn in conns.values():
                await conn.close()
        for arrived, position in self.answers[first:]:
            for name, (at, positions) in seen.items():
                i = bisect.bisect_left(positions, position)  # positions only grow
                if i == len(positions):
                    self.unseen += 1
                    continue
                self.lags_ms[name].append(max(0.0, at[i] - arrived) * 1000)


def spread(results: list[LoadResult]) -> LoadResult:
    """Simultaneous loads on several APIs as one: requests summed over the longest of them."""
    seconds = max(r.seconds for r in results)
    return LoadResult(results[0].generator, sum(r.requests for r in results), seconds, sum(r.errors for r in results),
                      max(r.p50_ms for r in results), max(r.p99_ms for r in results))


def checked(name: str, result: LoadResult) -> LoadResult:
    if result.errors > MAX_ERROR_SHARE * max(result.requests, 1):
        raise RuntimeError(f"{name}: {result.errors} of {result.requests} requests failed")
    return result


async def head(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT coalesce(max(notification_id), 0) FROM case_events"))
    finally:
        await conn.close()


async def events_per_append(dsn: str, after: int, upto: int) -> float:
    """Events per append transaction in (after, upto]: rows written by one transaction share its xmin."""
    conn = await asyncpg.connect(dsn)
    try:
        return float(await conn.fetchval(
            "SELECT count(*)::float8 / greatest(count(DISTINCT xmin::text), 1) FROM case_events"
            " WHERE notification_id > $1 AND notification_id <= $2", after, upto))
    finally:
        await conn.close()


async def caught_up(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        head = await conn.fetchval("SELECT coalesce(max(notification_id), 0) FROM case_events")
        async with asyncio.timeout(60):
            while (await conn.fetchval(TRACKING) or 0) < head:
                await asyncio.sleep(0.01)
    finally:
        await conn.close()


async def run(ctx: BenchContext) -> list[Figure]:
    reason = why_no_cluster()
    if reason is not None:
        print(f"bench cluster skipped: {reason}", file=sys.stderr)
        return []
    seconds = ctx.duration(DEFAULT_SECONDS)
    each = max(1, round(seconds / ROUNDS))
    cluster = LocalCluster.create()
    results: dict[str, list[LoadResult]] = {DIRECT: [], ONE: [], THREE: []}
    batch: dict[str, list[float]] = {DIRECT: [], ONE: [], THREE: []}
    lag, quiet = ReplicaLag(), ReplicaLag()
    try:
        await asyncio.to_thread(cluster.start)
        env = cluster.env
        token = issue_token(env["CASEDESK_TOKEN_SECRET"], sub="bench-agent", name="B. Enchmark", role="agent",
                            departments=["fraud"], ttl=4 * 3600)
        apis = cluster.api_urls
        async with AsyncExitStack() as stack:
            port = free_port()
            direct = await stack.enter_async_context(Server(DIRECT, casedesk_command(port), {
                **os.environ, "DATABASE_URL": env["PRIMARY_URL"], "CASEDESK_PROJECTIONS": "false",
                "CASEDESK_TOKEN_SECRET": env["CASEDESK_TOKEN_SECRET"], "CASEDESK_PII_KEY": env["CASEDESK_PII_KEY"],
                "CASEDESK_LOG_LEVEL": "warning"}, port))
            ids = await open_cases(apis[0], token, CASES + LAG_CASES)
            ids, lag_ids = ids[:CASES], ids[CASES:]
            thirds = [ids[n::3] for n in range(3)]

            async def three() -> LoadResult:
                runs = [load(api, NOTE_PATH, part, NOTE, token, CONNECTIONS // 3, each)
                        for api, part in zip(apis, thirds, strict=True)]
                return spread(list(await asyncio.gather(*runs)))

            # The side clients alone first: the lag a quiet cluster adds.
            await quiet.during(asyncio.ensure_future(asyncio.sleep(QUIET_SECONDS)), apis, token, lag_ids,
                               {"primary": env["PRIMARY_URL"], "standby": env["STANDBY_URL"]})
            await load(direct.url, NOTE_PATH, ids, NOTE, token, CONNECTIONS, 1)  # warm-up
            await three()
            primary = env["PRIMARY_URL"]

            async def measured(kind: str, round_: Awaitable[LoadResult]) -> None:
                before = await head(primary)
                results[kind].append(checked(kind, await round_))
                batch[kind].append(await events_per_append(primary, before, await head(primary)))

            for _ in range(ROUNDS):
                await measured(DIRECT, load(direct.url, NOTE_PATH, ids, NOTE, token, CONNECTIONS, each))
                await caught_up(primary)
                await measured(ONE, load(apis[0], NOTE_PATH, ids, NOTE, token, CONNECTIONS, each))
                await caught_up(primary)
                task = asyncio.ensure_future(three())
                probe = lag.during(task, apis, token, lag_ids, {"primary": primary, "standby": env["STANDBY_URL"]})
                await asyncio.gather(probe, measured(THREE, task))
                await caught_up(env["STANDBY_URL"])
    finally:
        await asyncio.to_thread(cluster.stop)
        cluster.remove()
    if lag.unseen or quiet.unseen:
        raise RuntimeError(f"{lag.unseen} side commands never reached a projection in 10 s")
    direct_r, one, spread_r = (median_round(results[k]) for k in (DIRECT, ONE, THREE))
    c = CONNECTIONS
    primary, standby = lag.lags_ms["primary"], lag.lags_ms["standby"]
    return [
        Figure.versus(f"{ONE} POST note c={c}", one.per_second, "req/s", f"{DIRECT} c={c}", direct_r.per_second),
        Figure.versus(f"{THREE} POST note c={c}", spread_r.per_second, "req/s", f"{DIRECT} c={c}",
                      direct_r.per_second),
        Figure.versus(f"{THREE} POST note c={c}", spread_r.per_second, "req/s", f"{ONE} c={c}", one.per_second),
        Figure.versus(f"{THREE} note p99 latency", spread_r.p99_ms, "ms", f"{DIRECT} p99 latency", direct_r.p99_ms),
        Figure.versus(f"{THREE} events per append transaction", statistics.median(batch[THREE]), "events",
                      f"{DIRECT} events per append transaction", statistics.median(batch[DIRECT])),
        absolute("standby read lag p50 (ack -> standby position)", quantile(standby, 0.5), "ms",
                 "primary projection lag p50", quantile(primary, 0.5)),
        absolute("standby read lag p99 (ack -> standby position)", quantile(standby, 0.99), "ms",
                 "primary projection lag p99", quantile(primary, 0.99)),
        absolute("standby read lag p50, side clients only", quantile(quiet.lags_ms["standby"], 0.5), "ms",
                 "primary projection lag p50, side clients only", quantile(quiet.lags_ms["primary"], 0.5)),
        absolute("standby read lag p99, side clients only", quantile(quiet.lags_ms["standby"], 0.99), "ms",
                 "primary projection lag p99, side clients only", quantile(quiet.lags_ms["primary"], 0.99)),
    ]
