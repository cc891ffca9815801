"""casedesk on several processes: nothing acknowledged lost, standby reads keep read-your-writes.

deploy/local-cluster starts a primary PostgreSQL, a hot standby (streaming
replication, made to replay 150 ms late), PgBouncer in transaction mode, three `casedesk serve` and two
`casedesk project` processes. Agents spread notes over the three APIs, each
answer goes in a ledger, and each write is read back from the standby (through
another API) with its `min_position`. Mid-load one API process and the
projection worker holding the lock are killed with SIGKILL; a client whose
request died retries it, with the same Idempotency-Key, on another API.
Afterwards: every acknowledged event is in the store at the position it was
acknowledged with, no retry wrote twice, every case reads from the standby at
its last version, and the read tables (on the primary and on the standby)
equal a rebuild from zero.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
import pytest

from casedesk.projections.catalogue import all_projections
from casedesk.projections.runner import ProjectionRunner
from casedesk.services.store.event_store import EventStore
from casedesk.services.store.migrations import migrate
from casedesk.services.tokens import issue_token
from tests.api.conftest import new_case_body
from tests.projections.helpers import contents_of, drain
from tests.topology.cluster import LocalCluster, why_no_cluster

AGENTS = 12
WRITERS = 4  # agents that only write, so commands are in flight when api-2 dies
CASES_PER_AGENT = 3
LOAD_SECONDS = 16.0
STANDBY_DELAY = "150ms"
RETRYABLE = {502, 503, 504}
LETTERS = str.maketrans("0123456789", "ghijklmnop")  # a marker no card-number redaction touches

@dataclass(frozen=True, slots=True)
class Acknowledged:
    """A command that got a 2xx: its case, the version and position it was given, its key."""

    case_id: str
    version: int
    position: int
    key: str


@dataclass
class Client:
    """Agents' side: live API addresses, the ledger, and what went wrong on the way."""

    session: aiohttp.ClientSession
    apis: list[str]
    headers: dict[str, str]
    dead: set[str] = field(default_factory=set)
    ledger: list[Acknowledged] = field(default_factory=list)
    retries: int = 0
    standby_reads: int = 0
    _turn: itertools.count[int] = field(default_factory=itertools.count)

    def next_api(self) -> str:
        live = [a for a in self.apis if a not in self.dead]
        return live[next(self._turn) % len(live)]

    async def command(self, path: str, body: dict[str, Any], version: int | None) -> dict[str, Any]:
        """POST until acknowledged, on one API after another, always with the same key."""
        key = str(uuid.uuid4())
        headers = {**self.headers, "Idempotency-Key": key}
        if version is not None:
            headers["If-Match"] = f'"{version}"'
        for attempt in range(40):
            api = self.next_api()
            try:
                async with self.session.post(api + path, json=body, headers=headers) as r:
                    answer = await r.json(content_type=None)
                    status = r.status
            except (TimeoutError, aiohttp.ClientError, OSError):
                self.retries += 1
                await asyncio.sleep(0.05 * (attempt + 1))
                continue
            if status in RETRYABLE or (status == 409 and answer.get("type", "").endswith("idempotency-key-in-use")):
                self.retries += 1
                await asyncio.sleep(0.05 * (attempt + 1))
                continue
            assert status in (200, 201), (status, answer)
            self.ledger.append(Acknowledged(answer["case_id"], answer["version"], answer["position"], key))
            return answer
        raise AssertionError(f"POST {path} never acknowledged")

    async def read(self, path: str, min_position: int, *, params: dict[str, str] | None = None,
                   headers: dict[str, str] | None = None) -> dict[str, Any]:
        """GET with min_position (answered from the standby), retrying a dead API or a 503."""
        for attempt in range(40):
            api = self.next_api()
            try:
                async with self.session.get(api + path, params={**(params or {}), "min_position": str(min_position)},
                                            headers=headers or self.headers) as r:
                    answer = await r.json(content_type=None)
                    status = r.status
            except (TimeoutError, aiohttp.ClientError, OSError):
                await asyncio.sleep(0.05 * (attempt + 1))
                continue
            if status in RETRYABLE:
                await asyncio.sleep(0.05 * (attempt + 1))
                continue
            assert status == 200, (status, answer)
            self.standby_reads += 1
            return answer  # type: ignore[no-any-return]
        raise AssertionError(f"GET {path} never answered")


