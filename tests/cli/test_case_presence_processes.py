"""Presence and the case stream across two real `casedesk serve` processes on one database (issue 19).

Nothing passes between the two processes but PostgreSQL: agent A works on the
first, agent B on the second. CASEDESK_PRESENCE_EXPIRY is 2 s here so that an
agent whose client stops beating is seen to leave without waiting 30 s; the
rule is the same at any expiry.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from casedesk.services.tokens import issue_token
from tests.api.conftest import new_case_body, with_schema
from tests.api.test_dashboard import next_event
from tests.cli.test_commands import free_port, serve, stop
from tests.conftest import new_schema

SECRET = "presence-secret-" + "x" * 40
EXPIRY = 2.0


@pytest.fixture
def two_servers(tmp_path: Path, database_dsn: str) -> Iterator[tuple[str, str]]:
    schema = asyncio.run(new_schema(database_dsn))
    base = {k: v for k, v in os.environ.items() if not k.startswith("CASEDESK_")}
    env = {**base, "DATABASE_URL": with_schema(database_dsn, schema), "CASEDESK_TOKEN_SECRET": SECRET,
           "CASEDESK_PII_KEY": "presence-pii", "CASEDESK_PRESENCE_EXPIRY": str(EXPIRY),
           "CASEDESK_PROCESSOR_INSTRUCTIONS": "off", "CASEDESK_WEBHOOKS": "off", "CASEDESK_LOG_LEVEL": "warning"}
    ports = free_port(), free_port()
    first = serve({**env, "CASEDESK_DATA_DIR": str(tmp_path / "one")}, ports[0])
    try:
        second = serve({**env, "CASEDESK_DATA_DIR": str(tmp_path / "two"), "CASEDESK_PROJECTIONS": "off"}, ports[1])
        try:
            yield f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}"
        finally:
            stop(second)
    finally:
        stop(first)


def bearer(sub: str, name: str) -> str:
    return issue_token(SECRET, sub=sub, name=name, role="agent", departments=("fraud",))


async def until(response: aiohttp.ClientResponse, name: str, check, timeout: float) -> dict:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while True:
            event, body = await next_event(response, timeout)
            if event == name and check(body):
                return body


def present(body: dict) -> set[str]:
    return {item["agent_id"] for item in body["items"]}


async def test_two_agents_on_two_serve_processes(two_servers: tuple[str, str]) -> None:
    one, two = two_servers
    a, b = f"a-{uuid.uuid4().hex[:6]}", f"b-{uuid.uuid4().hex[:6]}"
    ta, tb = bearer(a, "A. Aoki"), bearer(b, "B. Baba")
    timeout = aiohttp.ClientTimeout(total=None)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        async def beat(base: str, token: str, activity: str = "viewing") -> None:
            async with http.post(f"{base}/v1/cases/{case_id}/presence", json={"activity": activity},
                                 headers={"Authorization": f"Bearer {token}"}) as r:
                assert r.status == 204, await r.text()

        async with http.post(f"{one}/v1/cases", json=new_case_body(), headers={"Authorization": f"Bearer {ta}"}) as r:
            opened = await r.json()
            assert r.status == 201, opened
        case_id = opened["case_id"]
        await beat(one, ta)
        stream_a = await http.get(f"{one}/v1/cases/{case_id}/stream", params={"access_token": ta})
        stream_b = await http.get(f"{two}/v1/cases/{case_id}/stream", params={"access_token": tb})
        assert present(await until(stream_b, "presence", lambda _: True, 5)) == {a}

        # B arrives on the second process: A's stream on the first shows B within a second.
        started = time.monotonic()
        await beat(two, tb, "editing")
        await until(stream_a, "presence", lambda body: present(body) == {a, b}, 1.0)
        assert time.monotonic() - started < 1.0

        # A adds a note on the first process: B's stream on the second has it within a second.
        started = time.monotonic()
        async with http.post(f"{one}/v1/cases/{case_id}/notes", json={"text": "Police report on its way"},
                             headers={"Authorization": f"Bearer {ta}"}) as r:
            assert r.status == 201
        event = await until(stream_b, "case-event", lambda _: True, 1.0)
        assert time.monotonic() - started < 1.0
        assert event["type"] == "HandoffNoteAdded" and "Police report on its way" in event["entry"]["text"]

        # B's browser closes (no more heartbeats); A keeps beating. B is gone once the expiry has passed.
        stream_b.close()
        gone_by = time.monotonic() + EXPIRY + 1.5
        while time.monotonic() < gone_by:
            await beat(one, ta)
            try:
                await until(stream_a, "presence", lambda body: present(body) == {a}, 0.5)
                break
            except TimeoutError:
                continue
        else:
            raise AssertionError("B was still present after the expiry")
        async with http.get(f"{two}/v1/cases/{case_id}/presence", headers={"Authorization": f"Bearer {tb}"}) as r:
            assert present(await r.json()) == {a}
        stream_a.close()
