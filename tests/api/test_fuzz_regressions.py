"""Inputs the API fuzzer (tests/fuzz) found answered wrongly, kept as plain tests.

Each answer must be a 4xx problem that the served OpenAPI document lists for
the operation (or the documented success), never a 500 and never an input
quietly read as something else.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from casedesk.domain.merchants import merchant_stream
from casedesk.services.http.app_keys import STORE
from casedesk.services.http.case_requests import PHONE_PATTERN
from tests.api.conftest import new_case_body

FIVE_THOUSAND_DIGITS = "7" * 5000  # past the 4300 digits Python's int() takes from a string


async def _documented(client: TestClient, method: str, path: str, status: int) -> dict[str, Any]:
    """The document's entry for `status` of the operation; fails if there is none."""
    doc = await (await client.get("/v1/openapi.json")).json()
    responses = doc["paths"][path][method.lower()]["responses"]
    assert str(status) in responses, f"{method} {path} answers {status}, documented: {sorted(responses)}"
    answer: dict[str, Any] = responses[str(status)]
    return answer


async def _open_case(client: TestClient, auth: Any) -> str:
    r = await client.post("/v1/cases", json=new_case_body(), headers=auth())
    assert r.status == 201
    case_id: str = (await r.json())["case_id"]
    return case_id


@pytest.mark.parametrize("value", ["", " 7", "+7", "7_0", "\u0667", FIVE_THOUSAND_DIGITS])
async def test_min_position_is_digits_or_422(client: TestClient, auth: Any, value: str) -> None:
    # Found: `min_position=` was read as "no minimum" (200), int() took " 7", "7_0" and Arabic-Indic digits.
    case_id = await _open_case(client, auth)
    r = await client.get(f"/v1/cases/{case_id}/timeline", params={"min_position": value}, headers=auth())
    assert r.status == 422, await r.text()
    assert r.content_type == "application/problem+json"
    assert (await r.json())["errors"][0]["field"] == "min_position"
    await _documented(client, "GET", "/v1/cases/{case_id}/timeline", 422)


@pytest.mark.parametrize("value", ["\u0665", " 5", FIVE_THOUSAND_DIGITS])
async def test_queue_page_limit_is_digits_or_422(client: TestClient, auth: Any, value: str) -> None:
    r = await client.get("/v1/queues/fraud_alerts/items", params={"limit": value}, headers=auth())
    assert r.status == 422, await r.text()
    await _documented(client, "GET", "/v1/queues/{queue}/items", 422)


async def test_history_version_past_any_number_is_422_not_500(client: TestClient, auth: Any) -> None:
    # Found: int() raised ValueError past 4300 digits, outside the handler's check: a 500.
    case_id = await _open_case(client, auth)
    r = await client.get(f"/v1/cases/{case_id}/history", params={"version": FIVE_THOUSAND_DIGITS},
                         headers=auth(role="auditor"))
    assert r.status == 422, await r.text()
    assert (await r.json())["errors"][0]["field"] == "version"


async def test_history_version_bound_is_documented(client: TestClient) -> None:
    # Found: version=33247417474287997826420430451245056 is 422, the document gave no maximum.
    doc = await _document(client)
    for path, name in (("/v1/cases/{case_id}/history", "version"), ("/v1/cases/{case_id}", "min_position")):
        [param] = [p for p in doc["paths"][path]["get"]["parameters"] if p["name"] == name]
        assert param["schema"]["maximum"] == 2**63 - 1


async def test_access_log_limit_past_any_number_is_422_not_500(client: TestClient, auth: Any) -> None:
    case_id = await _open_case(client, auth)
    r = await client.get(f"/v1/cases/{case_id}/access-log", params={"limit": FIVE_THOUSAND_DIGITS},
                         headers=auth(role="auditor"))
    assert r.status == 422, await r.text()
    await _documented(client, "GET", "/v1/cases/{case_id}/access-log", 422)


