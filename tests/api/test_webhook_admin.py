"""Webhook subscriptions over HTTP: admins only, the secret shown once, bad receivers refused (422)."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from casedesk.services.http.app import create_app
from casedesk.services.settings import Settings
from tests.api.conftest import with_schema


@pytest.fixture
async def local_receiver() -> AsyncIterator[str]:
    """Something listening on loopback, so a URL to it is reachable (and private)."""
    async def accept(_: web.Request) -> web.Response:
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", accept)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}/hook"
    await runner.cleanup()


@pytest.fixture
async def private_ok_client(aiohttp_client: Any, settings: Settings, database_dsn: str,
                            shared_schema: str) -> TestClient:
    """The app as a local test set-up runs it: CASEDESK_WEBHOOK_ALLOW_PRIVATE=1."""
    allowed = Settings(**{**{f: getattr(settings, f) for f in settings.__struct_fields__},
                          "webhook_allow_private": True})
    return await aiohttp_client(create_app(allowed, dsn=with_schema(database_dsn, shared_schema)))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when this returns: nothing listens there


async def refusal(response: Any) -> list[str]:
    assert response.status == 422, await response.text()
    assert response.content_type == "application/problem+json"
    return [e["field"] for e in (await response.json())["errors"]]


async def test_only_admins_manage_webhooks(client, auth) -> None:
    for role in ("agent", "supervisor", "auditor"):
        created = await client.post("/v1/webhooks", headers=auth(role),
                                    json={"url": "https://example.com/hook", "event_types": ["*"]})
        assert created.status == 403
        assert (await client.get("/v1/webhooks", headers=auth(role))).status == 403
        some_id = "00000000-0000-0000-0000-000000000001"
        assert (await client.delete(f"/v1/webhooks/{some_id}", headers=auth(role))).status == 403
        assert (await client.post(f"/v1/webhooks/{some_id}/replay", headers=auth(role),
                                  json={"from_position": 1})).status == 403


async def test_a_url_that_is_not_http_is_refused(client, auth) -> None:
    for url in ("ftp://example.com/hook", "file:///etc/passwd", "example.com/hook", "http:///nohost"):
        r = await client.post("/v1/webhooks", headers=auth("admin"), json={"url": url, "event_types": ["*"]})
        assert await refusal(r) == ["url"], url


async def test_a_private_receiver_is_refused_without_the_setting(client, auth, local_receiver) -> None:
    for url in (local_receiver, "http://10.1.2.3/hook", "http://169.254.169.254/latest", "http://[::1]:80/x",
                "http://localhost/hook"):
        r = await client.post("/v1/webhooks", headers=auth("admin"), json={"url": url, "event_types": ["*"]})
        assert await refusal(r) == ["url"], url
        assert "private" in (await r.json())["detail"]


async def test_an_unreachable_receiver_is_refused(private_ok_client, auth) -> None:
    url = f"http://127.0.0.1:{closed_port()}/hook"
    r = await private_ok_client.post("/v1/webhooks", headers=auth("admin"), json={"url": url, "event_types": ["*"]})
    assert await refusal(r) == ["url"]
    assert "not reachable" in (await r.json())["detail"]
    r = await private_ok_client.post("/v1/webhooks", headers=auth("admin"),
                                     json={"url": "http://no-such-host.invalid/hook", "event_types": ["*"]})
    assert await refusal(r) == ["url"]


async def test_an_unknown_event_type_is_refused(private_ok_client, auth, local_receiver) -> None:
    r = await private_ok_client.post("/v1/webhooks", headers=auth("admin"),
                                     json={"url": local_receiver, "event_types": ["CardSuspended", "CardStolen"]})
    assert await refusal(r) == ["event_types[1]"]


async def test_the_secret_is_shown_once_and_never_listed(private_ok_client, auth, local_receiver) -> None:
    admin = auth("admin")
    r = await private_ok_client.post("/v1/webhooks", headers=admin, json={
        "url": local_receiver, "event_types": ["CardSuspended", "CaseOpened"], "description": "CRM"})
    assert r.status == 201
    created = await r.json()
    assert created["secret"].startswith("whsec_") and created["state"] == "active"
    assert r.headers["Location"] == f"/v1/webhooks/{created['webhook_id']}"
    listed = await (await private_ok_client.get("/v1/webhooks", headers=admin)).text()
    assert created["webhook_id"] in listed
    assert created["secret"] not in listed and created["secret"].removeprefix("whsec_") not in listed
    [mine] = [w for w in (await (await private_ok_client.get("/v1/webhooks", headers=admin)).json())["items"]
              if w["webhook_id"] == created["webhook_id"]]
    assert mine["event_types"] == ["CardSuspended", "CaseOpened"] and mine["position"] == created["position"]
    assert "secret" not in mine


async def test_pause_resume_replay_and_delete(private_ok_client, auth, local_receiver) -> None:
    admin = auth("admin")
    created = await (await private_ok_client.post("/v1/webhooks", headers=admin, json={
        "url": local_receiver, "event_types": ["*"]})).json()
    path = f"/v1/webhooks/{created['webhook_id']}"
    paused = await private_ok_client.post(f"{path}/pause", headers=admin)
    assert paused.status == 200 and (await paused.json())["state"] == "paused"
    replayed = await private_ok_client.post(f"{path}/replay", headers=admin, json={"from_position": 5})
    assert replayed.status == 202
    resumed = await (await private_ok_client.post(f"{path}/resume", headers=admin)).json()
    assert resumed["state"] == "active" and resumed["position"] == 4  # events from position 5 on go again
    deliveries = await private_ok_client.get(f"{path}/deliveries?limit=10", headers=admin)
    assert deliveries.status == 200 and (await deliveries.json()) == {"items": [], "next_cursor": None}
    assert (await private_ok_client.delete(path, headers=admin)).status == 204
    assert (await private_ok_client.delete(path, headers=admin)).status == 404
    assert (await private_ok_client.get(f"{path}/deliveries", headers=admin)).status == 404
    assert (await private_ok_client.post(f"{path}/resume", headers=admin)).status == 404
    listed = await (await private_ok_client.get("/v1/webhooks", headers=admin)).json()
    assert created["webhook_id"] not in [w["webhook_id"] for w in listed["items"]]


async def test_replay_needs_a_position(private_ok_client, auth, local_receiver) -> None:
    admin = auth("admin")
    created = await (await private_ok_client.post("/v1/webhooks", headers=admin, json={
        "url": local_receiver, "event_types": ["*"]})).json()
    r = await private_ok_client.post(f"/v1/webhooks/{created['webhook_id']}/replay", headers=admin,
                                     json={"from_position": -1})
    assert await refusal(r) == ["from_position"]
    await asyncio.sleep(0)


async def test_a_create_repeated_with_its_idempotency_key_answers_the_same_subscription(
        private_ok_client, auth, local_receiver) -> None:
    admin = auth("admin", sub="ops-1")
    body = {"url": local_receiver, "event_types": ["*"], "description": "notifications"}
    key = {"Idempotency-Key": f"create-{uuid.uuid4().hex}"}
    first = await private_ok_client.post("/v1/webhooks", headers={**admin, **key}, json=body)
    again = await private_ok_client.post("/v1/webhooks", headers={**admin, **key}, json=body)
    assert (first.status, again.status) == (201, 201)
    assert await again.json() == await first.json()  # the same subscription, the same secret
    listed = await (await private_ok_client.get("/v1/webhooks", headers=admin)).json()
    assert [w["webhook_id"] for w in listed["items"]].count((await first.json())["webhook_id"]) == 1
    other = await private_ok_client.post("/v1/webhooks", headers={**admin, **key}, json={**body, "description": "x"})
    assert await refusal(other) == ["Idempotency-Key"]


async def test_concurrent_creates_with_one_idempotency_key_make_one_subscription(
        private_ok_client, auth, local_receiver) -> None:
    admin = {**auth("admin", sub="ops-2"), "Idempotency-Key": f"create-{uuid.uuid4().hex}"}
    answers = await asyncio.gather(*(private_ok_client.post("/v1/webhooks", headers=admin, json={
        "url": local_receiver, "event_types": ["CaseOpened"]}) for _ in range(5)))
    assert [r.status for r in answers] == [201] * 5
    assert len({(await r.json())["webhook_id"] for r in answers}) == 1
