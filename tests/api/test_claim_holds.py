"""A claim's hold on a case: kept when the case is taken, let go when the claim fails."""

from __future__ import annotations

import asyncio
import uuid
from functools import partial

import pytest

from casedesk.domain import decisions as d
from casedesk.domain.values import Card, Customer, Money, PhoneNumber
from casedesk.projections.work_queues import hold_briefly, hold_next
from casedesk.services import queue_claims
from casedesk.services.case_service import CaseService
from casedesk.services.http.app_keys import CASES, POOL, TURNS
from casedesk.services.queue_claims import claim_next
from casedesk.services.tokens import Principal
from tests.api.test_queues import queue_ids

BOSS = Principal(sub="sup", name="M. Sato", role="supervisor", departments=("fraud",), exp=2**40)


class DatabaseGoneDuringAssign(CaseService):
    """Finds the case, then fails writing CaseAssigned as a lost connection would."""

    async def change(self, *args: object, **kwargs: object) -> object:  # type: ignore[override]
        raise ConnectionResetError("connection lost while assigning")


async def _one_waiting_case(client, auth) -> tuple[str, uuid.UUID, dict[str, str]]:
    """A department queue holding one waiting case: (queue, case id, an agent's headers)."""
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
    return dept, opened.case.id, agent


async def test_a_claim_that_fails_to_assign_lets_the_case_go_at_once(client, auth) -> None:
    dept, case_id, agent = await _one_waiting_case(client, auth)
    cases = client.app[CASES]

    failing = DatabaseGoneDuringAssign(cases.store, cases.mapper)
    claimer = Principal(sub="agent-x", name="A. Gent", role="agent", departments=(dept,), exp=2**40)
    with pytest.raises(ConnectionResetError):
        await claim_next(client.app[POOL], failing, claimer, dept)
    assert await client.app[POOL].fetchval(
        "SELECT until <= now() FROM claim_holds WHERE case_id = $1", case_id)

    r = await client.post(f"/v1/queues/{dept}/claim", headers=agent)  # not held for ten minutes
    assert r.status == 200, await r.text()
    assert (await r.json())["case_id"] == str(case_id)


async def test_a_claim_waits_out_a_queue_row_locked_for_a_moment_instead_of_answering_empty(
        client, auth, monkeypatch: pytest.MonkeyPatch) -> None:
    """Given one waiting case whose queue row a projection batch holds locked (it is rewriting it),
    when an agent claims, then the claim looks again until the lock goes and gets the case (not 204)."""
    dept, case_id, agent = await _one_waiting_case(client, auth)
    pool = client.app[POOL]
    locked, release, saw_locked = asyncio.Event(), asyncio.Event(), asyncio.Event()
    real_hold_next = queue_claims.hold_next

    async def watched(*args: object) -> object:
        row = await real_hold_next(*args)
        if row["candidate"] is None and row["only_locked"]:
            saw_locked.set()
        return row

    monkeypatch.setattr(queue_claims, "hold_next", watched)

    async def projection_batch() -> None:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT 1 FROM queue_items WHERE case_id = $1 FOR UPDATE", case_id)
            locked.set()
            await release.wait()

    batch = asyncio.create_task(projection_batch())
    try:
        await locked.wait()
        claim = asyncio.create_task(client.post(f"/v1/queues/{dept}/claim", headers=agent))
        await asyncio.wait_for(saw_locked.wait(), 30)  # the claim met the locked row...
        assert not claim.done()  # ...and looks again rather than answering "nothing to claim"
        assert client.app[TURNS].quick_in_flight == 0  # pausing: long work does not wait for it meanwhile
    finally:
        release.set()
        await batch
    r = await claim
    assert r.status == 200, await r.text()
    assert (await r.json())["case_id"] == str(case_id)


