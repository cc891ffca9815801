"""Deadline clocks over HTTP: GET clocks, the case view, the deadlines queue and history as of T.

Every time sent is relative to now (tests/clock.py), so no test depends on today's date.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient

from casedesk.services.settings import SettingsError, load_settings
from tests.api.conftest import new_case_body
from tests.api.own_database import jp_database, policy_app, us_database  # noqa: F401 (fixtures)
from tests.clock import from_now

INBOUND = {"direction": "inbound", "channel": "phone", "department": "fraud"}


class Desk:
    """One agent working one case over HTTP, keeping the last position for read-your-writes."""

    def __init__(self, client: TestClient, headers: dict[str, str]) -> None:
        self.client, self.headers, self.position, self.path, self.contact = client, headers, 0, "", ""

    async def open(self, product: str = "credit", network: str = "visa") -> Desk:
        card = {"card_id": "card-p", "last4": "4242", "network": network, "kind": "primary", "product": product}
        opened = await self.do("/v1/cases", new_case_body(cards=[card], contact=INBOUND), 201)
        self.path, self.contact = f"/v1/cases/{opened['case_id']}", opened["contact_id"]
        await self.do("/identity-checks", {"contact_id": self.contact, "method": "knowledge_based", "passed": True,
                                           "factors": ["date_of_birth"]})
        return self

    async def do(self, path: str, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
        r = await self.client.post(path if path.startswith("/v1") else self.path + path, json=body,
                                   headers=self.headers)
        answer = await r.json()
        assert r.status == status, answer
        self.position = answer.get("position", self.position)
        return answer

    async def dispute(self, transaction_date: date, **flags: bool) -> str:
        body = {"contact_id": self.contact, "transaction_id": f"tx-{uuid.uuid4().hex[:6]}", "merchant": "WEBTEL",
                "amount": {"amount": "19.95", "currency": "USD"}, "reason_code": "10.4", "network": "visa",
                "transaction_date": transaction_date.isoformat(), **flags}
        return str((await self.do("/disputes", body, 201))["dispute_id"])

    async def get(self, suffix: str = "", **query: str) -> dict[str, Any]:
        r = await self.client.get(self.path + suffix, headers=self.headers,
                                  params={"min_position": str(self.position), **query})
        answer = await r.json()
        assert r.status == 200, answer
        return answer

    async def clocks(self) -> dict[str, dict[str, Any]]:
        return {c["rule"]: c for c in (await self.get("/clocks"))["clocks"]}


def days_ago(days: int) -> date:
    return (datetime.now(UTC) - timedelta(days=days)).date()


@pytest.fixture
async def client(aiohttp_client: Any, tmp_path: Any, jp_database: str) -> TestClient:  # noqa: F811
    """The app under the default policy, jp."""
    return await aiohttp_client(policy_app(tmp_path, jp_database, "jp"))


@pytest.fixture
async def us_client(aiohttp_client: Any, tmp_path: Any, us_database: str) -> TestClient:  # noqa: F811
    """The app under CASEDESK_CLOCK_POLICY=us."""
    return await aiohttp_client(policy_app(tmp_path, us_database, "us"))


# --- jp (the default policy) -----------------------------------------------------------


async def test_a_dispute_within_120_days_meets_the_visa_filing_limit_in_get_clocks_and_the_case_view(
        client, auth) -> None:
    desk, transaction_date = await Desk(client, auth()).open(), days_ago(30)
    await desk.dispute(transaction_date)
    answer = await desk.get("/clocks")
    [clock] = answer["clocks"]
    assert (clock["clock"], clock["rule"], clock["calendar"], clock["state"]) == (
        "network_filing", "visa_fraud_filing_limit", "calendar", "met")
    assert clock["source"].startswith("Visa Core Rules")
    assert clock["started_by_event"] == answer["version"]  # the dispute started it
    started = datetime.fromisoformat(clock["started_at"]).astimezone(ZoneInfo("Asia/Tokyo"))
    assert (started.date(), started.hour) == (transaction_date, 0)  # the transaction's day began, in Japan
    assert (await desk.get())["clocks"] == answer["clocks"]


async def test_a_dispute_after_120_days_breaches_the_filing_limit(client, auth) -> None:
    desk = await Desk(client, auth()).open()
    await desk.dispute(days_ago(130))
    clock = (await desk.clocks())["visa_fraud_filing_limit"]
    assert clock["state"] == "breached" and clock["met_at"] is not None


async def test_a_promised_callback_runs_until_it_is_made(client, auth) -> None:
    desk = await Desk(client, auth()).open()
    callback = await desk.do("/callbacks", {"due_at": from_now(hours=2), "phone": "registered", "reason": "decision",
                                            "department": "fraud"}, 201)
    running = (await desk.clocks())["callback_promise"]
    assert (running["state"], running["callback_id"]) == ("running", callback["callback_id"])
    await desk.do(f"/callbacks/{callback['callback_id']}/complete", {"note": "told"})
    assert (await desk.clocks())["callback_promise"]["state"] == "met"


async def test_a_promised_callback_is_paused_while_identity_is_locked_and_resumes_due_later(client, auth) -> None:
    desk = await Desk(client, auth()).open()
    await desk.do("/callbacks", {"due_at": from_now(hours=2), "phone": "registered", "reason": "decision",
                                 "department": "fraud"}, 201)
    promised = datetime.fromisoformat((await desk.clocks())["callback_promise"]["due_at"])
    for _ in range(3):  # the third failed check locks identity checks
        await desk.do("/identity-checks", {"contact_id": desk.contact, "method": "knowledge_based", "passed": False,
                                           "factors": ["date_of_birth"]})
    paused = (await desk.clocks())["callback_promise"]
    assert (paused["state"], paused["due_at"]) == ("paused", promised.isoformat().replace("+00:00", "Z"))
    locked_at = datetime.fromisoformat(paused["paused_at"])
    view = await desk.get()
    assert [c["state"] for c in view["clocks"]] == ["paused"]
    await desk.do("/identity-unlock", {"reason": "verified at the branch"}, 403)  # a supervisor's to do

    supervisor = Desk(client, auth(role="supervisor"))
    supervisor.path, supervisor.position = desk.path, desk.position
    before = datetime.now(UTC)
    unlocked = await supervisor.do("/identity-unlock", {"reason": "verified at the branch"})
    after = datetime.now(UTC)
    desk.position = unlocked["position"]
    running = (await desk.clocks())["callback_promise"]
    assert running["state"] == "running" and "paused_at" not in running
    # Due later by the time it was paused: from the lock to the unlock.
    due = datetime.fromisoformat(running["due_at"])
    assert promised + (before - locked_at) <= due <= promised + (after - locked_at)


async def test_the_deadlines_queue_holds_cases_due_within_48_hours_earliest_first(client, auth) -> None:
    agent = auth()
    due: dict[str, str] = {}
    for hours in (30, 2, 49):
        desk = await Desk(client, agent).open()
        await desk.do("/callbacks", {"due_at": from_now(hours=hours), "phone": "registered", "reason": "r",
                                     "department": "fraud"}, 201)
        due[desk.path.rsplit("/", 1)[1]] = f"{hours}h"
    r = await client.get("/v1/queues/deadlines/items", headers=agent,
                         params={"min_position": str(desk.position), "limit": "500"})
    items = [i for i in (await r.json())["items"] if i["case_id"] in due]
    assert [due[i["case_id"]] for i in items] == ["2h", "30h"]  # 49 h away: not yet
    assert items[0]["due_at"] < items[1]["due_at"]


async def test_a_claim_from_deadlines_takes_the_case_due_soonest(client, auth) -> None:
    agent = auth()
    desk = await Desk(client, agent).open()
    await desk.do("/callbacks", {"due_at": from_now(hours=0.5), "phone": "registered", "reason": "r",
                                 "department": "fraud"}, 201)
    r = await client.get("/v1/queues/deadlines/items", headers=agent,
                         params={"min_position": str(desk.position), "limit": "500"})
    items = (await r.json())["items"]
    assert desk.path.rsplit("/", 1)[1] in [i["case_id"] for i in items]
    r = await client.post("/v1/queues/deadlines/claim", headers=agent)
    claimed = await r.json()
    assert r.status == 200, claimed
    assert claimed["case_id"] == items[0]["case_id"]


async def test_history_as_of_a_moment_shows_the_clocks_as_they_stood_then(client, auth) -> None:
    desk = await Desk(client, auth()).open()
    callback = await desk.do("/callbacks", {"due_at": from_now(hours=2), "phone": "registered", "reason": "r",
                                            "department": "fraud"}, 201)
    live_then = await desk.get("/clocks")
    await desk.do(f"/callbacks/{callback['callback_id']}/complete", {"note": "told"})
    auditor = auth(role="auditor")
    events = (await (await client.get(f"{desk.path}/history", headers=auditor)).json())["events"]
    scheduled = next(e for e in events if e["type"] == "CallbackScheduled")["recorded_at"]
    r = await client.get(f"{desk.path}/history?as_of={quote(scheduled)}", headers=auditor)
    assert (await r.json())["state"]["clocks"] == live_then["clocks"]  # running, as the agent saw it
    r = await client.get(f"{desk.path}/history", headers=auditor)
    assert [c["state"] for c in (await r.json())["state"]["clocks"]] == ["met"]


async def test_a_running_clock_read_after_its_due_time_is_breached(client, auth) -> None:
    desk = await Desk(client, auth()).open()
    await desk.do("/callbacks", {"due_at": from_now(hours=2), "phone": "registered", "reason": "r",
                                 "department": "fraud"}, 201)
    later = quote(from_now(hours=3))
    r = await client.get(f"{desk.path}/history?as_of={later}", headers=auth(role="auditor"))
    assert [c["state"] for c in (await r.json())["state"]["clocks"]] == ["breached"]


async def test_a_transaction_date_in_the_future_is_refused_with_the_rule_name(client, auth) -> None:
    desk = await Desk(client, auth()).open()
    body = {"contact_id": desk.contact, "transaction_id": "tx-f", "merchant": "WEBTEL", "network": "visa",
            "amount": {"amount": "1", "currency": "USD"}, "reason_code": "10.4",
            "transaction_date": (date.today() + timedelta(days=5)).isoformat()}
    problem = await desk.do("/disputes", body, 409)
    assert problem["type"].endswith("transaction-date-in-future")


async def test_a_dispute_through_the_network_stages_runs_the_pre_arbitration_clock_and_ends_resolved(
        client, auth) -> None:
    desk = await Desk(client, auth()).open()
    dispute = await desk.dispute(days_ago(10))
    for stage in ("filed", "representment"):
        await desk.do(f"/disputes/{dispute}/stages", {"stage": stage, "network_reference": "VROL-7", "note": stage})
    view = await desk.get()
    [shown] = view["disputes"]
    assert (shown["stage"], [s["stage"] for s in shown["stages"]]) == ("representment", ["filed", "representment"])
    assert (await desk.clocks())["visa_pre_arbitration_limit"]["state"] == "running"
    await desk.do(f"/disputes/{dispute}/stages", {"stage": "lost", "note": "merchant's proof holds"})
    [shown] = (await desk.get())["disputes"]
    assert (shown["status"], shown["outcome"], shown["stage"]) == ("resolved", "rejected", "lost")
    assert (await desk.clocks())["visa_pre_arbitration_limit"]["state"] == "met"
    problem = await desk.do(f"/disputes/{dispute}/stages", {"stage": "arbitration", "note": "late"}, 409)
    assert problem["type"].endswith("dispute-already-resolved")


async def test_the_dashboard_and_metrics_count_clocks_at_risk_and_met_late_per_rule(client, auth) -> None:
    desk = await Desk(client, auth()).open()
    await desk.do("/callbacks", {"due_at": from_now(hours=2), "phone": "registered", "reason": "r",
                                 "department": "fraud"}, 201)
    await desk.dispute(days_ago(130))
    await desk.get()  # the projection has written this case's clocks
    r = await client.get("/v1/dashboard", headers=auth(role="supervisor"))
    risks = {c["rule"]: c for c in (await r.json())["clocks"]}
    assert risks["callback_promise"]["at_risk"] >= 1
    assert risks["visa_fraud_filing_limit"]["met_late"] >= 1
    text = await (await client.get("/metrics")).text()
    assert 'casedesk_clocks{rule="callback_promise",standing="at_risk"}' in text


# --- us ---------------------------------------------------------------------------------


async def test_under_us_a_debit_dispute_runs_regulation_e_clocks_and_a_credit_one_regulation_z(
        us_client, auth) -> None:
    debit = await Desk(us_client, auth()).open(product="debit")
    await debit.dispute(days_ago(3), point_of_sale=True)
    clocks = await debit.clocks()
    assert set(clocks) == {"visa_fraud_filing_limit", "reg_e_provisional_credit", "reg_e_investigation"}
    assert clocks["reg_e_provisional_credit"]["calendar"] == "business_us"
    notice = datetime.fromisoformat(clocks["reg_e_investigation"]["started_at"])
    due = datetime.fromisoformat(clocks["reg_e_investigation"]["due_at"])
    assert timedelta(days=90) < due - notice <= timedelta(days=91)  # point of sale: 90 days
    credit = await Desk(us_client, auth()).open(product="credit")
    await credit.dispute(days_ago(3))
    assert set(await credit.clocks()) == {"visa_fraud_filing_limit", "reg_z_acknowledgment", "reg_z_resolution"}


async def test_under_us_telling_the_result_meets_regulation_e_results_clock(us_client, auth) -> None:
    desk = await Desk(us_client, auth()).open(product="debit")
    dispute = await desk.dispute(days_ago(3))
    await desk.do(f"/disputes/{dispute}/resolve", {"outcome": "upheld", "note": "refunded"})
    clocks = await desk.clocks()
    assert (clocks["reg_e_investigation"]["state"], clocks["reg_e_results_told"]["state"]) == ("met", "running")
    await desk.do("/customer-notices", {"channel": "letter", "subject": "investigation_result",
                                        "summary": "refunded in full"})
    assert (await desk.clocks())["reg_e_results_told"]["state"] == "met"
    timeline = await desk.get("/timeline")
    assert timeline["entries"][-1]["kind"] == "customer_notified"


async def test_a_withdrawn_dispute_stops_its_clocks(us_client, auth) -> None:
    desk = await Desk(us_client, auth()).open(product="debit")
    dispute = await desk.dispute(days_ago(3))
    await desk.do(f"/disputes/{dispute}/resolve", {"outcome": "withdrawn", "note": "customer recognised it"})
    states = {rule: c["state"] for rule, c in (await desk.clocks()).items()}
    assert states == {"visa_fraud_filing_limit": "met", "reg_e_provisional_credit": "stopped",
                      "reg_e_investigation": "stopped"}


# --- configuration --------------------------------------------------------------------------


def test_an_unknown_clock_policy_is_refused_naming_the_known_ones(tmp_path: Any) -> None:
    with pytest.raises(SettingsError, match=r"CASEDESK_CLOCK_POLICY.*expected one of jp, us"):
        load_settings({"CASEDESK_CLOCK_POLICY": "eu", "CASEDESK_DATA_DIR": str(tmp_path)})
    assert load_settings({"CASEDESK_DATA_DIR": str(tmp_path)}).clock_policy == "jp"


def test_the_server_refuses_to_start_under_an_unknown_clock_policy(tmp_path: Any) -> None:
    env = {**os.environ, "CASEDESK_CLOCK_POLICY": "eu", "CASEDESK_DATA_DIR": str(tmp_path)}
    casedesk = str(Path(sys.executable).parent / "casedesk")
    done = subprocess.run([casedesk, "serve", "--port", "0"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "CASEDESK_CLOCK_POLICY" in done.stderr and "jp, us" in done.stderr

