"""The supervisor dashboard over HTTP: who may see it, what it shows, and its live stream.

queue_items, queue_activity and case_files are read models; these tests stand
in for their projections by writing rows with random ids (and queue names)
and deleting them afterwards.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp import ClientResponse

from casedesk.services.http import dashboard

KNOWN = ["fraud_alerts", "callbacks_due", "credit_management", "disputes", "reissue", "breach_outreach",
         "processor_failures", "deadlines", "approvals"]
QUEUE_FIELDS = {"queue", "depth", "oldest_age_seconds", "overdue", "claims_last_hour", "resolutions_last_hour"}


def a_queue() -> str:
    return f"test_{uuid.uuid4().hex[:10]}"


@asynccontextmanager
async def waiting(pool: asyncpg.Pool, queue: str, *, age: timedelta, due_in: timedelta | None = None,
                  notify: bool = False) -> AsyncIterator[uuid.UUID]:
    """A case waiting in `queue` since `age` ago (what the work-queue projection would write)."""
    case_id, now = uuid.uuid4(), datetime.now(UTC)
    await pool.execute(
        "INSERT INTO queue_items (queue, case_id, priority, reason, due_at, enqueued_at) VALUES ($1, $2, 3,"
        " 'fraud_alert', $3, $4)", queue, case_id, now + due_in if due_in is not None else None, now - age)
    if notify:
        await pool.execute(f"NOTIFY {dashboard.CHANNEL}")
    try:
        yield case_id
    finally:
        await pool.execute("DELETE FROM queue_items WHERE case_id = $1", case_id)


def queue_of(body: dict[str, Any], name: str) -> dict[str, Any]:
    return next(q for q in body["queues"] if q["queue"] == name)


async def test_the_dashboard_needs_a_token(client) -> None:
    r = await client.get("/v1/dashboard")
    assert r.status == 401
    assert (await r.json())["type"].endswith("unauthorized")


async def test_agents_may_not_see_the_dashboard(client, auth) -> None:
    r = await client.get("/v1/dashboard", headers=auth("agent"))
    assert r.status == 403


@pytest.mark.parametrize("role", ["supervisor", "auditor", "admin"])
async def test_supervisors_auditors_and_admins_see_every_known_queue(client, auth, role) -> None:
    r = await client.get("/v1/dashboard", headers=auth(role))
    body = await r.json()
    assert r.status == 200, body
    assert set(body) >= {"generated_at", "queues", "agents", "claims_per_hour", "positions"}
    datetime.fromisoformat(body["generated_at"])
    assert [q["queue"] for q in body["queues"]][:len(KNOWN)] == KNOWN
    assert all(set(q) >= QUEUE_FIELDS for q in body["queues"])
    hours = [datetime.fromisoformat(h["hour"]) for h in body["claims_per_hour"]]
    assert len(hours) == 8 and hours == sorted(hours) and hours[-1] - hours[0] == timedelta(hours=7)
    assert all(isinstance(v, int) for v in body["positions"].values())


async def test_a_waiting_case_counts_in_depth_oldest_wait_and_overdue(client, auth, pool) -> None:
    queue = a_queue()
    async with waiting(pool, queue, age=timedelta(minutes=10), due_in=timedelta(minutes=-1)), \
            waiting(pool, queue, age=timedelta(minutes=2), due_in=timedelta(hours=1)):
        body = await (await client.get("/v1/dashboard", headers=auth("supervisor"))).json()
    mine = queue_of(body, queue)
    assert (mine["depth"], mine["overdue"]) == (2, 1)
    assert 600 <= mine["oldest_age_seconds"] < 660
    assert queue_of(body, "fraud_alerts")["depth"] >= 0  # known queues stay listed beside new ones


async def test_claims_and_resolutions_count_this_hour_and_per_hour(client, auth, pool) -> None:
    queue, hour = a_queue(), datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    before = (await (await client.get("/v1/dashboard", headers=auth("supervisor"))).json())["claims_per_hour"]
    await pool.execute("INSERT INTO queue_activity (queue, hour, claims, resolutions) VALUES ($1, $2, 3, 2),"
                       " ($1, $3, 5, 0)", queue, hour, hour - timedelta(hours=2))
    try:
        body = await (await client.get("/v1/dashboard", headers=auth("supervisor"))).json()
    finally:
        await pool.execute("DELETE FROM queue_activity WHERE queue = $1", queue)
    mine = queue_of(body, queue)
    assert (mine["depth"], mine["claims_last_hour"], mine["resolutions_last_hour"]) == (0, 3, 2)
    added = [(a["claims"] - b["claims"], a["resolutions"] - b["resolutions"])
             for a, b in zip(body["claims_per_hour"], before, strict=True)]
    assert added[-1] == (3, 2) and added[-3] == (5, 0)


async def test_agents_holding_open_cases_are_listed_with_their_count(client, auth, pool) -> None:
    agent, cases = f"agent-{uuid.uuid4().hex[:8]}", [uuid.uuid4() for _ in range(3)]
    for case_id, status in zip(cases, ["open", "open", "resolved"], strict=True):
        await pool.execute("INSERT INTO case_files (case_id, version, status, departments, assignee, assignee_name,"
                           " file, view, timeline_head) VALUES ($1, 1, $2, '{fraud}', $3, 'M. Aoki', '', '', '')",
                           case_id, status, agent)
    try:
        body = await (await client.get("/v1/dashboard", headers=auth("auditor"))).json()
    finally:
        await pool.execute("DELETE FROM case_files WHERE case_id = ANY($1)", cases)
    assert {"agent_id": agent, "name": "M. Aoki", "cases": 2} in body["agents"]


# ---- the stream ----

async def next_event(response: ClientResponse, timeout: float) -> tuple[str, dict[str, Any]]:
    """The next SSE event (name and JSON data), skipping keep-alive comments."""
    name, data = "message", []
    async with asyncio.timeout(timeout):
        while True:
            line = (await response.content.readline()).decode().rstrip("\r\n")
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
            elif line == "" and data:
                return name, json.loads("\n".join(data))


async def event_where(response: ClientResponse, check: Callable[[dict[str, Any]], bool], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while True:
            name, body = await next_event(response, timeout)
            if name == "dashboard" and check(body):
                return


def token_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


async def test_the_stream_sends_the_dashboard_at_once_and_again_when_read_models_move(
        client, auth, pool, monkeypatch) -> None:
    monkeypatch.setattr(dashboard, "REFRESH_SECONDS", 60.0)  # only the NOTIFY may bring the change
    queue = a_queue()
    r = await client.get("/v1/dashboard/stream", params={"access_token": token_of(auth("supervisor"))})
    assert (r.status, r.headers["Content-Type"]) == (200, "text/event-stream")
    name, first = await next_event(r, timeout=5)
    assert name == "dashboard" and queue not in [q["queue"] for q in first["queues"]]
    async with waiting(pool, queue, age=timedelta(seconds=30), notify=True):
        await event_where(r, lambda body: any(q["queue"] == queue and q["depth"] == 1 for q in body["queues"]), 5)
    r.close()
    async with asyncio.timeout(3):  # the server lets go of a stream whose client has gone
        while client.app[dashboard.BROADCASTER].listeners:
            await asyncio.sleep(0.05)


async def test_the_stream_refuses_a_missing_token_and_an_agent(client, auth) -> None:
    assert (await client.get("/v1/dashboard/stream")).status == 401
    r = await client.get("/v1/dashboard/stream", params={"access_token": token_of(auth("agent"))})
    assert r.status == 403


async def test_the_stream_survives_the_loss_of_its_listening_connection(client, auth, pool, monkeypatch) -> None:
    monkeypatch.setattr(dashboard, "REFRESH_SECONDS", 60.0)
    r = await client.get("/v1/dashboard/stream", params={"access_token": token_of(auth("supervisor"))})
    await next_event(r, timeout=5)
    listening = "SELECT array_agg(pid) FROM pg_stat_activity WHERE query = $1 AND pid <> pg_backend_pid()"
    killed = await pool.fetchval(listening, f'LISTEN "{dashboard.CHANNEL}"')
    assert killed and await pool.fetchval("SELECT bool_and(pg_terminate_backend(pid)) FROM unnest($1::int[]) pid", killed)
    async with asyncio.timeout(5):  # the feed listens again after a short pause
        while not set(await pool.fetchval(listening, f'LISTEN "{dashboard.CHANNEL}"') or []) - set(killed):
            await asyncio.sleep(0.1)
    await asyncio.sleep(0.3)  # let the snapshot taken on listening again go by first
    queue = a_queue()
    async with waiting(pool, queue, age=timedelta(seconds=5), notify=True):
        await event_where(r, lambda body: any(q["queue"] == queue for q in body["queues"]), 5)
    r.close()


async def test_the_page_is_served_without_a_token(client) -> None:
    r = await client.get("/dashboard")
    assert (r.status, r.content_type) == (200, "text/html")
    page = await r.text()
    assert '"data-field": "depth"' in page
    assert "script-src 'sha256-" in r.headers["Content-Security-Policy"]
