"""`casedesk processor-sim` speaks CONTRACT.md's processor API: basic auth, idempotent by token, faults on request."""

from __future__ import annotations

import aiohttp
import pytest

from tests.effects.processor.processes import Effects


@pytest.fixture
async def sim(effects: Effects) -> Effects:
    await effects.start_sim()
    return effects


def suspension(token: str, card: str = "c-1") -> dict[str, object]:
    return {"token": token, "card_token": card, "state": "SUSPENDED", "reason_code": "fraud_suspected",
            "reason": "fraud", "channel": "FRAUD"}


async def post(sim: Effects, path: str, body: dict[str, object], auth: bool = True) -> tuple[int, dict[str, object]]:
    headers = sim.processor_auth if auth else {}
    async with sim.session.post(sim.sim_url + path, json=body, headers=headers) as r:
        return r.status, await r.json()


async def test_a_call_without_the_credentials_is_refused(sim: Effects) -> None:
    status, answer = await post(sim, "/cardtransitions", suspension("t-1"), auth=False)
    assert status == 401 and answer["error_code"] == "unauthorized"
    assert await sim.calls() == {}


async def test_a_repeated_token_gets_the_first_answer_and_changes_nothing(sim: Effects) -> None:
    first = await post(sim, "/cardtransitions", suspension("t-2"))
    again = await post(sim, "/cardtransitions", {**suspension("t-2"), "state": "ACTIVE"})
    assert first[0] == 201 and again == first
    assert (await sim.processor("GET", "/cards/c-1"))["state"] == "SUSPENDED"
    assert (await sim.calls())["t-2"]["received"] == 2


async def test_a_call_applied_then_dropped_is_answered_when_sent_again(sim: Effects) -> None:
    await sim.faults(drop_next=1)
    with pytest.raises(aiohttp.ClientError):
        await post(sim, "/cardtransitions", suspension("t-3", "c-3"))
    assert (await sim.processor("GET", "/cards/c-3"))["state"] == "SUSPENDED"  # applied all the same
    status, answer = await post(sim, "/cardtransitions", suspension("t-3", "c-3"))
    assert status == 201 and answer["token"] == "t-3"
    assert (await sim.calls())["t-3"]["received"] == 2


async def test_a_failure_on_request_applies_nothing(sim: Effects) -> None:
    await sim.faults(fail_next=1, fail_status=503)
    assert (await post(sim, "/cardtransitions", suspension("t-4", "c-4")))[0] == 503
    assert "t-4" not in await sim.calls()
    assert (await post(sim, "/cardtransitions", suspension("t-4", "c-4")))[0] == 201


@pytest.mark.parametrize("body", [
    {"token": "x" * 37, "card_token": "c", "state": "SUSPENDED", "reason_code": "r", "reason": "r"},
    {"token": "t-5", "card_token": "c", "state": "FROZEN", "reason_code": "r", "reason": "r"},
    {"token": "t-5"},
])
async def test_a_malformed_call_is_refused_for_good(sim: Effects, body: dict[str, object]) -> None:
    status, answer = await post(sim, "/cardtransitions", body)
    assert status == 400 and answer["error_code"] in ("invalid_request", "invalid_token")


async def test_a_terminated_card_takes_no_more_transitions(sim: Effects) -> None:
    assert (await post(sim, "/cardtransitions", {**suspension("t-6", "c-6"), "state": "TERMINATED"}))[0] == 201
    status, answer = await post(sim, "/cardtransitions", {**suspension("t-7", "c-6"), "state": "ACTIVE"})
    assert status == 400 and answer["error_code"] == "card_terminated"
    assert (await sim.calls())["t-7"]["status"] == 400  # a refusal is the token's first answer too
