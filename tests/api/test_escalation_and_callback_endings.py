"""Over HTTP: an escalation ends with its department's decision; a missed callback stays owed (issue 14.5)."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.api.conftest import new_case_body
from tests.clock import from_now


async def _open(client: TestClient, auth: Any) -> str:
    r = await client.post("/v1/cases", json=new_case_body(), headers=auth())
    assert r.status == 201
    case_id: str = (await r.json())["case_id"]
    return case_id


async def _view(client: TestClient, auth: Any, case_id: str, position: int) -> dict[str, Any]:
    r = await client.get(f"/v1/cases/{case_id}", params={"min_position": position}, headers=auth(role="supervisor"))
    assert r.status == 200
    view: dict[str, Any] = await r.json()
    return view


async def _queue(client: TestClient, headers: dict[str, str], queue: str, position: int) -> list[str]:
    r = await client.get(f"/v1/queues/{queue}/items", params={"min_position": position, "limit": 500}, headers=headers)
    assert r.status == 200, await r.text()
    return [i["case_id"] for i in (await r.json())["items"]]


async def test_the_department_concludes_its_escalation_and_the_case_leaves_its_queue(client: TestClient,
                                                                                    auth: Any) -> None:
    case_id = await _open(client, auth)
    r = await client.post(f"/v1/cases/{case_id}/escalations", headers=auth(),
                          json={"to_department": "credit_management", "reason": "limit decision", "priority": 1})
    escalated = await r.json()
    view = await _view(client, auth, case_id, escalated["position"])
    assert [i["kind"] for i in view["handoff"]["pending"]] == ["escalation"]
    credit = auth(departments=("credit_management",), sub="credit-agent-1", name="Mei Ito")
    assert case_id in await _queue(client, credit, "credit_management", escalated["position"])

    r = await client.post(f"/v1/cases/{case_id}/escalations/credit_management/conclude", headers=auth(),
                          json={"decision": "not ours"})
    assert r.status == 409
    assert (await r.json())["type"].endswith("/rules/not-the-escalated-department")

    r = await client.post(f"/v1/cases/{case_id}/escalations/credit_management/conclude", headers=credit,
                          json={"decision": "limit lowered to JPY 100,000"})
    concluded = await r.json()
    assert r.status == 200, concluded
    assert concluded["events"][0]["type"] == "EscalationConcluded"
    view = await _view(client, auth, case_id, concluded["position"])
    assert view["handoff"]["pending"] == []
    assert view["handoff"]["decisions"][0]["text"] == "Credit management decided: limit lowered to JPY 100,000"
    assert view["escalations"][0]["status"] == "concluded"
    assert case_id not in await _queue(client, credit, "credit_management", concluded["position"])

    r = await client.post(f"/v1/cases/{case_id}/escalations/credit_management/conclude", headers=credit,
                          json={"decision": "again"})
    assert r.status == 409
    assert (await r.json())["type"].endswith("/rules/no-open-escalation")


async def test_a_claimed_and_released_escalation_does_not_come_back_once_concluded(client: TestClient,
                                                                                 auth: Any) -> None:
    case_id = await _open(client, auth)
    r = await client.post(f"/v1/cases/{case_id}/escalations", headers=auth(),
                          json={"to_department": "credit_management", "reason": "limit decision", "priority": 1})
    assert r.status == 200
    credit = auth(departments=("credit_management",), sub="credit-agent-2", name="Mei Ito")
    r = await client.post(f"/v1/cases/{case_id}/escalations/credit_management/conclude", headers=credit,
                          json={"decision": "limit kept"})
    assert r.status == 200
    r = await client.post(f"/v1/cases/{case_id}/notes", headers=credit, json={"text": "decided"})
    released = await r.json()
    assert case_id not in await _queue(client, credit, "credit_management", released["position"])


async def test_a_missed_callback_stays_owed_until_rescheduled_or_waived(client: TestClient, auth: Any) -> None:
    case_id = await _open(client, auth)
    r = await client.post(f"/v1/cases/{case_id}/callbacks", headers=auth(), json={
        "due_at": from_now(hours=2), "phone": "registered", "reason": "confirm refund", "department": "fraud"})
    callback_id = (await r.json())["callback_id"]
    r = await client.post(f"/v1/cases/{case_id}/callbacks/{callback_id}/missed", headers=auth(),
                          json={"note": "no answer"})
    missed = await r.json()
    view = await _view(client, auth, case_id, missed["position"])
    assert [i["kind"] for i in view["handoff"]["pending"]] == ["callback_missed"]
    assert [i["kind"] for i in view["handoff"]["promised"]] == ["callback"]
    assert case_id in await _queue(client, auth(), "callbacks_due", missed["position"])

    r = await client.post(f"/v1/cases/{case_id}/resolve", headers=auth(),
                          json={"resolution": "fraud_confirmed", "summary": "done"})
    assert r.status == 409
    assert (await r.json())["type"].endswith("/rules/callback-missed")

    r = await client.post(f"/v1/cases/{case_id}/callbacks/{callback_id}/reschedule", headers=auth(),
                          json={"due_at": from_now(days=1), "note": "customer asked for tomorrow"})
    rescheduled = await r.json()
    assert r.status == 200, rescheduled
    view = await _view(client, auth, case_id, rescheduled["position"])
    assert [i["kind"] for i in view["handoff"]["pending"]] == ["callback_due"]
    assert view["callbacks"][0]["status"] == "scheduled"

    r = await client.post(f"/v1/cases/{case_id}/callbacks/{callback_id}/waive", headers=auth(),
                          json={"reason": "customer called in"})
    assert r.status == 200, await r.text()
    r = await client.post(f"/v1/cases/{case_id}/resolve", headers=auth(),
                          json={"resolution": "fraud_confirmed", "summary": "done"})
    assert r.status == 200, await r.text()


async def test_a_reschedule_without_an_offset_is_422(client: TestClient, auth: Any) -> None:
    case_id = await _open(client, auth)
    r = await client.post(f"/v1/cases/{case_id}/callbacks", headers=auth(), json={
        "due_at": from_now(hours=2), "phone": "registered", "reason": "confirm", "department": "fraud"})
    callback_id = (await r.json())["callback_id"]
    r = await client.post(f"/v1/cases/{case_id}/callbacks/{callback_id}/reschedule", headers=auth(),
                          json={"due_at": from_now(days=1).split("+")[0]})
    assert r.status == 422
    assert (await r.json())["errors"][0]["field"] == "due_at"
