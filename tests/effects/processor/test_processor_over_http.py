"""Decisions reach the card processor (a real `casedesk processor-sim` process) and come back as case events.

The API app runs the sender in its own loop here (CASEDESK_PROCESSOR_INSTRUCTIONS=in-process);
test_exactly_once_in_effect.py runs it as the process serve starts.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from casedesk.services.http.app import create_app
from casedesk.services.settings import Settings
from casedesk.services.tokens import issue_token
from tests.effects.processor.processes import PASSWORD, SECRET, USER, Effects

AGENT = {"Authorization": "Bearer " + issue_token(SECRET, sub="agent-3", name="K. Takano", role="agent",
                                                  departments=["fraud"])}
SUPERVISOR = {"Authorization": "Bearer " + issue_token(SECRET, sub="sup-3", name="Y. Kato", role="supervisor",
                                                       departments=["fraud"])}


@pytest.fixture
async def api(aiohttp_client: Any, effects: Effects, tmp_path: Any) -> AsyncIterator[TestClient]:
    await effects.start_sim()
    settings = Settings(token_secret=SECRET, pii_key="effects-pii", data_dir=tmp_path, pool_min=1, pool_max=8,
                        processor_instructions="in-process", processor_url=effects.sim_url, processor_user=USER,
                        processor_password=PASSWORD, processor_retry_max=0.3)
    yield await aiohttp_client(create_app(settings, dsn=effects.dsn))


async def post(api: TestClient, path: str, body: dict[str, Any], expect: int = 200) -> Any:
    r = await api.post(path, json=body, headers=AGENT)
    answer = await r.json()
    assert r.status == expect, answer
    return answer


async def open_case(api: TestClient, *cards: dict[str, Any]) -> tuple[str, str]:
    """A case opened in an inbound call whose caller passed an identity check: (case id, contact id)."""
    opened = await post(api, "/v1/cases", {
        "customer": {"customer_id": f"c-{uuid.uuid4().hex[:8]}", "name": "Taro Yamada",
                     "registered_phone": "+81 90 1234 5678"},
        "cards": list(cards or [card("p", "4242")]), "reason": "unrecognized_charge", "channel": "phone",
        "summary": "does not know the charge",
        "contact": {"direction": "inbound", "channel": "phone", "department": "fraud"}}, 201)
    case_id, contact_id = opened["case_id"], opened["contact_id"]
    await post(api, f"/v1/cases/{case_id}/identity-checks", {
        "contact_id": contact_id, "method": "knowledge_based", "passed": True, "factors": ["date_of_birth"]})
    return case_id, contact_id


def card(card_id: str, last4: str, **more: Any) -> dict[str, Any]:
    return {"card_id": card_id, "last4": last4, "network": "visa", "kind": "primary", **more}


async def view(api: TestClient, case_id: str) -> Any:
    r = await api.get(f"/v1/cases/{case_id}", headers=AGENT)
    assert r.status == 200
    return await r.json()


async def settled(api: TestClient, effects: Effects, case_id: str) -> Any:
    """The case view once no instruction of it waits for the processor any more."""
    async def answered() -> bool:
        instructions = (await view(api, case_id))["instructions"]
        return bool(instructions) and all(i["state"] != "pending" for i in instructions)

    await effects.until("the processor's answers recorded", answered)
    return await view(api, case_id)


async def timeline_texts(api: TestClient, case_id: str) -> list[str]:
    r = await api.get(f"/v1/cases/{case_id}/timeline", headers=AGENT)
    return [e["text"] for e in (await r.json())["entries"]]


async def test_a_suspension_is_confirmed_on_the_case_with_the_processors_reference(
        api: TestClient, effects: Effects) -> None:
    case_id, _ = await open_case(api)
    await post(api, f"/v1/cases/{case_id}/cards/p/suspend", {"reason": "fraud", "include_linked": False})
    [instruction] = (await settled(api, effects, case_id))["instructions"]
    assert (instruction["instruction"], instruction["card_id"], instruction["state"]) == ("suspend_card", "p",
                                                                                          "confirmed")
    assert instruction["confirmed_at"] and instruction["processor_reference"] == instruction["token"]
    assert (await effects.processor("GET", "/cards/p"))["state"] == "SUSPENDED"
    blocked = [t for t in await timeline_texts(api, case_id) if "at the processor" in t]
    assert len(blocked) == 1
    assert re.fullmatch(rf"\d\d:\d\d Card •••• 4242 blocked at the processor at \d\d:\d\d:\d\d "
                        rf"\(ref {instruction['token']}\)", blocked[0])
    assert [i for i in (await view(api, case_id))["handoff"]["pending"] if i["kind"] == "processor_instruction"] == []


async def test_a_replacement_creates_the_new_card_before_the_old_one_is_terminated(
        api: TestClient, effects: Effects) -> None:
    case_id, contact_id = await open_case(api, card("old", "4242"))
    await post(api, f"/v1/cases/{case_id}/cards/old/suspend", {"reason": "skimmed", "include_linked": False})
    reissued = await post(api, f"/v1/cases/{case_id}/cards/old/reissue", {
        "contact_id": contact_id, "delivery": "mail", "expedite": True,
        "fee": {"amount": {"amount": "0", "currency": "JPY"}, "bearer": "issuer"}})
    new_card = reissued["new_card"]["card_id"]
    instructions = (await settled(api, effects, case_id))["instructions"]
    assert [(i["instruction"], i["card_id"], i["state"]) for i in instructions] == [
        ("suspend_card", "old", "confirmed"), ("issue_replacement", new_card, "confirmed"),
        ("terminate_card", "old", "confirmed")]
    assert instructions[2]["token"] == instructions[1]["token"] + "-2"
    calls = sorted((await effects.calls()).values(), key=lambda c: (c["at"], c["token"]))
    assert [(c["path"], c["body"].get("state")) for c in calls] == [
        ("/cardtransitions", "SUSPENDED"), ("/cards", None), ("/cardtransitions", "TERMINATED")]
    assert (await effects.processor("GET", "/cards/old"))["state"] == "TERMINATED"
    assert (await effects.processor("GET", f"/cards/{new_card}"))["state"] == "ACTIVE"


async def test_a_payment_stop_puts_a_spend_control_on_every_card_in_use(api: TestClient, effects: Effects) -> None:
    case_id, contact_id = await open_case(api, card("p", "4242"), card("f", "4243", kind="family",
                                                                        primary_card_id="p"))
    await post(api, f"/v1/cases/{case_id}/payment-stops", {"contact_id": contact_id, "scope": "all_overseas"})
    instructions = (await settled(api, effects, case_id))["instructions"]
    assert [(i["instruction"], i["card_id"], i["state"]) for i in instructions] == [
        ("stop_payments", "p", "confirmed"), ("stop_payments", "f", "confirmed")]
    for card_id in ("p", "f"):
        [control] = (await effects.processor("GET", f"/cards/{card_id}"))["spend_controls"]
        assert control["scope"] == "all_overseas"


async def test_a_refusal_puts_the_case_first_in_processor_failures(api: TestClient, effects: Effects) -> None:
    await effects.faults(reject_next=1, reject_status=422, reject_code="card_unknown",
                         reject_reason="no card with this token")
    case_id, _ = await open_case(api)
    await post(api, f"/v1/cases/{case_id}/cards/p/suspend", {"reason": "fraud", "include_linked": False})
    [instruction] = (await settled(api, effects, case_id))["instructions"]
    assert (instruction["state"], instruction["status"], instruction["code"]) == ("rejected", 422, "card_unknown")
    assert "The processor refused to block card •••• 4242: 422 card_unknown — no card with this token" in " ".join(
        await timeline_texts(api, case_id))
    r = await api.get("/v1/queues/processor_failures/items?limit=500", headers=AGENT)
    items = (await r.json())["items"]
    [mine] = [i for i in items if i["case_id"] == case_id]
    assert mine["priority"] == 1
    assert "processor_refused" in [i["kind"] for i in (await view(api, case_id))["handoff"]["pending"]]


async def test_a_call_worth_retrying_is_sent_again_until_the_processor_applies_it(
        api: TestClient, effects: Effects) -> None:
    await effects.faults(fail_next=3, fail_status=429, retry_after=0)
    case_id, _ = await open_case(api)
    await post(api, f"/v1/cases/{case_id}/cards/p/suspend", {"reason": "fraud", "include_linked": False})
    [instruction] = (await settled(api, effects, case_id))["instructions"]
    assert instruction["state"] == "confirmed"
    assert (await effects.calls())[instruction["token"]]["received"] == 1  # the refusals for now applied nothing
    conn_attempts = await _attempts(effects, instruction["token"])
    assert conn_attempts == 3


async def test_a_waiting_instruction_shows_in_the_handoff_with_its_age_and_on_the_dashboard(
        api: TestClient, effects: Effects) -> None:
    await effects.faults(delay_ms=60_000)  # applied, but the answer does not come back during this test
    case_id, _ = await open_case(api)
    await post(api, f"/v1/cases/{case_id}/cards/p/suspend", {"reason": "fraud", "include_linked": False})
    [waiting] = [i for i in (await view(api, case_id))["handoff"]["pending"] if i["kind"] == "processor_instruction"]
    assert waiting["text"] == "Block card •••• 4242: not yet confirmed by the processor"
    assert waiting["since"] and waiting["age_seconds"] >= 0

    async def in_flight() -> bool:
        r = await api.get("/v1/dashboard", headers=SUPERVISOR)
        return (await r.json())["processor_instructions"]["in_flight"] == 1

    await effects.until("the dashboard counts the instruction in flight", in_flight)
    metrics = await (await api.get("/metrics")).text()
    assert "casedesk_processor_instructions_in_flight 1.0" in metrics.splitlines()


async def _attempts(effects: Effects, token: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(effects.dsn)
    try:
        return int(await conn.fetchval("SELECT attempts FROM processor_instructions WHERE token = $1", token))
    finally:
        await conn.close()


async def test_an_answer_lost_after_the_processor_applied_is_asked_for_again_and_recorded_once(
        api: TestClient, effects: Effects) -> None:
    await effects.faults(drop_next=1)  # applied, then the connection drops before the answer
    case_id, _ = await open_case(api)
    await post(api, f"/v1/cases/{case_id}/cards/p/suspend", {"reason": "fraud", "include_linked": False})
    [instruction] = (await settled(api, effects, case_id))["instructions"]
    assert instruction["state"] == "confirmed"
    assert (await effects.calls())[instruction["token"]]["received"] == 2
    answers = [a for a in await effects.recorded_answers() if a["token"] == instruction["token"]]
    assert [a["type"] for a in answers] == ["ProcessorInstructionConfirmed"]
