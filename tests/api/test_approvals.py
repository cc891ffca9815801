"""Four eyes over real HTTP on a real PostgreSQL: 202, the approvals queue, approve, reject, expire.

A JPY 190,000 charge is disputed; the default limit for JPY is 100,000, so
waiving it or crediting it waits for a supervisor who is not the requester.
Time is the service's clock (`CaseService.clock`), set by the expiry tests.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from aiohttp.test_utils import TestClient

from casedesk.services.approvals import sweep_expired
from casedesk.services.http.app import create_app
from casedesk.services.http.app_keys import CASES, POOL
from casedesk.services.settings import Settings, SettingsError, load_settings
from tests.api.conftest import new_case_body, with_schema
from tests.clock import ago


def jpy(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "JPY"}


class Desk:
    """One case worked by agent K. Takano, with a verified call and a disputed JPY 190,000 charge."""

    def __init__(self, client: TestClient, auth: Any) -> None:
        self.client, self.auth = client, auth
        self.agent = auth(name="K. Takano", sub=f"agent-{uuid.uuid4().hex[:8]}")
        self.supervisor = auth(role="supervisor", name="M. Sato", sub=f"sup-{uuid.uuid4().hex[:8]}")

    async def open(self, disputed: str = "190000") -> Desk:
        body = new_case_body(contact={"direction": "inbound", "channel": "phone", "department": "fraud"},
                             amount_at_risk=jpy(disputed))
        opened = await self.post("/v1/cases", body, self.agent, 201)
        self.case_id, self.contact = opened["case_id"], opened["contact_id"]
        self.path = f"/v1/cases/{self.case_id}"
        await self.post(f"{self.path}/identity-checks", {"contact_id": self.contact, "method": "knowledge_based",
                                                         "passed": True, "factors": ["date_of_birth"]}, self.agent)
        disputed_answer = await self.post(f"{self.path}/disputes", {
            "contact_id": self.contact, "transaction_id": f"t-{uuid.uuid4().hex[:6]}", "merchant": "LUXE BAGS",
            "amount": jpy(disputed), "reason_code": "10.4", "network": "visa", "transaction_date": ago(days=2)[:10]},
            self.agent, 201)
        self.dispute = disputed_answer["dispute_id"]
        return self

    async def post(self, path: str, body: dict[str, Any], headers: dict[str, str], status: int = 200
                   ) -> dict[str, Any]:
        r = await self.client.post(path, json=body, headers=headers)
        answer = await r.json()
        assert r.status == status, answer
        self.position = answer.get("position") or getattr(self, "position", 0)
        return dict(answer)

    async def waive(self, status: int = 202, headers: dict[str, str] | None = None) -> dict[str, Any]:
        return await self.post(f"{self.path}/liability-waivers", {
            "contact_id": self.contact, "dispute_id": self.dispute, "note": "confirmed fraud at LUXE BAGS"},
            headers or self.agent, status)

    async def credit(self, amount: str = "190000", status: int = 202) -> dict[str, Any]:
        return await self.post(f"{self.path}/provisional-credits", {"dispute_id": self.dispute,
                                                                    "amount": jpy(amount)}, self.agent, status)

    async def decide(self, approval_id: str, verb: str = "approve", headers: dict[str, str] | None = None,
                     status: int = 200, note: str = "checked the alert") -> dict[str, Any]:
        return await self.post(f"/v1/approvals/{approval_id}/{verb}", {"note": note}, headers or self.supervisor,
                               status)

    async def get(self, what: str = "") -> dict[str, Any]:
        r = await self.client.get(f"{self.path}{what}", params={"min_position": self.position}, headers=self.agent)
        assert r.status == 200, await r.text()
        return dict(await r.json())

    async def approvals(self, state: str | None = None) -> list[dict[str, Any]]:
        params = {"min_position": self.position, "limit": 500} | ({"state": state} if state else {})
        r = await self.client.get("/v1/approvals", params=params, headers=self.supervisor)
        assert r.status == 200, await r.text()
        return [a for a in (await r.json())["items"] if a["case_id"] == self.case_id]

    async def queued_for_approval(self) -> bool:
        r = await self.client.get("/v1/queues/approvals/items", params={"min_position": self.position, "limit": 500},
                                  headers=self.supervisor)
        assert r.status == 200, await r.text()
        return any(i["case_id"] == self.case_id for i in (await r.json())["items"])


def problem_rule(answer: dict[str, Any]) -> str:
    return str(answer["type"]).rsplit("/", 1)[-1]


async def test_a_waiver_above_the_limit_answers_202_and_waits_in_the_approvals_queue(client, auth) -> None:
    desk = await Desk(client, auth).open()
    asked = await desk.waive()
    assert [e["type"] for e in asked["events"]] == ["ApprovalRequested"] and asked["approval_id"]
    view = await desk.get()
    assert view["liability_waivers"] == [] and not view["disputes"][0]["liability_waived"]
    [approval] = view["approvals"]
    assert (approval["approval_id"], approval["state"], approval["amount"], approval["limit"]) == (
        asked["approval_id"], "pending", jpy("190000"), jpy("100000"))
    [waiting] = [p for p in view["handoff"]["pending"] if p["kind"] == "approval"]
    assert "LUXE BAGS" in waiting["text"] and "K. Takano" in waiting["text"] and waiting["due_at"]
    entry = (await desk.get("/timeline"))["entries"][-1]
    assert entry["kind"] == "approval_requested" and "waiting for a supervisor's approval" in entry["text"]
    assert await desk.queued_for_approval()
    [listed] = await desk.approvals("pending")
    assert (listed["kind"], listed["requested_by"]["name"], listed["command"]["note"]) == (
        "liability_waiver", "K. Takano", "confirmed fraud at LUXE BAGS")


async def test_another_supervisor_approves_and_the_handoff_and_timeline_name_both(client, auth) -> None:
    desk = await Desk(client, auth).open()
    approval_id = (await desk.waive())["approval_id"]
    answer = await desk.decide(approval_id)
    assert [e["type"] for e in answer["events"]] == ["ApprovalGranted", "CustomerLiabilityWaived"]
    assert (answer["approval_id"], answer["state"]) == (approval_id, "approved")
    view = await desk.get()
    [waiver] = view["liability_waivers"]
    assert (waiver["approved_by"]["name"], waiver["requested_by"]["name"]) == ("M. Sato", "K. Takano")
    promised = next(p for p in view["handoff"]["promised"] if p["kind"] == "liability_waiver")
    assert "approved by M. Sato, requested by K. Takano" in promised["text"]
    decided = next(p for p in view["handoff"]["decisions"] if p["kind"] == "approval_granted")
    assert "approved by M. Sato, requested by K. Takano" in decided["text"]
    assert not [p for p in view["handoff"]["pending"] if p["kind"] == "approval"]
    waived = next(e for e in (await desk.get("/timeline"))["entries"] if e["kind"] == "customer_liability_waived")
    assert "approved by M. Sato (fraud), requested by K. Takano (fraud)" in waived["text"]
    assert not await desk.queued_for_approval()
    [approved] = await desk.approvals("approved")
    assert approved["decided_by"]["name"] == "M. Sato" and approved["decision_note"] == "checked the alert"


async def test_an_approved_credit_is_granted_on_its_dispute_naming_both(client, auth) -> None:
    desk = await Desk(client, auth).open()
    approval_id = (await desk.credit())["approval_id"]
    answer = await desk.decide(approval_id)
    assert [e["type"] for e in answer["events"]] == ["ApprovalGranted", "ProvisionalCreditGranted"]
    [credit] = (await desk.get())["disputes"][0]["provisional_credits"]
    assert (credit["amount"], credit["approved_by"]["name"], credit["requested_by"]["name"]) == (
        jpy("190000"), "M. Sato", "K. Takano")
    granted = next(e for e in (await desk.get("/timeline"))["entries"] if e["kind"] == "provisional_credit_granted")
    assert "approved by M. Sato (fraud), requested by K. Takano (fraud)" in granted["text"]


async def test_below_or_at_the_limit_the_agent_grants_at_once(client, auth) -> None:
    desk = await Desk(client, auth).open()
    answer = await desk.credit("100000", status=200)
    assert [e["type"] for e in answer["events"]] == ["ProvisionalCreditGranted"] and "approval_id" not in answer


async def test_the_requester_approving_their_own_request_is_409_same_person(client, auth) -> None:
    desk = await Desk(client, auth).open()
    supervisor_working = auth(role="supervisor", name="M. Sato", sub=f"sup-{uuid.uuid4().hex[:8]}")
    approval_id = (await desk.waive(headers=supervisor_working))["approval_id"]
    refused = await desk.decide(approval_id, headers=supervisor_working, status=409)
    assert problem_rule(refused) == "same-person"
    assert (await desk.get())["approvals"][0]["state"] == "pending"  # refused: nothing recorded
    await desk.decide(approval_id)  # another supervisor may


async def test_a_rejection_gives_nothing_and_a_second_decision_is_409(client, auth) -> None:
    desk = await Desk(client, auth).open()
    approval_id = (await desk.waive())["approval_id"]
    answer = await desk.decide(approval_id, "reject", note="the customer was at the shop")
    assert [e["type"] for e in answer["events"]] == ["ApprovalRejected"] and answer["state"] == "rejected"
    view = await desk.get()
    assert view["liability_waivers"] == [] and view["approvals"][0]["state"] == "rejected"
    refused = next(p for p in view["handoff"]["decisions"] if p["kind"] == "approval_rejected")
    assert "refused by M. Sato, requested by K. Takano" in refused["text"]
    again = await desk.decide(approval_id, headers=auth(role="supervisor"), status=409)
    assert problem_rule(again) == "approval-already-decided"
    assert not await desk.queued_for_approval()


async def test_an_approval_for_a_dispute_resolved_meanwhile_is_409_naming_the_rule(client, auth) -> None:
    desk = await Desk(client, auth).open()
    approval_id = (await desk.waive())["approval_id"]
    await desk.post(f"{desk.path}/disputes/{desk.dispute}/resolve", {"outcome": "rejected", "note": "merchant won"},
                    desk.agent)
    refused = await desk.decide(approval_id, status=409)
    assert problem_rule(refused) == "dispute-already-resolved"
    assert (await desk.get())["liability_waivers"] == []


async def test_an_approve_after_72_hours_is_409_approval_expired_and_the_expiry_is_recorded(client, auth) -> None:
    desk = await Desk(client, auth).open()
    approval_id = (await desk.waive())["approval_id"]
    later = datetime.now(UTC) + timedelta(hours=72, minutes=1)
    client.app[CASES].clock = lambda: later
    refused = await desk.decide(approval_id, status=409)
    assert problem_rule(refused) == "approval-expired"
    history = await client.get(f"{desk.path}/history", headers=desk.supervisor)
    expired = [e for e in (await history.json())["events"] if e["type"] == "ApprovalExpired"]
    assert len(expired) == 1 and expired[0]["actor"]["role"] == "system"
    desk.position = expired[0]["position"]
    view = await desk.get()
    assert view["approvals"][0]["state"] == "expired" and view["liability_waivers"] == []
    assert not await desk.queued_for_approval()
    again = await desk.decide(approval_id, "reject", status=409)
    assert problem_rule(again) == "approval-already-decided"


async def test_the_sweep_expires_what_waited_72_hours_and_the_queue_empties(client, auth) -> None:
    desk = await Desk(client, auth).open()
    approval_id = (await desk.credit())["approval_id"]
    assert await desk.queued_for_approval()
    cases = client.app[CASES]
    await sweep_expired(cases, client.app[POOL])  # (other tests' may be due by now; this one is not)
    assert (await desk.approvals("pending"))[0]["approval_id"] == approval_id
    cases.clock = lambda: datetime.now(UTC) + timedelta(hours=73)
    assert await sweep_expired(cases, client.app[POOL]) >= 1
    r = await client.get(f"{desk.path}/history", headers=desk.supervisor)
    last = (await r.json())["events"][-1]
    assert last["type"] == "ApprovalExpired"
    desk.position = last["position"]
    assert not await desk.queued_for_approval()
    [expired] = await desk.approvals("expired")
    assert expired["approval_id"] == approval_id and expired["decided_by"]["id"] == "system:approvals"
    view = await desk.get()
    assert view["approvals"][0]["state"] == "expired" and view["disputes"][0]["provisional_credits"] == []
    assert any(d["kind"] == "approval_expired" for d in view["handoff"]["decisions"])


async def test_an_unknown_approval_is_404_and_agents_may_not_list_or_decide(client, auth) -> None:
    desk = await Desk(client, auth).open()
    r = await client.post(f"/v1/approvals/{uuid.uuid4()}/approve", json={"note": "x"}, headers=desk.supervisor)
    assert r.status == 404 and r.headers["Content-Type"].startswith("application/problem+json")
    approval_id = (await desk.waive())["approval_id"]
    for method, path in (("GET", "/v1/approvals"), ("POST", f"/v1/approvals/{approval_id}/approve"),
                         ("POST", f"/v1/approvals/{approval_id}/reject")):
        r = await client.request(method, path, json={"note": "x"} if method == "POST" else None, headers=desk.agent)
        assert r.status == 403, (method, path)
    r = await client.get("/v1/approvals", params={"state": "maybe"}, headers=desk.supervisor)
    assert r.status == 422 and (await r.json())["errors"][0]["field"] == "state"
    r = await client.get("/v1/queues/approvals/items", headers=desk.agent)
    assert r.status == 403  # worked by supervisors


async def test_the_limit_comes_from_the_setting_per_currency(aiohttp_client, auth, settings: Settings,
                                                             database_dsn: str, shared_schema: str) -> None:
    strict = msgspec.structs.replace(settings, approval_limit="JPY:1000")
    client = await aiohttp_client(create_app(strict, dsn=with_schema(database_dsn, shared_schema)))
    desk = await Desk(client, auth).open(disputed="5000")
    assert (await desk.credit("1000", status=200))["credit_id"]
    assert (await desk.credit("1001", status=202))["approval_id"]


@pytest.mark.parametrize("setting", ["JPY", "JPY:ten", "YEN:100", "USD:1.001"])
def test_an_unusable_limit_setting_stops_the_process_saying_why(setting: str, tmp_path: Any) -> None:
    with pytest.raises(SettingsError) as refusal:
        load_settings({"CASEDESK_APPROVAL_LIMIT": setting, "CASEDESK_DATA_DIR": str(tmp_path)})
    assert str(refusal.value).startswith(f"CASEDESK_APPROVAL_LIMIT={setting!r}: ")
