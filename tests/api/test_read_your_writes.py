"""min_position: reads wait for the projection, then 503 with Retry-After past the bound."""

from __future__ import annotations

from tests.api.conftest import new_case_body


async def test_reads_wait_for_the_position_a_command_returned(client, auth) -> None:
    h = auth()
    r = await client.post("/v1/cases", json=new_case_body(reason="fraud_alert"), headers=h)
    opened = await r.json()
    r = await client.get("/v1/queues/fraud_alerts/items", params={"min_position": opened["position"], "limit": 500}, headers=h)
    assert r.status == 200
    assert opened["case_id"] in [i["case_id"] for i in (await r.json())["items"]]


async def test_a_position_never_reached_is_503_with_retry_after(client, auth) -> None:
    h = auth()
    r = await client.post("/v1/cases", json=new_case_body(), headers=h)
    opened = await r.json()
    r = await client.get(f"/v1/cases/{opened['case_id']}", params={"min_position": opened["position"] + 10**9}, headers=h)
    assert r.status == 503
    assert r.headers["Retry-After"] == "1"
    assert (await r.json())["type"].endswith("/projection-behind")
    r = await client.get(f"/v1/cases/{opened['case_id']}", params={"min_position": "soon"}, headers=h)
    assert r.status == 422