@pytest.mark.parametrize(("path", "template", "query"), [
    ("/v1/cases/{case}", "/v1/cases/{case_id}", {"min_position": "-596398860"}),
    ("/v1/cases/{case}/history", "/v1/cases/{case_id}/history", {"version": "415", "as_of": "2572-04-12T21:14:50-09:59"}),
    ("/v1/queues", "/v1/queues", {"min_position": "-6899393"}),
    ("/v1/lookup", "/v1/lookup", {}),
])
async def test_a_refused_query_is_a_documented_422(client: TestClient, auth: Any, path: str, template: str,
                                                   query: dict[str, str]) -> None:
    # Found: reads refused bad queries with 422, but the document listed only 200/401/403/404/503.
    case_id = await _open_case(client, auth)
    r = await client.get(path.format(case=case_id), params=query, headers=auth(role="admin"))
    assert r.status == 422, await r.text()
    answer = await _documented(client, "GET", template, 422)
    assert "application/problem+json" in answer["content"]


async def test_claim_on_an_empty_queue_is_a_documented_204(client: TestClient, auth: Any) -> None:
    # Found: the claim answered 204 (queue empty), which the document did not list.
    r = await client.post("/v1/queues/no_such_desk/claim", headers=auth(departments=("no_such_desk",)))
    assert r.status == 204
    answer = await _documented(client, "POST", "/v1/queues/{queue}/claim", 204)
    assert "content" not in answer


async def test_metrics_are_documented_as_plain_text(client: TestClient) -> None:
    # Found: /metrics answers Prometheus text; the document said application/json.
    r = await client.get("/metrics")
    assert r.status == 200 and r.content_type == "text/plain"
    answer = await _documented(client, "GET", "/metrics", 200)
    assert list(answer["content"]) == ["text/plain"]


async def test_replay_page_of_a_non_id_is_a_documented_404(client: TestClient) -> None:
    # Found: GET /cases/%01 answers a 404 problem; the document listed only 200.
    r = await client.get("/cases/%01")
    assert r.status == 404 and r.content_type == "application/problem+json"
    await _documented(client, "GET", "/cases/{case_id}", 404)


async def test_readiness_documents_its_503(client: TestClient) -> None:
    answer = await _documented(client, "GET", "/readyz", 503)
    assert answer["content"]["application/json"]["schema"]["$ref"].endswith("/Health")


async def test_projection_behind_is_documented_with_retry_after(client: TestClient) -> None:
    answer = await _documented(client, "GET", "/v1/cases/{case_id}", 503)
    assert answer["headers"]["Retry-After"]["required"] is True


async def _queue_of_two(client: TestClient, auth: Any) -> tuple[str, list[str]]:
    """A department queue of its own holding two escalated cases, once the projection has them."""
    dept, fraud, ids, position = f"d_{uuid.uuid4().hex[:8]}", auth(), [], 0
    for _ in range(2):
        case_id = await _open_case(client, auth)
        r = await client.post(f"/v1/cases/{case_id}/escalations", headers=fraud,
                              json={"to_department": dept, "reason": "needs a decision", "priority": 1})
        assert r.status == 200, await r.text()
        ids.append(case_id)
        position = (await r.json())["position"]
    r = await client.get(f"/v1/queues/{dept}/items", params={"min_position": position}, headers=auth(role="admin"))
    assert {i["case_id"] for i in (await r.json())["items"]} == set(ids)
    return dept, ids


async def test_a_claim_refuses_a_malformed_idempotency_key(client: TestClient, auth: Any) -> None:
    # Found: the claim answered 204/200 to an Idempotency-Key of 201 characters: it ignored the key.
    dept, _ = await _queue_of_two(client, auth)
    r = await client.post(f"/v1/queues/{dept}/claim", headers=auth(departments=(dept,)) | {"Idempotency-Key": "k" * 201})
    assert r.status == 422, await r.text()
    assert (await r.json())["errors"][0]["field"] == "Idempotency-Key"


async def test_a_repeated_claim_answers_the_same_case_and_claims_no_other(client: TestClient, auth: Any) -> None:
    # The contract: an Idempotency-Key on any POST replays the first answer with no new events.
    dept, ids = await _queue_of_two(client, auth)
    agent = auth(departments=(dept,)) | {"Idempotency-Key": f"claim-{uuid.uuid4()}"}
    first = await client.post(f"/v1/queues/{dept}/claim", headers=agent)
    again = await client.post(f"/v1/queues/{dept}/claim", headers=agent)
    assert first.status == again.status == 200
    one, two = await first.json(), await again.json()
    assert one["case_id"] == two["case_id"] and one["position"] == two["position"]
    assert two["case"]["assignee"] == one["case"]["assignee"]
    other = next(i for i in ids if i != one["case_id"])
    r = await client.get(f"/v1/cases/{other}", headers=auth(role="admin"))
    assert (await r.json())["assignee"] is None  # still waiting for someone


