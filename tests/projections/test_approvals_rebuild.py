"""Four-eyes approvals in the read models: live equals a rebuild from zero, whatever the batches.

Requests approved, rejected, expired (by the sweep, with the service's clock
moved on) and left pending, written while both projections run; then
case_approvals and the case files (views, timelines, the `approvals` queue)
are rebuilt from zero (both are the case_files projection's) in batches of 1, 3 and 20,000 and must match.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from functools import partial

import asyncpg

from casedesk.domain import decisions as d
from casedesk.domain.values import Card, ContactStart, Customer, Money
from casedesk.projections.case_files import CaseFiles
from casedesk.projections.runner import ProjectionRunner, rebuild
from casedesk.services.approvals import sweep_expired
from casedesk.services.case_service import CaseService
from casedesk.services.store.event_mapper import CaseEventMapper
from casedesk.services.store.event_store import EventStore
from tests.projections.helpers import AGENT, REGISTERED, SUPERVISOR, all_rows, drain, running, wait_until_caught_up


async def asked(cases: CaseService, n: int) -> tuple[uuid.UUID, uuid.UUID]:
    """A case whose JPY 190,000 waiver (even n) or credit (odd n) waits for approval; (case, approval)."""
    contact = ContactStart(contact_id=uuid.uuid4(), direction="inbound", channel="phone", phone=REGISTERED,
                           department="fraud")
    customer = Customer(customer_id=f"c{n}", name_masked="T••• Y•••••", name_key=f"nk{n}", phone=REGISTERED)
    opened = await cases.open(AGENT, partial(
        d.open_case, case_id=uuid.uuid4(), customer=customer,
        cards=(Card(card_id="p", last4="4242", network="visa", kind="primary"),), reason="fraud_alert",
        channel="phone", summary="a bag", amount_at_risk=Money(amount="190000", currency="JPY"), contact=contact))
    case_id, dispute_id = opened.case.id, uuid.uuid4()
    for step in (
        partial(d.check_identity, contact_id=contact.contact_id, method="knowledge_based", passed=True,
                factors=("date_of_birth",)),
        partial(d.dispute_charge, contact_id=contact.contact_id, dispute_id=dispute_id, transaction_id=f"t{n}",
                merchant="LUXE BAGS", amount=Money(amount="190000", currency="JPY"), reason_code="10.4",
                network="visa"),
    ):
        await cases.change(AGENT, case_id, step)
    ask = (partial(d.waive_liability, contact_id=contact.contact_id, dispute_id=dispute_id, note="fraud")
           if n % 2 == 0 else
           partial(d.grant_provisional_credit, credit_id=uuid.uuid4(), dispute_id=dispute_id,
                   amount=Money(amount="190000", currency="JPY")))
    outcome = await cases.change(AGENT, case_id, ask)
    return case_id, outcome.events[0].approval_id  # type: ignore[attr-defined]


async def test_live_approvals_equal_a_rebuild_from_zero(empty_pool: asyncpg.Pool) -> None:
    store = EventStore(empty_pool)
    live = ProjectionRunner(store, empty_pool, [CaseFiles()])
    cases = CaseService(store, CaseEventMapper())
    async with running(live):
        made = [await asked(cases, n) for n in range(12)]
        for n, (case_id, approval_id) in enumerate(made):
            if n % 4 == 0:
                await cases.change(SUPERVISOR, case_id, partial(d.approve, approval_id=approval_id, note="ok"))
            elif n % 4 == 1:
                await cases.change(SUPERVISOR, case_id, partial(d.reject_approval, approval_id=approval_id,
                                                                note="not fraud"))
        await wait_until_caught_up(live, "case_files")
        later = datetime.now(UTC) + timedelta(hours=73)
        cases.clock = lambda: later
        assert await sweep_expired(cases, empty_pool) == 6  # those neither approved nor rejected
        for case_id, _ in made[:2]:  # and after the expiry, a request that stays pending
            await cases.change(AGENT, case_id, partial(
                d.grant_provisional_credit, credit_id=uuid.uuid4(),
                dispute_id=uuid.UUID(next(iter((await cases.load(case_id)).disputes))),
                amount=Money(amount="150000", currency="JPY")))
        await wait_until_caught_up(live, "case_files")
    ids = [case_id for case_id, _ in made]
    before = await all_rows(empty_pool, ids)
    states = sorted(r["state"] for r in await empty_pool.fetch("SELECT state FROM case_approvals"))
    assert states == ["approved"] * 3 + ["expired"] * 6 + ["pending"] * 2 + ["rejected"] * 3
    queued = {r[1] for r in before["queue_items"] if r[0] == "approvals"}
    assert len(queued) == 2  # only the cases still waiting for a decision

    for batch in (1, 3, 20_000):  # a request and its decision in one batch, or apart
        projection = CaseFiles()
        await rebuild(live, projection)
        assert await empty_pool.fetchval("SELECT count(*) FROM case_approvals") == 0
        await drain(ProjectionRunner(store, empty_pool, [projection], batch=batch), projection)
        assert await all_rows(empty_pool, ids) == before, f"batch {batch}"
    await store.close()
