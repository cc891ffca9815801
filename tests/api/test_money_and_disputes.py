"""Money and dispute codes over HTTP: 422 naming the field, nothing written (issue 14.5, 15)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.api.conftest import new_case_body


async def _verified_call(client: TestClient, auth: Any) -> tuple[str, str]:
    body = new_case_body(contact={"direction": "inbound", "channel": "phone", "department": "fraud"})
    r = await client.post("/v1/cases", json=body, headers=auth())
    opened = await r.json()
    case_id, contact = opened["case_id"], opened["contact_id"]
    r = await client.post(f"/v1/cases/{case_id}/identity-checks", headers=auth(), json={
        "contact_id": contact, "method": "knowledge_based", "passed": True, "factors": ["date_of_birth"]})
    assert r.status == 200, await r.text()
    return case_id, contact


@pytest.mark.parametrize(("amount", "currency", "field"), [
    ("19.999", "JPY", "amount_at_risk.amount"),
    ("-5", "USD", "amount_at_risk.amount"),
    ("0", "USD", "amount_at_risk.amount"),
    ("1" + "0" * 500, "JPY", "amount_at_risk.amount"),
    ("10", "XYZ", "amount_at_risk.currency"),
])
async def test_an_impossible_amount_at_risk_is_422_naming_it(client: TestClient, auth: Any, amount: str,
                                                             currency: str, field: str) -> None:
    customer = f"cust-money-{amount[:8]}-{currency}"
    body = new_case_body(amount_at_risk={"amount": amount, "currency": currency})
    body["customer"]["customer_id"] = customer
    r = await client.post("/v1/cases", json=body, headers=auth())
    problem = await r.json()
    assert r.status == 422, problem
    assert problem["errors"][0]["field"] == field


async def test_a_yen_amount_at_risk_in_whole_yen_is_taken(client: TestClient, auth: Any) -> None:
    r = await client.post("/v1/cases", json=new_case_body(amount_at_risk={"amount": "190000", "currency": "JPY"}),
                          headers=auth())
    assert r.status == 201, await r.text()


@pytest.mark.parametrize(("network", "code", "field"), [
    ("nonsense-net", "not-a-code", "network"),
    ("visa", "not-a-code", "reason_code"),
    ("mastercard", "10.4", "reason_code"),
])
async def test_a_dispute_needs_a_networks_own_reason_code(client: TestClient, auth: Any, network: str, code: str,
                                                          field: str) -> None:
    case_id, contact = await _verified_call(client, auth)
    dispute = {"contact_id": contact, "transaction_id": "t1", "merchant": "WEBTEL",
               "amount": {"amount": "19.95", "currency": "USD"}, "reason_code": code, "network": network}
    r = await client.post(f"/v1/cases/{case_id}/disputes", json=dispute, headers=auth())
    problem = await r.json()
    assert r.status == 422, problem
    assert problem["errors"][0]["field"] == field
    r = await client.post(f"/v1/cases/{case_id}/disputes", json={**dispute, "network": "visa", "reason_code": "10.4"},
                          headers=auth())
    assert r.status == 201, await r.text()


async def test_a_reissue_fee_of_zero_is_taken_a_fractional_yen_fee_is_not(client: TestClient, auth: Any) -> None:
    case_id, contact = await _verified_call(client, auth)
    r = await client.post(f"/v1/cases/{case_id}/cards/card-p/suspend", json={"reason": "fraud"}, headers=auth())
    assert r.status == 200
    reissue = {"contact_id": contact, "delivery": "mail", "fee": {"amount": {"amount": "0.5", "currency": "JPY"},
                                                                  "bearer": "issuer"}}
    r = await client.post(f"/v1/cases/{case_id}/cards/card-p/reissue", json=reissue, headers=auth())
    assert r.status == 422, await r.text()
    assert (await r.json())["errors"][0]["field"] == "fee.amount.amount"
    reissue["fee"]["amount"]["amount"] = "0"
    r = await client.post(f"/v1/cases/{case_id}/cards/card-p/reissue", json=reissue, headers=auth())
    assert r.status == 200, await r.text()