@pytest.fixture(scope="module")
async def cluster() -> AsyncIterator[LocalCluster]:
    reason = why_no_cluster()
    if reason is not None:
        pytest.skip(reason)
    # The standby replays commits 150 ms late, so a read that did not wait for its
    # min_position on the standby itself would miss its own write, every time.
    cluster = LocalCluster.create(standby_delay=STANDBY_DELAY)
    try:
        cluster.start()
        yield cluster
    finally:
        print(cluster.stop())
        cluster.remove()


async def agent(client: Client, n: int, until: float, *, reads: bool = True) -> dict[str, int]:
    """Open this agent's cases, then add notes to them (and read each back from the standby)."""
    versions: dict[str, int] = {}
    for _ in range(CASES_PER_AGENT):
        opened = await client.command("/v1/cases", new_case_body(), None)
        versions[opened["case_id"]] = opened["version"]
    for i in itertools.count():
        if time.monotonic() >= until:
            break
        case_id = list(versions)[i % CASES_PER_AGENT]
        text = f"agent {n} note {i} {uuid.uuid4().hex.translate(LETTERS)}"
        noted = await client.command(f"/v1/cases/{case_id}/notes", {"text": text}, versions[case_id])
        versions[case_id] = noted["version"]
        if not reads:
            continue
        timeline = await client.read(f"/v1/cases/{case_id}/timeline", noted["position"])
        assert timeline["version"] >= noted["version"]
        assert any(text in e["text"] for e in timeline["entries"]), "a read from the standby missed its own write"
    return versions


async def test_nothing_acknowledged_is_lost_across_processes_and_the_standby(cluster: LocalCluster) -> None:
    token = issue_token(cluster.env["CASEDESK_TOKEN_SECRET"], sub="agent-1", name="A. Agent", role="agent",
                        departments=["fraud"])
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        client = Client(session, cluster.api_urls, {"Authorization": f"Bearer {token}"})
        until = time.monotonic() + LOAD_SECONDS
        agents = [asyncio.create_task(agent(client, n, until, reads=n >= WRITERS)) for n in range(AGENTS)]

        await asyncio.sleep(LOAD_SECONDS / 3)
        cluster.kill("api-2")
        await asyncio.sleep(1.0)  # until a load balancer's health check would drop it, clients hit it
        client.dead.add(cluster.api_urls[1])
        holder = await cluster.projection_holder("case_files")
        assert holder is not None, "no worker holds the case_files lock"
        await asyncio.sleep(LOAD_SECONDS / 6)
        cluster.kill(holder)
        other = "worker-2" if holder == "worker-1" else "worker-1"
        async with asyncio.timeout(20):
            while await cluster.projection_holder("case_files") != other:
                await asyncio.sleep(0.2)

        finals: dict[str, int] = {}
        for versions in await asyncio.gather(*agents):
            finals.update(versions)
        head = max(a.position for a in client.ledger)

        # Every case reads from the standby, at its last acknowledged version.
        for case_id, version in finals.items():
            view = await client.read(f"/v1/cases/{case_id}", head)
            assert view["version"] == version
        await the_other_query_routes_answer_from_the_standby(client, cluster, finals, head)

    print(f"\n{len(client.ledger)} acknowledged commands, {client.retries} retried after a failure,"
          f" {client.standby_reads} reads with min_position from the standby")
    assert client.retries > 0, "the kill did not cut any request short: the test proved nothing"
    await check_store_against_ledger(cluster, client.ledger, finals)
    await check_read_tables_equal_a_rebuild(cluster)

    # The killed processes come back with a second `start`; everything is up again.
    cluster.start()
    status = cluster.run("status")
    assert status.returncode == 0, status.stdout + status.stderr


