"""/metrics parses as Prometheus text and its counters move with traffic."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import new_case_body


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_metrics_count_requests_and_commands(client, auth) -> None:
    before = samples(await (await client.get("/metrics")).text())
    r = await client.post("/v1/cases", json=new_case_body(), headers=auth())
    assert r.status == 201
    await client.post("/v1/cases", json={"bad": 1}, headers=auth())
    after = samples(await (await client.get("/metrics")).text())
    key = ("casedesk_http_requests_total", (("method", "POST"), ("route", "/v1/cases"), ("status", "201")))
    assert after[key] == before.get(key, 0) + 1
    refused = ("casedesk_commands_total", (("command", "open_case"), ("outcome", "refused")))
    assert after[refused] == before.get(refused, 0) + 1
    assert ("casedesk_db_pool_size", ()) in after
    assert any(name == "casedesk_http_request_seconds_bucket" for name, _ in after)


async def test_projection_position_and_lag_come_from_the_tracking_table_for_every_projection(client, auth) -> None:
    r = await client.post("/v1/cases", json=new_case_body(), headers=auth())
    position = (await r.json())["position"]
    await client.get("/v1/queues", params={"min_position": position}, headers=auth(role="supervisor"))
    after = samples(await (await client.get("/metrics")).text())
    names = {dict(labels)["projection"] for name, labels in after if name == "casedesk_projection_position"}
    assert names == {"case_files"}  # the projections by name: never "__migration__" or another tracking row
    assert after[("casedesk_projection_position", (("projection", "case_files"),))] >= position