async def test_a_repeated_merchant_flag_answers_the_first_and_flags_once(client: TestClient, auth: Any) -> None:
    merchant = f"WEBTEL {uuid.uuid4().hex[:6]}"
    supervisor = auth(role="supervisor") | {"Idempotency-Key": f"flag-{uuid.uuid4()}"}
    body = {"merchant": merchant, "reason": "known fraud biller"}
    first = await client.post("/v1/merchants/flags", json=body, headers=supervisor)
    again = await client.post("/v1/merchants/flags", json=body, headers=supervisor)
    assert first.status == again.status == 201
    assert await first.json() == await again.json()
    stream = await client.app[STORE].read_stream(merchant_stream(merchant))
    assert len(stream) == 1
    r = await client.post("/v1/merchants/flags", json=body, headers=supervisor | {"Idempotency-Key": "f" * 201})
    assert r.status == 422


async def _document(client: TestClient) -> dict[str, Any]:
    doc: dict[str, Any] = await (await client.get("/v1/openapi.json")).json()
    return doc


@pytest.mark.parametrize("header", ['"+1"', "1_0", '"\uff11"', '"B"', '"1", "2"'])
async def test_if_match_is_a_version_as_documented(client: TestClient, auth: Any, header: str) -> None:
    # Found: If-Match was documented as any string, and int() read "+1" or a full-width digit as version 1.
    case_id = await _open_case(client, auth)
    r = await client.post(f"/v1/cases/{case_id}/notes", json={"text": "x"}, headers=auth() | {"If-Match": header})
    assert r.status == 422, await r.text()
    doc = await _document(client)
    [param] = [p for p in doc["paths"]["/v1/cases/{case_id}/notes"]["post"]["parameters"] if p["name"] == "If-Match"]
    assert "pattern" in param["schema"]
    r = await client.post(f"/v1/cases/{case_id}/notes", json={"text": "x"}, headers=auth() | {"If-Match": 'W/"1"'})
    assert r.status == 201, await r.text()


async def test_idempotency_key_length_is_documented(client: TestClient) -> None:
    # Found: a 201-character key is 422, but the document said any string.
    doc = await _document(client)
    [param] = [p for p in doc["paths"]["/v1/cases"]["post"]["parameters"] if p["name"] == "Idempotency-Key"]
    assert param["schema"] | {"minLength": 1, "maxLength": 200} == param["schema"]


async def test_money_in_a_body_is_documented_as_it_is_checked(client: TestClient, auth: Any) -> None:
    # Found: {"amount": "", ...} and Money with extra fields were 422, but the document allowed both.
    r = await client.post("/v1/cases", json=new_case_body(amount_at_risk={"amount": "1", "currency": "USD", "x": 1}),
                          headers=auth())
    assert r.status == 422 and (await r.json())["errors"][0]["field"] == "amount_at_risk.x"
    money = (await _document(client))["components"]["schemas"]["Money"]
    assert money["additionalProperties"] is False
    assert money["properties"]["amount"]["pattern"] == "^-?[0-9]+(\\.[0-9]+)?$"
    assert money["properties"]["currency"]["pattern"] == "^[A-Z]{3}$"


@pytest.mark.parametrize("where", ["customer_id", "network", "summary"])
async def test_a_nul_character_is_refused_before_it_can_stop_the_projection(client: TestClient, auth: Any,
                                                                           where: str) -> None:
    # Found: a case opened with "\x00" in customer_id was stored; the case_files projection then failed on
    # every batch (PostgreSQL text holds no NUL), so every read with min_position answered 503 from then on.
    body = new_case_body()
    if where == "customer_id":
        body["customer"]["customer_id"] = "cust-\x00"
    elif where == "network":
        body["cards"][0]["network"] = "\x00visa"
    else:
        body["summary"] = "caller said \x00"
    r = await client.post("/v1/cases", json=body, headers=auth())
    assert r.status == 422, await r.text()
    assert (await r.json())["errors"][0]["message"] == "must not contain the NUL character"
    summary = (await _document(client))["components"]["schemas"]["OpenCase"]["properties"]["summary"]
    assert summary["pattern"] == "^[^\\x00]*$"  # and the document says so
    r = await client.post("/v1/cases", json=new_case_body(), headers=auth())
    written = await r.json()
    r = await client.get(f"/v1/cases/{written['case_id']}", params={"min_position": written["position"]},
                         headers=auth())
    assert r.status == 200, await r.text()


