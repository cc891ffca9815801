"""A rebuild (or a new version's build) folds old releases: it must not drop the hold of a claim of today."""

from __future__ import annotations

import uuid
from functools import partial

import asyncpg

from casedesk.domain import decisions as d
from casedesk.domain.values import Card, Customer, Money, PhoneNumber
from casedesk.projections.case_files import CaseFiles
from casedesk.projections.runner import ProjectionRunner, rebuild
from casedesk.services.case_service import CaseService
from casedesk.services.queue_claims import claim_next
from casedesk.services.store.event_mapper import CaseEventMapper
from casedesk.services.store.event_store import EventStore
from casedesk.services.tokens import Principal
from tests.projections.helpers import SUPERVISOR, drain, running, wait_until_caught_up


def agent(sub: str, dept: str) -> Principal:
    return Principal(sub=sub, name="R. Mori", role="agent", departments=(dept,), exp=2**40)


async def long_hold(pool: asyncpg.Pool, case_id: uuid.UUID) -> str | None:
    """The agent whose claim still holds the case for minutes, if any."""
    value: str | None = await pool.fetchval(
        "SELECT agent_id FROM claim_holds WHERE case_id = $1 AND until > now() + interval '60 s'", case_id)
    return value


async def test_a_rebuild_folding_an_old_release_keeps_the_hold_of_a_later_claim(empty_pool: asyncpg.Pool) -> None:
    store = EventStore(empty_pool)
    cases = CaseService(store, CaseEventMapper())
    live = ProjectionRunner(store, empty_pool, [CaseFiles()])
    dept = f"d_{uuid.uuid4().hex[:8]}"
    async with running(live):
        # Given a case claimed by one agent, released, and claimed again by another
        opened = await cases.open(SUPERVISOR, partial(
            d.open_case, case_id=uuid.uuid4(), reason="unrecognized_charge", channel="phone", summary="held",
            customer=Customer(customer_id="c1", name_masked="X", name_key="x", phone=PhoneNumber(masked="•", key="k")),
            cards=(Card(card_id="p", last4="1234", network="visa", kind="primary"),),
            amount_at_risk=Money(amount="5", currency="USD"), contact=None))
        case_id = opened.case.id
        await cases.change(SUPERVISOR, case_id, partial(d.escalate, to_department=dept, reason="r", priority=3))
        await wait_until_caught_up(live, "case_files")
        first = await claim_next(empty_pool, cases, agent("agent-a", dept), dept)
        assert first is not None and first.outcome.case.id == case_id
        await cases.change(agent("agent-a", dept), case_id, partial(d.release, note="wrong desk"))
        await wait_until_caught_up(live, "case_files")
        again = await claim_next(empty_pool, cases, agent("agent-b", dept), dept)
        assert again is not None and again.outcome.case.id == case_id
        await wait_until_caught_up(live, "case_files")
    assert await long_hold(empty_pool, case_id) == "agent-b"

    # When the case files are rebuilt a batch per event, so one batch ends with the case released, waiting
    projection = CaseFiles()
    await rebuild(live, projection)
    await drain(ProjectionRunner(store, empty_pool, [projection], batch=1), projection)

    # Then the later claim's hold stands: only a hold taken before the release is the release's to drop
    assert await long_hold(empty_pool, case_id) == "agent-b"
    await store.close()