async def the_other_query_routes_answer_from_the_standby(client: Client, cluster: LocalCluster,
                                                        finals: dict[str, int], head: int) -> None:
    found = await client.read("/v1/lookup", head, params={"phone": new_case_body()["customer"]["registered_phone"]})
    assert {c["case_id"] for customer in found["customers"] for c in customer["open_cases"]} == set(finals)
    assert (await client.read("/v1/queues", head))["items"]
    await client.read("/v1/merchants/flagged", head)
    supervisor = issue_token(cluster.env["CASEDESK_TOKEN_SECRET"], sub="sup-1", name="S. Visor", role="supervisor",
                             departments=["fraud"])
    board = await client.read("/v1/dashboard", head, headers={"Authorization": f"Bearer {supervisor}"})
    assert board["positions"]["case_files"] >= head


async def check_store_against_ledger(cluster: LocalCluster, ledger: list[Acknowledged],
                                     finals: dict[str, int]) -> None:
    conn = await asyncpg.connect(cluster.env["PRIMARY_URL"])
    try:
        rows = await conn.fetch("SELECT originator_id::text AS case_id, originator_version, notification_id"
                                " FROM case_events WHERE originator_id = ANY($1::uuid[])", list(finals))
    finally:
        await conn.close()
    stored = {(r["case_id"], r["originator_version"]): r["notification_id"] for r in rows}
    for a in ledger:
        assert stored.get((a.case_id, a.version)) == a.position, f"acknowledged {a} is not in the store"
    # Every stored version was acknowledged exactly once: no retry wrote a second event.
    assert sorted(stored) == sorted((a.case_id, a.version) for a in ledger)
    assert len({a.key for a in ledger}) == len(ledger)
    assert all(max(v for c, v in stored if c == case_id) == final for case_id, final in finals.items())


async def projection_rows(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    conn = await asyncpg.connect(dsn)
    try:
        return {table: [tuple(r.values()) for r in await conn.fetch(
                    f"SELECT * FROM ({contents_of(table)}) t ORDER BY t::text")]
                for p in all_projections() for table in p.tables}
    finally:
        await conn.close()


async def caught_up(dsn: str, head: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        async with asyncio.timeout(30):
            while (await conn.fetchval("SELECT min(notification_id) FROM projection_tracking"
                                       " WHERE application_name <> '__migration__'") or 0) < head:
                await asyncio.sleep(0.1)
    finally:
        await conn.close()


async def check_read_tables_equal_a_rebuild(cluster: LocalCluster) -> None:
    """Copy the event log into a fresh database, project it from zero, compare table by table."""
    primary, standby = cluster.env["PRIMARY_URL"], cluster.env["STANDBY_URL"]
    admin = await asyncpg.connect(primary)
    name = f"rebuilt_{uuid.uuid4().hex[:8]}"
    rebuilt_dsn = primary.rsplit("/", 1)[0] + f"/{name}"
    try:
        head = await admin.fetchval("SELECT max(notification_id) FROM case_events")
        events = await admin.fetch("SELECT notification_id, originator_id, originator_version, topic, state"
                                   " FROM case_events ORDER BY notification_id")
        await admin.execute(f"CREATE DATABASE {name}")
        pool = await asyncpg.create_pool(rebuilt_dsn, min_size=1, max_size=4)
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
                await conn.copy_records_to_table(
                    "case_events", records=[tuple(e.values()) for e in events],
                    columns=["notification_id", "originator_id", "originator_version", "topic", "state"])
            runner = ProjectionRunner(EventStore(pool), pool, all_projections())
            for projection in runner.projections:
                await drain(runner, projection)
        finally:
            await pool.close()
        await caught_up(primary, head)
        await caught_up(standby, head)
        rebuilt = await projection_rows(rebuilt_dsn)
        assert await projection_rows(primary) == rebuilt
        assert await projection_rows(standby) == rebuilt
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()
