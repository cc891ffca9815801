"""Webhooks reach another system's receiver: every case event, per case in order, exactly once
after deduplication by `webhook-id`, across a kill -9 of the sender and a receiver down a while.

Real processes: the receiver (tests/effects/webhook_receiver.py, verifying every signature
with `standardwebhooks`) and `casedesk webhooks` are processes of their own; the API is the
real app over real HTTP, on a PostgreSQL schema of the test's own.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from casedesk.services.http.app import create_app
from casedesk.services.settings import Settings
from tests.api.conftest import SECRET, new_case_body, with_schema
from tests.conftest import new_schema
from tests.faults.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
CASES = 12
NOTES_PER_ROUND = 3
PII_KEY = "webhook-test-pii-key"


class Processes:
    """The receiver and the sender, as processes the test starts and kills."""

    def __init__(self, folder: Path, dsn: str) -> None:
        self.folder, self.dsn = folder, dsn
        self.port = free_port()
        self.secret_file, self.out, self.fail_flag = folder / "secret", folder / "received.jsonl", folder / "down"
        self.started: list[subprocess.Popen[bytes]] = []
        self.sender: subprocess.Popen[bytes] | None = None

    def _spawn(self, command: list[str], log: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        with open(self.folder / log, "ab") as out:
            process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        self.started.append(process)
        return process

    async def start_receiver(self) -> str:
        self._spawn([sys.executable, "-m", "tests.effects.webhook_receiver", "--port", str(self.port),
                     "--secret-file", str(self.secret_file), "--out", str(self.out),
                     "--fail-flag", str(self.fail_flag)], "receiver.log", dict(os.environ))
        url = f"http://127.0.0.1:{self.port}"
        async with aiohttp.ClientSession() as session:
            await until(lambda: _answers(session, url + "/alive"), "the receiver to listen")
        return url

    def start_sender(self, **settings: str) -> None:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("CASEDESK_")},
               "DATABASE_URL": self.dsn, "CASEDESK_PII_KEY": PII_KEY, "CASEDESK_TOKEN_SECRET": SECRET,
               "CASEDESK_DATA_DIR": str(self.folder / "data"), "CASEDESK_LOG_LEVEL": "warning",
               "CASEDESK_WEBHOOK_ALLOW_PRIVATE": "1", "CASEDESK_WEBHOOK_RETRY_FIRST_WAIT": "0.2",
               "CASEDESK_WEBHOOK_RETRY_MAX_WAIT": "1",
               # No resting while the suite keeps the CPUs busy (tests/effects/test_webhook_peak_yield.py).
               "CASEDESK_WEBHOOK_PEAK_DELAY": "0", **settings}
        self.sender = self._spawn([sys.executable, "-m", "casedesk.services.cli", "webhooks"], "sender.log", env)

    def kill_sender(self) -> None:
        assert self.sender is not None
        self.sender.send_signal(signal.SIGKILL)
        self.sender.wait(30)

    def received(self) -> list[dict[str, Any]]:
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines() if line.strip()]

    def close(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
            process.wait(30)


async def _answers(session: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with session.get(url) as r:
            return r.status == 200
    except aiohttp.ClientError:
        return False


async def until(condition: Callable[[], Awaitable[bool]], what: str, seconds: float = 90.0,
                every: float = 0.1) -> None:
    """Wait for a condition (a generous bound, so a slow machine is not a failure; not a timing check)."""
    deadline = time.monotonic() + seconds
    while not await condition():
        assert time.monotonic() < deadline, f"waited {seconds} s for {what}"
        await asyncio.sleep(every)


@pytest.fixture
async def schema_dsn(database_dsn: str) -> AsyncIterator[str]:
    schema = await new_schema(database_dsn)
    yield with_schema(database_dsn, schema)
    conn = await asyncpg.connect(database_dsn)
    try:
        for attempt in range(5):  # a killed sender's backend may still be finishing a statement
            try:
                await conn.execute(f"DROP SCHEMA {schema} CASCADE")
                break
            except asyncpg.DeadlockDetectedError:
                if attempt == 4:
                    raise
                await asyncio.sleep(0.5)
    finally:
        await conn.close()


@pytest.fixture
async def processes(tmp_path: Path, schema_dsn: str) -> AsyncIterator[Processes]:
    running = Processes(tmp_path, schema_dsn)
    yield running
    running.close()
    sender_log = (tmp_path / "sender.log").read_text() if (tmp_path / "sender.log").exists() else ""
    assert "Traceback" not in sender_log, sender_log[-3000:]


@pytest.fixture
async def api(aiohttp_client: Any, tmp_path: Path, schema_dsn: str) -> TestClient:
    settings = Settings(token_secret=SECRET, pii_key=PII_KEY, data_dir=tmp_path, pool_min=1, pool_max=8,
                        webhook_allow_private=True)
    return await aiohttp_client(create_app(settings, dsn=schema_dsn))


async def _write_round(api: TestClient, agent: dict[str, str], cases: list[str]) -> None:
    async def notes(case_id: str) -> None:
        for n in range(NOTES_PER_ROUND):
            r = await api.post(f"/v1/cases/{case_id}/notes", headers=agent, json={"text": f"note {n}"})
            assert r.status == 201, await r.text()

    await asyncio.gather(*(notes(c) for c in cases))


async def _stored(schema_dsn: str, cases: list[str]) -> dict[str, list[int]]:
    conn = await asyncpg.connect(schema_dsn)
    try:
        rows = await conn.fetch("SELECT originator_id, originator_version FROM case_events"
                                " WHERE originator_id = ANY($1::uuid[]) ORDER BY originator_version",
                                [uuid.UUID(c) for c in cases])
    finally:
        await conn.close()
    stored: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        stored[str(row[0])].append(row[1])
    return stored


async def test_every_case_event_arrives_once_in_order_across_a_crash_and_an_outage(
    api: TestClient, auth: Any, processes: Processes, schema_dsn: str
) -> None:
    admin, agent = auth("admin"), auth("agent")
    receiver = await processes.start_receiver()
    created = await api.post("/v1/webhooks", headers=admin, json={"url": receiver + "/hook", "event_types": ["*"]})
    assert created.status == 201, await created.text()
    webhook = await created.json()
    processes.secret_file.write_text(webhook["secret"])
    gone = await (await api.post("/v1/webhooks", headers=admin, json={
        "url": receiver + "/gone", "event_types": ["CaseOpened"]})).json()
    processes.start_sender()

    opened = [await api.post("/v1/cases", headers=agent, json=new_case_body()) for _ in range(CASES)]
    cases = [(await r.json())["case_id"] for r in opened]
    await _write_round(api, agent, cases)
    # Killed while delivering: some events are in, the rest of the log still to come.
    await until(lambda: _true(len(processes.received()) > 0), "a first delivery", every=0.005)
    processes.kill_sender()
    await _write_round(api, agent, cases)
    processes.start_sender()

    processes.fail_flag.touch()  # the receiver answers 500 for a while
    await _write_round(api, agent, cases)
    failed = f"/v1/webhooks/{webhook['webhook_id']}/deliveries?limit=500"
    await until(lambda: _has_failed_attempt(api, failed, admin), "an attempt answered 500")
    processes.fail_flag.unlink()
    await _write_round(api, agent, cases)

    last = await _last_position(schema_dsn)
    await until(lambda: _position_of(api, admin, webhook["webhook_id"], last), "the subscription to reach the end")

    stored = await _stored(schema_dsn, cases)
    received = processes.received()
    assert not processes.out.with_suffix(".refused").exists(), "a signature did not verify"
    firsts: dict[str, dict[str, Any]] = {}
    for item in received:
        firsts.setdefault(item["id"], json.loads(item["body"]))
    per_case: dict[str, list[int]] = defaultdict(list)
    for body in firsts.values():  # in the order of first arrival
        assert body["type"] == body["data"]["event"]["type"]
        per_case[body["data"]["case_id"]].append(body["data"]["version"])
    assert dict(per_case) == dict(stored)  # every event, exactly once after dedup, each case in version order
    assert len(firsts) == sum(len(v) for v in stored.values())
    everything = "\n".join(item["body"] for item in received)
    assert "Taro Yamada" not in everything and "1234 5678" not in everything and "12345678" not in everything

    assert (await _state_of(api, admin, webhook["webhook_id"]))["state"] == "active"

    async def disabled() -> bool:  # the receiver answered 410 Gone to the other subscription
        return (await _state_of(api, admin, gone["webhook_id"]))["state"] == "disabled"

    await until(disabled, "the subscription answered 410 to be disabled")
    assert "410" in (await _state_of(api, admin, gone["webhook_id"]))["last_error"]


async def _true(value: bool) -> bool:
    return value


async def _has_failed_attempt(api: TestClient, path: str, admin: dict[str, str]) -> bool:
    page = await (await api.get(path, headers=admin)).json()
    return any(a["status"] == 500 and a["next_attempt_at"] is not None for a in page["items"])


async def _position_of(api: TestClient, admin: dict[str, str], webhook_id: str, position: int) -> bool:
    listed = await (await api.get("/v1/webhooks", headers=admin)).json()
    return any(w["webhook_id"] == webhook_id and w["position"] >= position for w in listed["items"])


async def _last_position(schema_dsn: str) -> int:
    conn = await asyncpg.connect(schema_dsn)
    try:
        return int(await conn.fetchval("SELECT max(notification_id) FROM case_events"))
    finally:
        await conn.close()


async def _state_of(api: TestClient, admin: dict[str, str], webhook_id: str) -> dict[str, Any]:
    listed = await (await api.get("/v1/webhooks", headers=admin)).json()
    [found] = [w for w in listed["items"] if w["webhook_id"] == webhook_id]
    return dict(found)


async def test_past_the_retry_window_it_is_failing_keeps_its_position_and_resume_sends_everything(
    api: TestClient, auth: Any, processes: Processes, schema_dsn: str
) -> None:
    admin, agent = auth("admin"), auth("agent")
    receiver = await processes.start_receiver()
    webhook = await (await api.post("/v1/webhooks", headers=admin, json={
        "url": receiver + "/hook", "event_types": ["*"]})).json()
    processes.secret_file.write_text(webhook["secret"])
    processes.fail_flag.touch()
    # A retry window of about a second; once failing, the next try would be ten minutes away.
    processes.start_sender(CASEDESK_WEBHOOK_RETRY_HOURS="0.0003", CASEDESK_WEBHOOK_RETRY_MAX_WAIT="600")
    cases = [(await (await api.post("/v1/cases", headers=agent, json=new_case_body())).json())["case_id"]
             for _ in range(3)]

    async def failing() -> bool:
        return (await _state_of(api, admin, webhook["webhook_id"]))["state"] == "failing"

    await until(failing, "the subscription to be marked failing")
    state = await _state_of(api, admin, webhook["webhook_id"])
    assert state["position"] == webhook["position"]  # nothing skipped
    assert "HTTP 500" in state["last_error"]
    assert processes.received() == []

    processes.fail_flag.unlink()
    assert (await api.post(f"/v1/webhooks/{webhook['webhook_id']}/resume", headers=admin)).status == 200
    last = await _last_position(schema_dsn)
    await until(lambda: _position_of(api, admin, webhook["webhook_id"], last), "delivery after resume")
    got = sorted((json.loads(i["body"])["data"]["case_id"], json.loads(i["body"])["data"]["version"])
                 for i in processes.received())
    assert sorted(set(got)) == sorted((c, 1) for c in cases)
    assert (await _state_of(api, admin, webhook["webhook_id"]))["state"] == "active"


async def test_a_redirect_is_not_followed(api: TestClient, auth: Any, processes: Processes) -> None:
    admin, agent = auth("admin"), auth("agent")
    receiver = await processes.start_receiver()
    webhook = await (await api.post("/v1/webhooks", headers=admin, json={
        "url": receiver + "/moved", "event_types": ["*"]})).json()
    processes.secret_file.write_text(webhook["secret"])
    processes.start_sender()
    assert (await api.post("/v1/cases", headers=agent, json=new_case_body())).status == 201
    deliveries = f"/v1/webhooks/{webhook['webhook_id']}/deliveries"

    async def redirected() -> bool:
        page = await (await api.get(deliveries, headers=admin)).json()
        return any(a["status"] == 302 for a in page["items"])

    await until(redirected, "an attempt answered with a redirect")
    assert processes.received() == []  # /hook, where the redirect points, never got it
    state = await _state_of(api, admin, webhook["webhook_id"])
    assert state["position"] == webhook["position"] and "HTTP 302" in state["last_error"]
