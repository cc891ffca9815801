"""Every case route refuses bad input with the documented 4xx, and writes nothing."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.api.conftest import SECRET, new_case_body
from tests.clock import ago, from_now

CONTACT = "{contact}"


def routes(case: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    """(path, a valid body) for every POST route on a case."""
    c = f"/v1/cases/{case['id']}"
    return [
        (f"{c}/contacts", {"direction": "outbound", "channel": "phone", "phone": "+81 90 1234 5678", "department": "fraud"}),
        (f"{c}/contacts/{case['contact']}/end", {"outcome": "connected", "summary": "done"}),
        (f"{c}/identity-checks", {"contact_id": case["contact"], "method": "knowledge_based", "passed": True, "factors": ["dob"]}),
        (f"{c}/identity-unlock", {"reason": "customer verified at branch"}),
        (f"{c}/transactions/reviewed", {"contact_id": case["contact"], "transactions": [{"transaction_id": "t1", "merchant": "WEBTEL", "amount": {"amount": "19.95", "currency": "USD"}, "occurred_at": ago(days=3), "answer": "unrecognized"}]}),
        (f"{c}/disputes", {"contact_id": case["contact"], "transaction_id": "t1", "merchant": "WEBTEL", "amount": {"amount": "19.95", "currency": "USD"}, "reason_code": "10.4", "network": "visa"}),
        (f"{c}/disputes/{uuid.uuid4()}/resolve", {"outcome": "upheld", "note": "ok"}),
        (f"{c}/disputes/{uuid.uuid4()}/stages", {"stage": "filed", "network_reference": "VROL-1", "note": "sent"}),
        (f"{c}/customer-notices", {"channel": "letter", "subject": "other", "summary": "told"}),
        (f"{c}/liability-waivers", {"contact_id": case["contact"], "note": "owes nothing"}),
        (f"{c}/provisional-credits", {"dispute_id": str(uuid.uuid4()), "amount": {"amount": "10.00", "currency": "USD"}}),
        (f"{c}/provisional-credits/{uuid.uuid4()}/reverse", {"reason": "dispute lost"}),
        (f"{c}/payment-stops", {"contact_id": case["contact"], "scope": "merchant", "merchant": "WEBTEL"}),
        (f"{c}/cards/card-p/suspend", {"reason": "fraud", "include_linked": True}),
        (f"{c}/cards/card-p/reissue", {"contact_id": case["contact"], "delivery": "mail", "expedite": True, "fee": {"amount": {"amount": "0", "currency": "JPY"}, "bearer": "issuer"}}),
        (f"{c}/cards/card-p/destroyed", {"branch": "Shinjuku", "certificate_id": "CERT-1"}),
        (f"{c}/online-access/suspend", {"reason": "fraud"}),
        (f"{c}/compromise", {"source": "merchant_site", "detail": "asked twice", "domain": "shop.xyz"}),
        (f"{c}/contact-details", {"contact_id": case["contact"], "daytime_phone": "+81 3 1234 5678"}),
        (f"{c}/notes", {"text": "hello", "pinned": False}),
        (f"{c}/escalations", {"to_department": "credit_management", "reason": "needs decision", "priority": 2}),
        (f"{c}/callbacks", {"due_at": from_now(days=7), "phone": "registered", "reason": "follow up", "department": "fraud"}),
        (f"{c}/callbacks/{uuid.uuid4()}/complete", {"note": "called"}),
        (f"{c}/callbacks/{uuid.uuid4()}/missed", {"note": "no answer"}),
        (f"{c}/callbacks/{uuid.uuid4()}/reschedule", {"due_at": from_now(days=8), "note": "asked for later"}),
        (f"{c}/callbacks/{uuid.uuid4()}/waive", {"reason": "customer called in"}),
        (f"{c}/escalations/credit_management/conclude", {"decision": "limit lowered"}),
        (f"{c}/release", {"note": "end of shift"}),
        (f"{c}/resolve", {"resolution": "fraud_confirmed", "summary": "done"}),
        (f"{c}/reopen", {"reason": "customer called again"}),
        # Naming no case that exists (a real merge would take this case out of the other routes' way).
        (f"{c}/merge", {"into_case_id": str(uuid.uuid4()), "reason": "the customer called twice"}),
        (f"{c}/unmerge", {"case_id": str(uuid.uuid4()), "reason": "two incidents after all"}),
    ]


ROUTE_NAMES = [p.split("}", 1)[-1] for p, _ in routes({"id": "{id}", "contact": "{contact}"})]


@pytest.fixture
async def case(client, auth) -> dict[str, str]:
    body = new_case_body(contact={"direction": "inbound", "channel": "phone", "department": "fraud"})
    r = await client.post("/v1/cases", json=body, headers=auth())
    answer = await r.json()
    assert r.status == 201, answer
    return {"id": answer["case_id"], "contact": answer["contact_id"]}


async def version_of(client, auth, case_id: str) -> int:
    r = await client.get(f"/v1/cases/{case_id}", headers=auth(role="supervisor"))
    return (await r.json())["version"]


def _first_required_field(body: dict[str, Any]) -> str:
    return next(iter(body))


@pytest.mark.parametrize("index", range(len(ROUTE_NAMES)), ids=ROUTE_NAMES)
async def test_bad_requests_get_their_4xx_and_change_nothing(client, auth, case, index) -> None:
    path, good = routes(case)[index]
    before = await version_of(client, auth, case["id"])
    expired = auth(ttl=-10)
    forged = auth(secret="not-the-secret-" + SECRET)
    wrong_role = auth(role="auditor")
    h = auth(role="supervisor")
    bad_type = dict(good)
    bad_type[_first_required_field(good)] = 12345 if not isinstance(good[_first_required_field(good)], int) else "x"
    missing = {k: v for k, v in good.items() if k != _first_required_field(good)}
    other_case = path.replace(case["id"], str(uuid.uuid4()))
    bad_uuid = path.replace(case["id"], "not-a-uuid")
    cases = [
        ("no token", path, {}, good, 401),
        ("expired", path, expired, good, 401),
        ("forged", path, forged, good, 401),
        ("wrong role", path, wrong_role, good, 403),
        ("unknown field", path, h, {**good, "surprise": 1}, 422),
        ("wrong type", path, h, bad_type, 422),
        ("unknown case", other_case, h, good, 404),
        ("bad uuid", bad_uuid, h, good, 404),
    ]
    if not path.endswith(("/release", "/complete", "/missed")):  # those bodies are all optional
        cases.append(("missing field", path, h, missing, 422))
    for name, url, headers, body, status in cases:
        r = await client.post(url, json=body, headers=headers)
        problem = await r.json()
        assert r.status == status, (name, problem)
        assert r.headers["Content-Type"].startswith("application/problem+json"), name
        assert problem["status"] == status and problem["type"] and problem["title"], name
        if status == 422:
            assert problem["errors"], name
    r = await client.post(path, data=b"{not json", headers={**h, "Content-Type": "application/json"})
    assert r.status == 400 and (await r.json())["type"].endswith("malformed-json")
    r = await client.post(path, data=b"text", headers={**h, "Content-Type": "text/plain"})
    assert r.status == 415
    r = await client.post(path, data=b'{"text": "' + b"x" * 70_000 + b'"}', headers={**h, "Content-Type": "application/json"})
    assert r.status == 413
    assert await version_of(client, auth, case["id"]) == before


async def test_a_full_card_number_in_a_structured_field_is_422_naming_it(client, auth, case) -> None:
    r = await client.post(f"/v1/cases/{case['id']}/payment-stops", headers=auth(),
                          json={"contact_id": case["contact"], "scope": "merchant", "merchant": "4111 1111 1111 1111"})
    problem = await r.json()
    assert r.status == 422
    assert problem["errors"][0]["field"] == "merchant"


async def test_a_security_code_field_is_refused(client, auth) -> None:
    body = new_case_body()
    body["cards"][0]["cvv"] = "123"
    r = await client.post("/v1/cases", json=body, headers=auth())
    problem = await r.json()
    assert r.status == 422 and problem["errors"][0]["field"] == "cards[0].cvv"
