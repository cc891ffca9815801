"""Fraud-engine alerts are idempotent: one case per alert_id, however often (or at once) it is sent."""

from __future__ import annotations

import asyncio
import uuid

from casedesk.services.http.app_keys import POOL
from tests.api.conftest import new_case_body


async def _stream_length(client, case_id: str) -> int:
    pool = client.server.app[POOL]
    return int(await pool.fetchval("SELECT count(*) FROM case_events WHERE originator_id = $1", uuid.UUID(case_id)))


async def test_a_second_alert_with_the_same_id_answers_the_first_case(client, auth) -> None:
    alert = f"alert-{uuid.uuid4().hex}"
    first = await client.post("/v1/cases", headers=auth(), json=new_case_body(alert_id=alert))
    assert first.status == 201
    opened = await first.json()
    again = await client.post("/v1/cases", headers=auth(), json=new_case_body(alert_id=alert, summary="retry"))
    assert again.status == 200
    answer = await again.json()
    assert answer["case_id"] == opened["case_id"] and answer["events"] == []
    assert answer["version"] == opened["version"] and answer["position"] == opened["position"]
    assert again.headers["Location"] == f"/v1/cases/{opened['case_id']}"
    assert await _stream_length(client, opened["case_id"]) == 1  # the second open wrote nothing


async def test_concurrent_opens_of_one_alert_make_one_case(client, auth) -> None:
    alert = f"alert-{uuid.uuid4().hex}"
    answers = await asyncio.gather(*(client.post("/v1/cases", headers=auth(), json=new_case_body(alert_id=alert))
                                     for _ in range(8)))
    statuses = sorted(r.status for r in answers)
    assert statuses == [200] * 7 + [201]
    cases = {(await r.json())["case_id"] for r in answers}
    assert len(cases) == 1
    assert await _stream_length(client, cases.pop()) == 1


async def test_different_alerts_open_different_cases(client, auth) -> None:
    one = await client.post("/v1/cases", headers=auth(), json=new_case_body(alert_id=f"a-{uuid.uuid4().hex}"))
    two = await client.post("/v1/cases", headers=auth(), json=new_case_body(alert_id=f"a-{uuid.uuid4().hex}"))
    assert (one.status, two.status) == (201, 201)
    assert (await one.json())["case_id"] != (await two.json())["case_id"]


async def test_an_alert_id_holding_a_card_number_is_refused(client, auth) -> None:
    r = await client.post("/v1/cases", headers=auth(), json=new_case_body(alert_id="4111111111111111"))
    assert r.status == 422
    assert [e["field"] for e in (await r.json())["errors"]] == ["alert_id"]
