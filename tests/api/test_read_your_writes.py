"""min_position: reads wait for the projection, 503 with Retry-After past the bound, 422 past the log."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from msgspec.structs import replace

from casedesk.services.http.app import create_app
from casedesk.services.http.app_keys import RUNNER, TURNS
from casedesk.services.settings import Settings
from tests.api.conftest import new_case_body, with_schema


async def test_reads_wait_for_the_position_a_command_returned(client, auth) -> None:
    h = auth()
    r = await client.post("/v1/cases", json=new_case_body(reason="fraud_alert"), headers=h)
    opened = await r.json()
    r = await client.get("/v1/queues/fraud_alerts/items", params={"min_position": opened["position"], "limit": 500}, headers=h)
    assert r.status == 200
    assert opened["case_id"] in [i["case_id"] for i in (await r.json())["items"]]


async def test_a_position_never_written_is_422_at_once(client, auth) -> None:
    h = auth()
    r = await client.post("/v1/cases", json=new_case_body(), headers=h)
    opened = await r.json()
    for path in (f"/v1/cases/{opened['case_id']}", f"/v1/cases/{opened['case_id']}/timeline",
                 "/v1/queues/fraud_alerts/items", "/v1/queues", "/v1/merchants/flagged"):
        r = await client.get(path, params={"min_position": opened["position"] + 10**9}, headers=h)
        problem = await r.json()
        assert r.status == 422, problem
        assert problem["type"].endswith("/position-not-written")
        assert problem["errors"][0]["field"] == "min_position"
    r = await client.get(f"/v1/cases/{opened['case_id']}", params={"min_position": "soon"}, headers=h)
    assert r.status == 422


@pytest.fixture
async def unprojected(aiohttp_client: Any, settings: Settings, database_dsn: str, shared_schema: str) -> TestClient:
    """The API with no projections running: what it writes stays unprojected until a test folds it."""
    app = create_app(replace(settings, projections="off"), dsn=with_schema(database_dsn, shared_schema))
    return await aiohttp_client(app)


async def _fold_all(client: TestClient) -> None:
    runner = client.app[RUNNER]
    for projection in runner.projections:
        while await runner.catch_up(projection):
            pass


async def test_a_written_position_not_yet_projected_is_503_with_retry_after(unprojected: TestClient, auth) -> None:
    h = auth()
    r = await unprojected.post("/v1/cases", json=new_case_body(reason="fraud_alert"), headers=h)
    opened = await r.json()
    r = await unprojected.get("/v1/queues/fraud_alerts/items", params={"min_position": opened["position"]}, headers=h)
    assert r.status == 503
    assert r.headers["Retry-After"] == "1"
    assert (await r.json())["type"].endswith("/projection-behind")
    await _fold_all(unprojected)


async def test_a_waiting_read_answers_once_the_projection_commits_the_position(unprojected: TestClient,
                                                                                  auth) -> None:
    h = auth()
    r = await unprojected.post("/v1/cases", json=new_case_body(reason="fraud_alert"), headers=h)
    opened = await r.json()
    waiting = asyncio.create_task(unprojected.get(
        "/v1/queues/fraud_alerts/items", params={"min_position": opened["position"], "limit": 500}, headers=h))
    await asyncio.sleep(0.2)  # the read is waiting now (it cannot answer: nothing projects)
    assert not waiting.done()
    assert unprojected.app[TURNS].quick_in_flight == 0  # waiting for seconds: long work does not wait for it
    await _fold_all(unprojected)  # commits the batch and its NOTIFY, which wakes the reader
    r = await waiting
    assert r.status == 200, await r.text()
    assert opened["case_id"] in [i["case_id"] for i in (await r.json())["items"]]