async def test_a_queue_name_that_cannot_be_one_is_404_not_500(client: TestClient, auth: Any) -> None:
    # Found by reading the NUL case above: a NUL in the queue reached PostgreSQL as text, a 500.
    for method, path in (("GET", "/v1/queues/fraud%00alerts/items"), ("POST", "/v1/queues/fraud%00alerts/claim")):
        r = await client.request(method, path, headers=auth(role="supervisor"))
        assert r.status == 404, await r.text()
        await _documented(client, method, path.replace("fraud%00alerts", "{queue}"), 404)


async def test_lookup_refuses_an_empty_last4(client: TestClient, auth: Any) -> None:
    # Found: `last4=` was read as "no last4" (200) though the document gives it the pattern ^[0-9]{4}$.
    r = await client.get("/v1/lookup", params={"phone": "+81 90 1234 5678", "last4": ""}, headers=auth())
    assert r.status == 422, await r.text()
    assert (await r.json())["errors"][0]["field"] == "last4"


@pytest.mark.parametrize("phone", ["173 ", "0312 "])
async def test_lookup_judges_every_phone_the_document_takes_as_a_number(client: TestClient, auth: Any,
                                                                        phone: str) -> None:
    # Found by the fuzz run (ten-run loop, run 1): "173 " matches the document's phone pattern (a digit,
    # then 3 to 30 of digits and separators), but the handler stripped it to "173" first and refused it as
    # malformed. It is well-formed: only phonenumbers can say it is too short for any country.
    assert re.fullmatch(PHONE_PATTERN, phone)
    r = await client.get("/v1/lookup", params={"phone": phone}, headers=auth())
    assert r.status == 422, await r.text()
    [error] = (await r.json())["errors"]
    assert error["field"] == "phone" and error["message"].startswith("not a phone number"), error


async def test_method_not_allowed_names_the_allowed_methods(client: TestClient, auth: Any) -> None:
    # Found by schemathesis' allow_header_conformance: the problem+json 405 dropped aiohttp's Allow header,
    # which RFC 9110 requires.
    case_id = await _open_case(client, auth)
    r = await client.patch(f"/v1/cases/{case_id}/notes", json={}, headers=auth())
    assert r.status == 405 and r.content_type == "application/problem+json"
    assert r.headers["Allow"] == "POST"


async def test_a_malformed_if_match_is_refused_even_when_the_key_replays_an_answer(client: TestClient, auth: Any) -> None:
    # Found by schemathesis: the replay of an Idempotency-Key answered 201 before If-Match was read.
    case_id, h = await _open_case(client, auth), auth()
    body, key = {"text": "0", "pinned": False}, {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    first = await client.post(f"/v1/cases/{case_id}/notes", json=body, headers=h | key)
    assert first.status == 201
    again = await client.post(f"/v1/cases/{case_id}/notes", json=body, headers=h | key | {"If-Match": "true"})
    assert again.status == 422 and (await again.json())["errors"][0]["field"] == "If-Match"


@pytest.mark.parametrize(("priority", "status"), [(2.0, 200), (2, 200), (2e0, 200), (2.5, 422), (6.0, 422)])
async def test_a_whole_number_written_with_a_fraction_is_an_integer(client: TestClient, auth: Any,
                                                                      priority: float, status: int) -> None:
    # Found: `priority: 2.0` was 422 "Expected `int`, got `float`"; JSON Schema counts 2.0 as an integer.
    case_id = await _open_case(client, auth)
    r = await client.post(f"/v1/cases/{case_id}/escalations", headers=auth(),
                          json={"to_department": "credit_management", "reason": "a credit decision",
                                "priority": priority})
    assert r.status == status, await r.text()
    if status == 200:
        view = await (await client.get(f"/v1/cases/{case_id}", headers=auth(),
                                       params={"min_position": (await r.json())["position"]})).json()
        [escalation] = view["escalations"]
        assert escalation["priority"] == 2 and isinstance(escalation["priority"], int)
