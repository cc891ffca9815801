"""A claim's hold on a case: kept when the case is taken, let go when the claim fails."""

from __future__ import annotations

import asyncio
import uuid
from functools import partial

import pytest

from casedesk.domain import decisions as d
from casedesk.domain.values import Card, Customer, Money, PhoneNumber
from casedesk.services.case_service import CaseService
from casedesk.services.http.app_keys import CASES, POOL
from casedesk.services.queue_claims import claim_next
from casedesk.services.tokens import Principal
from tests.api.test_queues import queue_ids

BOSS = Principal(sub="sup", name="M. Sato", role="supervisor", departments=("fraud",), exp=2**40)


class DatabaseGoneDuringAssign(CaseService):
    """Finds the case, then fails writing CaseAssigned as a lost connection would."""

    async def change(self, *args: object, **kwargs: object) -> object:  # type: ignore[override]
        raise ConnectionResetError("connection lost while assigning")


async def test_a_claim_that_fails_to_assign_lets_the_case_go_at_once(client, auth) -> None:
    dept = f"d_{uuid.uuid4().hex[:8]}"
    cases = client.app[CASES]
    opened = await cases.open(BOSS, partial(
        d.open_case, case_id=uuid.uuid4(), reason="unrecognized_charge", channel="phone", summary="held",
        customer=Customer(customer_id="c1", name_masked="X", name_key="x", phone=PhoneNumber(masked="•", key="k")),
        cards=(Card(card_id="p", last4="1234", network="visa", kind="primary"),),
        amount_at_risk=Money(amount="5", currency="USD"), contact=None))
    escalated = await cases.change(BOSS, opened.case.id, partial(d.escalate, to_department=dept, reason="r",
                                                                 priority=3))
    agent = auth(departments=(dept,), name="R. Mori")
    assert await queue_ids(client, agent, dept, escalated.positions[-1]) == [str(opened.case.id)]

    failing = DatabaseGoneDuringAssign(cases.store, cases.mapper)
    claimer = Principal(sub="agent-x", name="A. Gent", role="agent", departments=(dept,), exp=2**40)
    with pytest.raises(ConnectionResetError):
        await claim_next(client.app[POOL], failing, claimer, dept)
    assert await client.app[POOL].fetchval(
        "SELECT until <= now() FROM claim_holds WHERE case_id = $1", opened.case.id)

    r = await client.post(f"/v1/queues/{dept}/claim", headers=agent)  # not held for ten minutes
    assert r.status == 200, await r.text()
    assert (await r.json())["case_id"] == str(opened.case.id)


async def test_a_claim_waits_out_a_queue_row_locked_for_a_moment_instead_of_answering_empty(client, auth) -> None:
    """Given one waiting case whose queue row a projection batch holds locked (it is rewriting it),
    when an agent claims, then the claim looks again until the lock goes and gets the case (not 204)."""
    dept = f"d_{uuid.uuid4().hex[:8]}"
    cases = client.app[CASES]
    opened = await cases.open(BOSS, partial(
        d.open_case, case_id=uuid.uuid4(), reason="unrecognized_charge", channel="phone", summary="locked row",
        customer=Customer(customer_id="c1", name_masked="X", name_key="x", phone=PhoneNumber(masked="•", key="k")),
        cards=(Card(card_id="p", last4="1234", network="visa", kind="primary"),),
        amount_at_risk=Money(amount="5", currency="USD"), contact=None))
    escalated = await cases.change(BOSS, opened.case.id, partial(d.escalate, to_department=dept, reason="r",
                                                                 priority=3))
    agent = auth(departments=(dept,), name="R. Mori")
    assert await queue_ids(client, agent, dept, escalated.positions[-1]) == [str(opened.case.id)]

    pool = client.app[POOL]
    locked, release = asyncio.Event(), asyncio.Event()

    async def projection_batch() -> None:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT 1 FROM queue_items WHERE case_id = $1 FOR UPDATE", opened.case.id)
            locked.set()
            await release.wait()

    batch = asyncio.create_task(projection_batch())
    await locked.wait()
    claim = asyncio.create_task(client.post(f"/v1/queues/{dept}/claim", headers=agent))
    await asyncio.sleep(0.1)
    assert not claim.done()  # it waits for the row rather than answering "nothing to claim"
    release.set()
    await batch
    r = await claim
    assert r.status == 200, await r.text()
    assert (await r.json())["case_id"] == str(opened.case.id)
