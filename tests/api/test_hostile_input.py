"""Input a hostile or careless client sends is refused with a 4xx problem, never a 500 nor a guess.

Issue 14.4 and issue 15 (robustness): duplicate keys, deep nesting, times
without an offset, a charset other than UTF-8, a phone that is no phone, a
queue or history version that does not exist.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import hypothesis.strategies as st
import pytest
from aiohttp.test_utils import TestClient
from hypothesis import given, settings

from tests.api.conftest import new_case_body
from tests.clock import ago, from_now

JSON = {"Content-Type": "application/json"}


async def _case_with_contact(client: TestClient, auth: Any) -> dict[str, str]:
    body = new_case_body(contact={"direction": "inbound", "channel": "phone", "department": "fraud"})
    r = await client.post("/v1/cases", json=body, headers=auth())
    answer = await r.json()
    assert r.status == 201, answer
    return {"id": answer["case_id"], "contact": answer["contact_id"]}


async def _version(client: TestClient, auth: Any, case_id: str) -> int:
    r = await client.get(f"/v1/cases/{case_id}", headers=auth(role="supervisor"))
    version: int = (await r.json())["version"]
    return version


async def test_a_key_given_twice_is_malformed_json_and_changes_nothing(client: TestClient, auth: Any) -> None:
    case = await _case_with_contact(client, auth)
    before = await _version(client, auth, case["id"])
    raw = b'{"text": "first", "text": "second"}'
    r = await client.post(f"/v1/cases/{case['id']}/notes", data=raw, headers={**auth(), **JSON})
    problem = await r.json()
    assert r.status == 400, problem
    assert problem["type"].endswith("/malformed-json")
    assert "text" in problem["detail"]
    assert await _version(client, auth, case["id"]) == before


async def test_a_key_given_twice_inside_a_nested_object_is_refused_too(client: TestClient, auth: Any) -> None:
    raw = (b'{"customer": {"customer_id": "c-1", "name": "A", "name": "B", "registered_phone": "+81 90 1234 5678"},'
           b' "cards": [{"card_id": "c", "last4": "4242", "network": "visa", "kind": "primary"}],'
           b' "reason": "unrecognized_charge", "channel": "phone", "summary": "s"}')
    r = await client.post("/v1/cases", data=raw, headers={**auth(), **JSON})
    assert r.status == 400, await r.text()


@pytest.mark.parametrize("depth", [33, 1_000, 5_000])
async def test_json_nested_deeper_than_any_request_is_400_not_500(client: TestClient, auth: Any, depth: int) -> None:
    for raw in (b"[" * depth + b"]" * depth, b'{"text": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}"):
        r = await client.post("/v1/cases", data=raw, headers={**auth(), **JSON})
        problem = await r.json()
        assert r.status == 400, problem
        assert problem["type"].endswith("/malformed-json")


async def test_a_callback_due_at_without_an_offset_is_422_naming_it(client: TestClient, auth: Any) -> None:
    case = await _case_with_contact(client, auth)
    naive = from_now(days=2).split("+")[0]
    body = {"due_at": naive, "phone": "registered", "reason": "follow up", "department": "fraud"}
    r = await client.post(f"/v1/cases/{case['id']}/callbacks", json=body, headers=auth())
    problem = await r.json()
    assert r.status == 422, problem
    assert problem["errors"][0]["field"] == "due_at"


async def test_a_transaction_time_without_an_offset_is_422_naming_it(client: TestClient, auth: Any) -> None:
    case = await _case_with_contact(client, auth)
    body = {"contact_id": case["contact"], "transactions": [
        {"transaction_id": "t1", "merchant": "WEBTEL", "amount": {"amount": "19.95", "currency": "USD"},
         "occurred_at": ago(days=3).split("+")[0], "answer": "unrecognized"}]}
    r = await client.post(f"/v1/cases/{case['id']}/transactions/reviewed", json=body, headers=auth())
    problem = await r.json()
    assert r.status == 422, problem
    assert problem["errors"][0]["field"] == "transactions[0].occurred_at"


async def test_a_breach_window_without_an_offset_is_422_naming_it(client: TestClient, auth: Any) -> None:
    body = {"merchant": "ShopNet", "window_start": ago(days=60).split("+")[0], "window_end": ago(days=1),
            "data_exposed": ["card_number"], "reissue_fee_bearer": "merchant"}
    r = await client.post("/v1/breaches", json=body, headers=auth(role="supervisor"))
    problem = await r.json()
    assert r.status == 422, problem
    assert problem["errors"][0]["field"] == "window_start"


async def test_history_as_of_without_an_offset_is_422_naming_it(client: TestClient, auth: Any) -> None:
    case = await _case_with_contact(client, auth)
    r = await client.get(f"/v1/cases/{case['id']}/history", params={"as_of": from_now().split("+")[0]},
                         headers=auth(role="auditor"))
    assert r.status == 422, await r.text()
    assert (await r.json())["errors"][0]["field"] == "as_of"


@pytest.mark.parametrize("charset", ["latin-1", "iso-8859-1", "utf-16"])
async def test_a_body_in_another_charset_than_utf8_is_415(client: TestClient, auth: Any, charset: str) -> None:
    case = await _case_with_contact(client, auth)
    r = await client.post(f"/v1/cases/{case['id']}/notes", data='{"text": "caf\u00e9"}'.encode("latin-1"),
                          headers={**auth(), "Content-Type": f"application/json; charset={charset}"})
    assert r.status == 415, await r.text()
    assert r.content_type == "application/problem+json"


async def test_a_body_declared_utf8_is_taken(client: TestClient, auth: Any) -> None:
    case = await _case_with_contact(client, auth)
    r = await client.post(f"/v1/cases/{case['id']}/notes", data='{"text": "caf\u00e9"}'.encode(),
                          headers={**auth(), "Content-Type": "application/json; charset=UTF-8"})
    assert r.status == 201, await r.text()


@pytest.mark.parametrize("phone", ["abc", "+", "--", "1"])
async def test_lookup_by_a_phone_that_is_no_phone_is_422(client: TestClient, auth: Any, phone: str) -> None:
    r = await client.get("/v1/lookup", params={"phone": phone}, headers=auth())
    problem = await r.json()
    assert r.status == 422, problem
    assert problem["errors"][0]["field"] == "phone"


async def test_lookup_by_a_phone_still_answers(client: TestClient, auth: Any) -> None:
    r = await client.get("/v1/lookup", params={"phone": "+81 90 1234 5678"}, headers=auth())
    assert r.status == 200, await r.text()


async def test_claiming_from_a_queue_that_does_not_exist_is_404(client: TestClient, auth: Any) -> None:
    queue = f"nonexistent_{uuid.uuid4().hex[:8]}"
    for headers in (auth(), auth(role="supervisor")):
        r = await client.post(f"/v1/queues/{queue}/claim", headers=headers)
        assert r.status == 404, await r.text()
        r = await client.get(f"/v1/queues/{queue}/items", headers=headers)
        assert r.status == 404, await r.text()


async def test_another_departments_existing_queue_is_still_403(client: TestClient, auth: Any) -> None:
    r = await client.post("/v1/queues/credit_management/claim", headers=auth())
    assert r.status == 403, await r.text()


async def test_a_department_queue_exists_once_a_case_is_escalated_to_it(client: TestClient, auth: Any) -> None:
    department = f"legal_{uuid.uuid4().hex[:8]}"
    case = await _case_with_contact(client, auth)
    r = await client.post(f"/v1/cases/{case['id']}/escalations", headers=auth(),
                          json={"to_department": department, "reason": "needs counsel", "priority": 2})
    position = (await r.json())["position"]
    r = await client.get(f"/v1/queues/{department}/items", params={"min_position": position},
                         headers=auth(departments=(department,)))
    assert r.status == 200, await r.text()
    assert case["id"] in [i["case_id"] for i in (await r.json())["items"]]


async def test_history_of_a_version_the_case_never_reached_is_404(client: TestClient, auth: Any) -> None:
    case = await _case_with_contact(client, auth)
    version = await _version(client, auth, case["id"])
    r = await client.get(f"/v1/cases/{case['id']}/history", params={"version": 999}, headers=auth(role="auditor"))
    problem = await r.json()
    assert r.status == 404, problem
    assert problem["type"].endswith("/version-not-found")
    assert problem["current_version"] == version
    r = await client.get(f"/v1/cases/{case['id']}/history", params={"version": version},
                         headers=auth(role="auditor"))
    assert r.status == 200
    assert len((await r.json())["events"]) == version


async def _raw(client: TestClient, request: bytes) -> tuple[str, bytes]:
    import asyncio

    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(request)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.decode("latin-1"), body


@pytest.mark.parametrize("name", ["X-Note", "Authorization"])
async def test_an_oversized_header_is_a_problem_that_does_not_echo_it(client: TestClient, name: str) -> None:
    secret_looking = "4111 1111 1111 1111 " + "x" * 9_000
    head, body = await _raw(client, f"GET /v1/queues HTTP/1.1\r\nHost: x\r\n{name}: {secret_looking}\r\n\r\n".encode())
    assert head.split(" ")[1] == "400"
    assert "content-type: application/problem+json" in head.lower()
    assert b"4111" not in body and b"xxxx" not in body
    problem = json.loads(body)
    assert problem["status"] == 400 and problem["type"].endswith("/bad-request")


async def test_a_malformed_request_line_is_a_problem_too(client: TestClient) -> None:
    head, body = await _raw(client, b"GET /v1/queues HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n")
    assert head.split(" ")[1] == "400"
    assert json.loads(body)["status"] == 400


def test_every_time_a_request_body_takes_must_carry_its_offset() -> None:
    """Any time field, now or later added, is declared tz-aware, so a naive time is 422 naming it, never a 500."""
    import msgspec

    from casedesk.services.http.routes import ROUTES

    naive: list[str] = []

    def walk(t: msgspec.inspect.Type, where: str, seen: set[type]) -> None:
        if isinstance(t, msgspec.inspect.DateTimeType) and t.tz is not True:
            naive.append(where)
        elif isinstance(t, msgspec.inspect.StructType) and t.cls not in seen:
            for f in t.fields:
                walk(f.type, f"{t.cls.__name__}.{f.name}", seen | {t.cls})
        elif isinstance(t, (msgspec.inspect.ListType, msgspec.inspect.VarTupleType)):
            walk(t.item_type, where, seen)
        elif isinstance(t, msgspec.inspect.UnionType):
            for option in t.types:
                walk(option, where, seen)

    for route in ROUTES:
        for kind in (route.body, route.line):
            if kind is not None:
                walk(msgspec.inspect.type_info(kind), route.path, set())
    assert naive == []


_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=3)  # no lone surrogates: not JSON text


@given(st.recursive(st.none() | st.integers(-(2**63), 2**63 - 1) | _TEXT,
                    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(_TEXT, inner, max_size=2),
                    max_leaves=60),
       st.integers(min_value=0, max_value=3_000))
@settings(max_examples=60, deadline=None)
def test_any_nesting_parses_or_is_a_400_never_a_crash(value: Any, wrapping: int) -> None:
    from casedesk.services.http.problems import Problem
    from casedesk.services.http.request_body import MAX_DEPTH, parse_json

    def depth(item: Any) -> int:
        children = list(item.values()) if isinstance(item, dict) else item if isinstance(item, list) else None
        return 0 if children is None else 1 + max(map(depth, children), default=0)

    raw = b"[" * wrapping + json.dumps(value).encode() + b"]" * wrapping
    deep = wrapping + depth(value) > MAX_DEPTH
    try:
        parsed = parse_json(raw)
    except Problem as problem:
        assert deep and problem.status == 400 and "nested deeper" in problem.body.detail
    else:
        assert not deep
        for _ in range(wrapping):
            parsed = parsed[0]
        assert parsed == value
