"""Exactly once in effect, with real processes: the sender killed mid-call, the processor down for a while.

After either, every instruction is applied once at the processor (its token
appears once there, and a repeat got the first answer back) and confirmed
once on its case.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from casedesk.services.tokens import issue_token
from tests.effects.processor.processes import SECRET, Effects, open_case_and_suspend


def confirmations_per_token(answers: list[dict[str, object]]) -> Counter[str]:
    return Counter(str(a["token"]) for a in answers if a["type"] == "ProcessorInstructionConfirmed")


async def all_confirmed(effects: Effects, expected: int) -> bool:
    states = await effects.instructions()
    return len(states) == expected and set(states.values()) == {"confirmed"}


async def test_a_sender_killed_after_the_processor_applied_confirms_each_call_once(
        effects: Effects, agent_token: str) -> None:
    await effects.start_sim()
    await effects.start_api()
    effects.start_sender()
    # The processor applies each call, then holds its answer back: the sender dies waiting for it.
    await effects.faults(delay_ms=120_000)
    cases = [await open_case_and_suspend(effects, agent_token, family=n % 2 == 0) for n in range(4)]
    suspensions = sum(len(cards) for _, cards in cases)
    assert suspensions == 6

    async def first_call_of_every_case_applied() -> bool:
        return len(await effects.calls()) == len(cases)  # a case's second call waits for its first answer

    await effects.until("a call of every case applied", first_call_of_every_case_applied)
    applied_before_the_kill = set(await effects.calls())
    assert await effects.recorded_answers() == []  # applied, and not one answer stored yet
    effects.kill_sender()

    await effects.faults(delay_ms=0)
    effects.start_sender()
    await effects.until("every instruction confirmed", lambda: all_confirmed(effects, suspensions))

    calls = await effects.calls()
    instructions = await effects.instructions()
    assert set(calls) == set(instructions)  # every token applied, each once (the processor keys calls by token)
    assert all(c["status"] == 201 and c["body"]["state"] == "SUSPENDED" for c in calls.values())
    for token in applied_before_the_kill:
        assert calls[token]["received"] >= 2  # sent again after the kill: the first answer came back
    assert confirmations_per_token(await effects.recorded_answers()) == {t: 1 for t in instructions}
    for case_id, cards in cases:
        status, view = await effects.api_call("GET", f"/v1/cases/{case_id}", agent_token)
        assert status == 200
        assert [(i["card_id"], i["state"]) for i in view["instructions"]] == [(c, "confirmed") for c in cards]
        for card in cards:
            assert (await effects.processor("GET", f"/cards/{card}"))["state"] == "SUSPENDED"


async def test_the_processor_down_for_a_while_makes_instructions_wait_never_lost_nor_doubled(
        effects: Effects, agent_token: str) -> None:
    await effects.start_sim()
    await effects.start_api()
    effects.start_sender()
    cases = [await open_case_and_suspend(effects, agent_token) for _ in range(3)]

    effects.kill_sim()
    # A stream of suspensions while the processor is away (about 4 s): the API keeps answering.
    for _ in range(8):
        cases.append(await open_case_and_suspend(effects, agent_token))
        await asyncio.sleep(0.5)
    states = await effects.instructions()
    assert len(states) == len(cases) and "pending" in states.values()  # waiting, not dropped
    status, dashboard = await effects.api_call(
        "GET", "/v1/dashboard", issue_supervisor_token())
    assert status == 200 and dashboard["processor_instructions"]["in_flight"] >= 1

    await effects.start_sim()
    await effects.until("every instruction confirmed after the outage", lambda: all_confirmed(effects, len(cases)))
    calls = await effects.calls()
    instructions = await effects.instructions()
    assert set(calls) == set(instructions) and len(calls) == len(cases)
    assert confirmations_per_token(await effects.recorded_answers()) == {t: 1 for t in instructions}
    for _, [card] in cases:
        assert (await effects.processor("GET", f"/cards/{card}"))["state"] == "SUSPENDED"


def issue_supervisor_token() -> str:
    return issue_token(SECRET, sub="sup-1", name="Y. Kato", role="supervisor", departments=["fraud"])
