"""Provisional credits over HTTP on a real PostgreSQL: granted, reversed, each refusal, and the clock it meets.

The app runs under CASEDESK_CLOCK_POLICY=us on a database of its own, so a
debit dispute runs Regulation E's provisional-credit clock. Every date sent is
relative to now (tests/clock.py).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.api.own_database import policy_app, us_database  # noqa: F401 (fixtures)
from tests.api.test_clocks import Desk, days_ago

USD = "USD"


def usd(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": USD}


@pytest.fixture
async def us_client(aiohttp_client: Any, tmp_path: Any, us_database: str) -> TestClient:  # noqa: F811
    return await aiohttp_client(policy_app(tmp_path, us_database, "us"))


async def disputed(client: TestClient, auth: Any) -> tuple[Desk, str]:
    """A debit case whose USD 19.95 charge is disputed."""
    desk = await Desk(client, auth()).open(product="debit")
    return desk, await desk.dispute(days_ago(3))


async def refused(desk: Desk, path: str, body: dict[str, Any], status: int) -> dict[str, Any]:
    r = await desk.client.post(desk.path + path, json=body, headers=desk.headers)
    problem = await r.json()
    assert r.status == status, problem
    assert r.headers["Content-Type"].startswith("application/problem+json")
    return dict(problem)


async def test_a_credit_is_granted_shown_on_its_dispute_told_in_the_timeline_and_meets_the_reg_e_clock(
        us_client, auth) -> None:
    desk, dispute = await disputed(us_client, auth)
    assert (await desk.clocks())["reg_e_provisional_credit"]["state"] == "running"
    answer = await desk.do("/provisional-credits", {"dispute_id": dispute, "amount": usd("10.00"),
                                                    "contact_id": desk.contact})
    assert [e["type"] for e in answer["events"]] == ["ProvisionalCreditGranted"]
    credit_id = answer["credit_id"]
    clock = (await desk.clocks())["reg_e_provisional_credit"]
    assert (clock["state"], clock["met_at"] is not None) == ("met", True)
    assert (await desk.clocks())["reg_e_investigation"]["state"] == "running"
    [credit] = next(d for d in (await desk.get())["disputes"] if d["dispute_id"] == dispute)["provisional_credits"]
    assert (credit["credit_id"], credit["amount"], credit["state"]) == (credit_id, usd("10.00"), "granted")
    entry = (await desk.get("/timeline"))["entries"][-1]
    assert entry["kind"] == "provisional_credit_granted" and "USD 10.00" in entry["text"]


async def test_a_reversed_credit_shows_reversed_with_its_reason_and_frees_the_disputed_amount(us_client, auth) -> None:
    desk, dispute = await disputed(us_client, auth)
    credit_id = (await desk.do("/provisional-credits", {"dispute_id": dispute, "amount": usd("19.95")}))["credit_id"]
    await refused(desk, "/provisional-credits", {"dispute_id": dispute, "amount": usd("0.01")}, 409)
    answer = await desk.do(f"/provisional-credits/{credit_id}/reverse", {"reason": "merchant proved the charge"})
    assert [e["type"] for e in answer["events"]] == ["ProvisionalCreditReversed"]
    [credit] = next(d for d in (await desk.get())["disputes"] if d["dispute_id"] == dispute)["provisional_credits"]
    assert (credit["state"], credit["reason"]) == ("reversed", "merchant proved the charge")
    assert credit["reversed_at"] is not None
    entry = (await desk.get("/timeline"))["entries"][-1]
    assert entry["kind"] == "provisional_credit_reversed" and "merchant proved the charge" in entry["text"]
    await desk.do("/provisional-credits", {"dispute_id": dispute, "amount": usd("19.95")})
    # A reversal does not undo the clock: the customer had the money in time.
    assert (await desk.clocks())["reg_e_provisional_credit"]["state"] == "met"


@pytest.mark.parametrize(("rule", "body"), [
    ("credit-above-disputed-amount", lambda d: {"dispute_id": d, "amount": usd("19.96")}),
    ("credit-currency-mismatch", lambda d: {"dispute_id": d, "amount": {"amount": "1000", "currency": "JPY"}}),
    ("unknown-dispute", lambda d: {"dispute_id": str(uuid.uuid4()), "amount": usd("1.00")}),
    ("unknown-contact", lambda d: {"dispute_id": d, "amount": usd("1.00"), "contact_id": str(uuid.uuid4())}),
])
async def test_a_credit_breaking_a_rule_is_409_naming_it_and_records_nothing(us_client, auth, rule, body) -> None:
    desk, dispute = await disputed(us_client, auth)
    before = (await desk.get())["version"]
    problem = await refused(desk, "/provisional-credits", body(dispute), 409)
    assert problem["type"].endswith(f"/rules/{rule}"), problem
    assert (await desk.get())["version"] == before


async def test_a_credit_for_a_resolved_dispute_is_409_dispute_already_resolved(us_client, auth) -> None:
    desk, dispute = await disputed(us_client, auth)
    await desk.do(f"/disputes/{dispute}/resolve", {"outcome": "rejected", "note": "merchant proved it"})
    problem = await refused(desk, "/provisional-credits", {"dispute_id": dispute, "amount": usd("1.00")}, 409)
    assert problem["type"].endswith("/rules/dispute-already-resolved"), problem


async def test_reversing_an_unknown_or_already_reversed_credit_or_without_a_reason_is_409(us_client, auth) -> None:
    desk, dispute = await disputed(us_client, auth)
    problem = await refused(desk, f"/provisional-credits/{uuid.uuid4()}/reverse", {"reason": "lost"}, 409)
    assert problem["type"].endswith("/rules/unknown-credit"), problem
    credit_id = (await desk.do("/provisional-credits", {"dispute_id": dispute, "amount": usd("5.00")}))["credit_id"]
    await desk.do(f"/provisional-credits/{credit_id}/reverse", {"reason": "lost"})
    problem = await refused(desk, f"/provisional-credits/{credit_id}/reverse", {"reason": "again"}, 409)
    assert problem["type"].endswith("/rules/credit-already-reversed"), problem
    other = (await desk.do("/provisional-credits", {"dispute_id": dispute, "amount": usd("5.00")}))["credit_id"]
    problem = await refused(desk, f"/provisional-credits/{other}/reverse", {"reason": "  "}, 409)
    assert problem["type"].endswith("/rules/reversal-needs-reason"), problem


@pytest.mark.parametrize(("name", "body", "field"), [
    ("no amount", lambda d: {"dispute_id": d}, "amount"),
    ("amount as a number", lambda d: {"dispute_id": d, "amount": 10}, "amount"),
    ("too fine for USD", lambda d: {"dispute_id": d, "amount": usd("1.001")}, "amount.amount"),
    ("zero", lambda d: {"dispute_id": d, "amount": usd("0")}, "amount.amount"),
    ("negative", lambda d: {"dispute_id": d, "amount": usd("-1.00")}, "amount.amount"),
    ("no such currency", lambda d: {"dispute_id": d, "amount": {"amount": "1", "currency": "ZZZ"}},
     "amount.currency"),
    ("dispute id not a uuid", lambda d: {"dispute_id": "tx-1", "amount": usd("1.00")}, "dispute_id"),
    ("unknown field", lambda d: {"dispute_id": d, "amount": usd("1.00"), "card_number": "x"}, "card_number"),
])
async def test_a_malformed_credit_is_422_naming_the_field_and_records_nothing(us_client, auth, name, body,
                                                                               field) -> None:
    desk, dispute = await disputed(us_client, auth)
    before = (await desk.get())["version"]
    problem = await refused(desk, "/provisional-credits", body(dispute), 422)
    assert any(field in e["field"] for e in problem["errors"]), (name, problem)
    assert (await desk.get())["version"] == before


async def test_a_reversal_without_a_reason_is_422_and_a_credit_id_not_a_uuid_404(us_client, auth) -> None:
    desk, dispute = await disputed(us_client, auth)
    credit_id = (await desk.do("/provisional-credits", {"dispute_id": dispute, "amount": usd("5.00")}))["credit_id"]
    problem = await refused(desk, f"/provisional-credits/{credit_id}/reverse", {}, 422)
    assert problem["errors"][0]["field"] == "reason"
    await refused(desk, "/provisional-credits/not-a-credit/reverse", {"reason": "lost"}, 404)


async def test_auditors_may_neither_grant_nor_reverse_a_credit(us_client, auth) -> None:
    desk, dispute = await disputed(us_client, auth)
    credit_id = (await desk.do("/provisional-credits", {"dispute_id": dispute, "amount": usd("5.00")}))["credit_id"]
    auditor = auth(role="auditor")
    for path, body in ((f"{desk.path}/provisional-credits", {"dispute_id": dispute, "amount": usd("1.00")}),
                       (f"{desk.path}/provisional-credits/{credit_id}/reverse", {"reason": "lost"})):
        r = await us_client.post(path, json=body, headers=auditor)
        assert r.status == 403, await r.text()
    [credit] = next(d for d in (await desk.get())["disputes"] if d["dispute_id"] == dispute)["provisional_credits"]
    assert credit["state"] == "granted"


async def test_a_waiver_records_its_amount_and_finality_in_the_view(us_client, auth) -> None:
    desk, dispute = await disputed(us_client, auth)
    await desk.do("/liability-waivers", {"contact_id": desk.contact, "dispute_id": dispute, "note": "written off",
                                         "amount": usd("19.95"), "finality": "final"})
    await desk.do("/liability-waivers", {"contact_id": desk.contact, "note": "owes nothing on the case"})
    waivers = (await desk.get())["liability_waivers"]
    assert [(w["dispute_id"], w["amount"], w["finality"]) for w in waivers] == [
        (dispute, usd("19.95"), "final"), (None, None, "pending")]
    assert "for good" in (await desk.get("/timeline"))["entries"][-2]["text"]
    problem = await refused(desk, "/liability-waivers", {"contact_id": desk.contact, "note": "x",
                                                         "finality": "forever"}, 422)
    assert problem["errors"][0]["field"] == "finality"
    problem = await refused(desk, "/liability-waivers", {"contact_id": desk.contact, "dispute_id": dispute,
                                                         "note": "again", "finality": "final"}, 409)
    assert problem["type"].endswith("/rules/liability-already-waived"), problem
