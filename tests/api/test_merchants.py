"""Merchant intelligence: a flagged fraud biller raises the priority of cases naming it."""

from __future__ import annotations

import uuid

from casedesk.domain.merchants import merchant_stream
from tests.api.conftest import new_case_body


async def dispute(client, h, merchant: str) -> dict:
    r = await client.post("/v1/cases", json=new_case_body(contact={"direction": "inbound", "channel": "phone", "department": "fraud"}), headers=h)
    opened = await r.json()
    case_id, contact = opened["case_id"], opened["contact_id"]
    r = await client.post(f"/v1/cases/{case_id}/identity-checks", headers=h,
                          json={"contact_id": contact, "method": "knowledge_based", "passed": True, "factors": ["date_of_birth"]})
    assert r.status == 200, await r.text()
    r = await client.post(f"/v1/cases/{case_id}/disputes", headers=h, json={
        "contact_id": contact, "transaction_id": f"t-{uuid.uuid4().hex[:6]}", "merchant": merchant,
        "amount": {"amount": "19.95", "currency": "USD"}, "reason_code": "10.4", "network": "visa"})
    answer = await r.json()
    assert r.status == 201, answer
    return answer


async def test_a_dispute_naming_a_flagged_merchant_waits_at_priority_one(client, auth) -> None:
    merchant = f"WEBTEL {uuid.uuid4().hex[:6]}"
    supervisor, agent = auth(role="supervisor", name="M. Sato"), auth()
    assert (await client.post("/v1/merchants/flags", json={"merchant": merchant, "reason": "x"}, headers=agent)).status == 403
    r = await client.post("/v1/merchants/flags", json={"merchant": merchant, "reason": "known fraud biller"}, headers=supervisor)
    assert r.status == 201, await r.text()

    flagged = await dispute(client, agent, merchant.lower() + "  ")  # the same descriptor, written differently
    plain = await dispute(client, agent, f"SHOP {uuid.uuid4().hex[:6]}")
    r = await client.get("/v1/queues/disputes/items", params={"min_position": plain["position"], "limit": 500}, headers=agent)
    priority = {i["case_id"]: i["priority"] for i in (await r.json())["items"]}
    assert priority[flagged["case_id"]] == 1
    assert priority[plain["case_id"]] > 1
    r = await client.get(f"/v1/cases/{flagged['case_id']}", params={"min_position": plain["position"]}, headers=agent)
    assert (await r.json())["flagged_merchants"] == [merchant]

    r = await client.get("/v1/merchants/flagged", params={"min_position": plain["position"]}, headers=agent)
    [entry] = [m for m in (await r.json())["items"] if m["merchant"] == merchant]
    assert entry["disputes"] == 1 and entry["flagged_by"] == "M. Sato"


async def test_a_merchant_stream_is_not_a_case(client, auth) -> None:
    merchant = f"M {uuid.uuid4().hex[:6]}"
    await client.post("/v1/merchants/flags", json={"merchant": merchant, "reason": "r"}, headers=auth(role="supervisor"))
    stream = merchant_stream(merchant)
    assert (await client.get(f"/v1/cases/{stream}", headers=auth(role="supervisor"))).status == 404
    r = await client.post(f"/v1/cases/{stream}/notes", json={"text": "hi"}, headers=auth(role="supervisor"))
    assert r.status == 404