async def test_a_held_case_is_not_taken_for_a_locked_one(client, auth) -> None:
    """A case held by another claim is not claimable, and not a locked row to wait for: the queue is empty."""
    dept, case_id, _ = await _one_waiting_case(client, auth)
    pool = client.app[POOL]
    first = await hold_next(pool, dept, "agent-a", 600)
    assert first["held"] == case_id
    second = await hold_next(pool, dept, "agent-b", 600)
    assert second["candidate"] is None and second["only_locked"] is False
    await hold_briefly(pool, case_id, "agent-a", 0)  # the hold lapses
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT 1 FROM queue_items WHERE case_id = $1 FOR UPDATE", case_id)
        third = await hold_next(pool, dept, "agent-b", 600)  # another connection: the row is locked here
    assert third["candidate"] is None and third["only_locked"] is True


async def test_claims_racing_for_the_head_of_a_queue_move_on_in_their_own_statement(pool) -> None:
    """Given a queue of 120 waiting cases and 20 claims taking them at once, each on its own connection,
    when every claim asks until the queue is empty,
    then no claim ever comes back having lost its case to another claim (each passes over a case
    held meanwhile, as its row lock sees it), and every case is held exactly once."""
    queue = f"d_{uuid.uuid4().hex[:8]}"
    cases = [uuid.uuid4() for _ in range(120)]
    await pool.execute(
        "INSERT INTO queue_items (queue, case_id, priority, reason, due_at, enqueued_at)"
        " SELECT $1, c, 3, 'escalated', NULL, now() - n * interval '1 s'"
        " FROM unnest($2::uuid[]) WITH ORDINALITY AS u(c, n)", queue, cases)
    held: list[uuid.UUID] = []
    lost = 0

    async def agent(n: int) -> None:
        nonlocal lost
        async with pool.acquire() as conn:
            while True:
                row = await hold_next(conn, queue, f"agent-{n}", 600)
                if row["candidate"] is None:
                    if not row["only_locked"]:
                        return
                    continue  # a row locked by a claim in flight: ask again
                if row["held"] is None:
                    lost += 1
                    continue
                held.append(row["held"])

    try:
        await asyncio.gather(*(agent(n) for n in range(20)))
    finally:
        await pool.execute("DELETE FROM queue_items WHERE queue = $1", queue)
        await pool.execute("DELETE FROM claim_holds WHERE case_id = ANY($1::uuid[])", cases)
    assert sorted(held) == sorted(cases)
    assert lost == 0


async def test_letting_a_hold_go_waits_for_a_batch_on_its_queue_row_without_a_deadlock(pool) -> None:
    """Given a case held by a claim whose assignment failed, and a projection batch that has reached the
    case's queue rows (locked) and will drop its hold next, when the claim lets its hold go meanwhile,
    then it waits for the batch, which goes on and commits: neither meets a deadlock (in the other
    order, holds first, each waited for the other)."""
    queue, case_id = f"d_{uuid.uuid4().hex[:8]}", uuid.uuid4()
    await pool.execute("INSERT INTO queue_items (queue, case_id, priority, reason, due_at, enqueued_at)"
                       " VALUES ($1, $2, 3, 'escalated', NULL, now())", queue, case_id)
    assert (await hold_next(pool, queue, "agent-a", 600))["held"] == case_id
    try:
        async with pool.acquire() as batch, pool.acquire() as claim:
            async with batch.transaction():
                await batch.execute("SELECT 1 FROM queue_items WHERE case_id = $1 FOR UPDATE", case_id)
                letting_go = asyncio.create_task(hold_briefly(claim, case_id, "agent-a", 0))
                await asyncio.sleep(0.3)
                assert not letting_go.done()  # waiting for the batch's row
                await batch.execute("DELETE FROM claim_holds WHERE case_id = $1", case_id)  # not blocked
            await asyncio.wait_for(letting_go, 10)
    finally:
        await pool.execute("DELETE FROM queue_items WHERE case_id = $1", case_id)
        await pool.execute("DELETE FROM claim_holds WHERE case_id = $1", case_id)
