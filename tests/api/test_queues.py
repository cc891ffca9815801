"""Work queues over HTTP: cases enter and leave as a person expects; claims are atomic."""

from __future__ import annotations

import asyncio
import uuid
from functools import partial

from casedesk.domain import decisions as d
from casedesk.domain.values import Card, Customer, Money, PhoneNumber
from casedesk.services.http.app_keys import CASES
from casedesk.services.tokens import Principal
from tests.api.conftest import new_case_body


async def queue_ids(client, h, queue: str, position: int) -> list[str]:
    r = await client.get(f"/v1/queues/{queue}/items", params={"min_position": position, "limit": 500}, headers=h)
    assert r.status == 200, await r.text()
    return [i["case_id"] for i in (await r.json())["items"]]


async def test_a_fraud_alert_waits_until_claimed_and_returns_when_released(client, auth) -> None:
    agent = auth(sub=f"a-{uuid.uuid4().hex[:6]}", name="R. Mori")
    r = await client.post("/v1/cases", json=new_case_body(reason="fraud_alert"), headers=agent)
    opened = await r.json()
    case_id = opened["case_id"]
    assert case_id in await queue_ids(client, agent, "fraud_alerts", opened["position"])

    claimed = None
    while claimed is None or claimed["case_id"] != case_id:  # older alerts of other tests come first
        r = await client.post("/v1/queues/fraud_alerts/claim", headers=agent)
        assert r.status == 200
        claimed = await r.json()
    assert claimed["case"]["assignee"]["name"] == "R. Mori"
    assert claimed["timeline"]["entries"][-1]["kind"] == "case_assigned"
    assert case_id not in await queue_ids(client, agent, "fraud_alerts", claimed["position"])

    r = await client.post(f"/v1/cases/{case_id}/release", json={"note": "end of shift"}, headers=agent)
    released = await r.json()
    assert r.status == 200, released
    assert case_id in await queue_ids(client, agent, "fraud_alerts", released["position"])


async def test_an_agent_claims_only_from_its_departments_queues(client, auth) -> None:
    r = await client.post("/v1/queues/fraud_alerts/claim", headers=auth(departments=("credit_management",)))
    assert r.status == 403
    r = await client.post(f"/v1/queues/q_{uuid.uuid4().hex[:8]}/claim", headers=auth(role="supervisor"))
    assert r.status == 404  # no such queue (issue 14.5: it was 204, and 403 for an agent)


async def test_escalation_puts_the_case_in_the_department_queue(client, auth) -> None:
    fraud = auth()
    r = await client.post("/v1/cases", json=new_case_body(), headers=fraud)
    case_id = (await r.json())["case_id"]
    dept = f"d_{uuid.uuid4().hex[:8]}"
    r = await client.post(f"/v1/cases/{case_id}/escalations", headers=fraud,
                          json={"to_department": dept, "reason": "needs a decision", "priority": 1})
    escalated = await r.json()
    credit = auth(departments=(dept,))
    r = await client.get(f"/v1/queues/{dept}/items", params={"min_position": escalated["position"]}, headers=credit)
    items = (await r.json())["items"]
    assert [(i["case_id"], i["priority"]) for i in items] == [(case_id, 1)]
    r = await client.get("/v1/queues", headers=credit)
    assert {q["queue"] for q in (await r.json())["items"]} == {dept}


async def test_fifty_concurrent_claimers_never_get_the_same_case(client, auth) -> None:
    dept = f"d_{uuid.uuid4().hex[:8]}"
    cases = client.app[CASES]
    boss = Principal(sub="sup", name="M. Sato", role="supervisor", departments=("fraud",), exp=2**40)
    phone = PhoneNumber(masked="•••• 0000", key="k")

    async def open_and_escalate(n: int) -> str:
        opened = await cases.open(boss, partial(
            d.open_case, case_id=uuid.uuid4(), reason="unrecognized_charge", channel="phone", summary=f"c{n}",
            customer=Customer(customer_id=f"c{n}", name_masked="X", name_key="x", phone=phone),
            cards=(Card(card_id="p", last4="1234", network="visa", kind="primary"),),
            amount_at_risk=Money(amount=str(n + 1), currency="USD"), contact=None))
        await cases.change(boss, opened.case.id, partial(d.escalate, to_department=dept, reason="r", priority=3))
        return str(opened.case.id)

    opened = set(await asyncio.gather(*[open_and_escalate(n) for n in range(1000)]))
    position = await cases.store.max_notification_id()
    r = await client.get(f"/v1/queues/{dept}/items", params={"min_position": position, "limit": 1}, headers=auth(role="supervisor"))
    assert r.status == 200

    claims: list[str] = []
    empties: list[int] = []  # how many claims had completed when each agent was told "empty"

    async def claimer(n: int) -> None:
        h = auth(departments=(dept,), sub=f"agent-{n}", name=f"Agent {n}")
        while True:
            r = await client.post(f"/v1/queues/{dept}/claim", headers=h)
            if r.status == 204:
                empties.append(len(claims))
                return
            assert r.status == 200, await r.text()
            claims.append((await r.json())["case_id"])

    await asyncio.gather(*[claimer(n) for n in range(50)])
    assert len(claims) == len(set(claims)) == 1000
    assert set(claims) == opened
    # "Empty" only once every case was taken (at most the 49 other claims in flight finish after).
    assert min(empties) >= 1000 - 49


async def test_a_resolved_case_leaves_its_queues_and_a_reopened_one_returns(client, auth) -> None:
    h = auth()
    r = await client.post("/v1/cases", json=new_case_body(reason="fraud_alert"), headers=h)
    case_id = (await r.json())["case_id"]
    r = await client.post(f"/v1/cases/{case_id}/resolve", headers=h,
                          json={"resolution": "customer_recognised", "summary": "the customer made the purchase"})
    resolved = await r.json()
    assert r.status == 200, resolved
    assert case_id not in await queue_ids(client, h, "fraud_alerts", resolved["position"])
    r = await client.post(f"/v1/cases/{case_id}/reopen", headers=h, json={"reason": "charge seen again"})
    reopened = await r.json()
    assert case_id in await queue_ids(client, h, "fraud_alerts", reopened["position"])


async def test_queue_items_page_with_an_opaque_cursor_in_claim_order(client, auth) -> None:
    fraud, dept = auth(), f"d_{uuid.uuid4().hex[:8]}"
    position = 0
    for n in range(7):
        r = await client.post("/v1/cases", json=new_case_body(amount_at_risk={"amount": str(10 ** (n % 4)), "currency": "USD"}), headers=fraud)
        case_id = (await r.json())["case_id"]
        r = await client.post(f"/v1/cases/{case_id}/escalations", headers=fraud,
                              json={"to_department": dept, "reason": "review", "priority": 5})
        position = (await r.json())["position"]
    h = auth(departments=(dept,))
    pages, cursor = [], None
    while True:
        params = {"limit": 3, "min_position": position, **({"cursor": cursor} if cursor else {})}
        r = await client.get(f"/v1/queues/{dept}/items", params=params, headers=h)
        page = await r.json()
        assert r.status == 200, page
        pages.append(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [3, 3, 1]
    items = [i for p in pages for i in p]
    order = [(i["priority"], i["due_at"] or "~", i["enqueued_at"], i["case_id"]) for i in items]
    assert order == sorted(order) and len({i["case_id"] for i in items}) == 7
    for bad in ({"limit": 0}, {"limit": 501}, {"cursor": "not-a-cursor"}):
        assert (await client.get(f"/v1/queues/{dept}/items", params=bad, headers=h)).status == 422
