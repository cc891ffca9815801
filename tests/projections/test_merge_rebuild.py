"""Merges and unmerges in the case_files projection: live equals a rebuild from zero, whatever the batches.

The survivor's stored view carries what the absorbed case owes (read from the
absorbed case's file when the survivor's CaseMerged is folded); that is a fold
of the log like any other, so a rebuild in batches of any size writes the same rows.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import partial
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from casedesk.domain import decisions as d
from casedesk.domain.values import Card, ContactStart, Customer, Money
from casedesk.projections.case_files import CaseFiles
from casedesk.projections.runner import ProjectionRunner, rebuild
from casedesk.services.case_service import CaseService
from casedesk.services.store.database import create_pool
from casedesk.services.store.event_mapper import CaseEventMapper
from casedesk.services.store.event_store import EventStore
from casedesk.services.store.migrations import migrate
from tests.projections.helpers import AGENT, REGISTERED, all_rows, drain, running, wait_until_caught_up


@pytest.fixture
async def own_pool(database_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """A database of its own (the projection's advisory lock is per database)."""
    name = f"merges_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(database_dsn)
    await admin.execute(f"CREATE DATABASE {name}")
    pool = await create_pool(urlunsplit(urlsplit(database_dsn)._replace(path=f"/{name}")), min_size=1, max_size=10)
    async with pool.acquire() as conn:
        await migrate(conn)
    yield pool
    await pool.close()
    await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    await admin.close()


async def open_case(cases: CaseService, customer_n: int, last4: str) -> tuple[uuid.UUID, uuid.UUID]:
    contact = ContactStart(contact_id=uuid.uuid4(), direction="inbound", channel="phone", phone=REGISTERED,
                           department="fraud")
    customer = Customer(customer_id=f"c{customer_n}", name_masked="T••• Y•••••", name_key=f"nk{customer_n}",
                        phone=REGISTERED)
    opened = await cases.open(AGENT, partial(
        d.open_case, case_id=uuid.uuid4(), customer=customer,
        cards=(Card(card_id=f"p{last4}", last4=last4, network="visa", kind="primary"),),
        reason="unrecognized_charge", channel="phone", summary="two calls", contact=contact))
    return opened.case.id, contact.contact_id


async def owing(cases: CaseService, case_id: uuid.UUID, contact_id: uuid.UUID, n: int) -> None:
    """A verified contact, a dispute and a promised callback: what a survivor carries."""
    for step in (
        partial(d.check_identity, contact_id=contact_id, method="knowledge_based", passed=True,
                factors=("date_of_birth",)),
        partial(d.dispute_charge, contact_id=contact_id, dispute_id=uuid.uuid4(), transaction_id=f"t{n}",
                merchant="WEBTEL", amount=Money(amount="19.95", currency="USD"), reason_code="10.4", network="visa",
                transaction_date=(datetime.now(UTC) - timedelta(days=3)).date()),
        partial(d.schedule_callback, callback_id=uuid.uuid4(), due_at=datetime.now(UTC) + timedelta(hours=3),
                phone=None, reason="the outcome", department="fraud"),
    ):
        await cases.change(AGENT, case_id, step)


def note(text: str) -> partial[object]:
    return partial(d.add_handoff_note, note_id=uuid.uuid4(), text=text, for_department=None, pinned=False)


async def merge(cases: CaseService, absorbed: uuid.UUID, survivor: uuid.UUID) -> None:
    def decide(a, s, *, actor, at, first_position):  # type: ignore[no-untyped-def]
        return d.merge_case(a, s, actor=actor, at=at, reason="called twice", absorbed_position=first_position)
    await cases.change_pair(AGENT, absorbed, survivor, decide)


async def unmerge(cases: CaseService, survivor: uuid.UUID, absorbed: uuid.UUID) -> None:
    def decide(s, a, *, actor, at, first_position):  # type: ignore[no-untyped-def]
        return d.unmerge_case(s, a, actor=actor, at=at, reason="two incidents")
    await cases.change_pair(AGENT, survivor, absorbed, decide)


async def write_merges(cases: CaseService, pairs: int) -> list[uuid.UUID]:
    """Pairs of cases of one customer: every pair merged; every other pair unmerged again; notes between."""
    ids = []
    for n in range(pairs):
        survivor, _ = await open_case(cases, n, "4242")
        absorbed, contact = await open_case(cases, n, f"{5000 + n}")
        ids += [survivor, absorbed]
        await owing(cases, absorbed, contact, n)
        await cases.change(AGENT, survivor, note("before"))
        await merge(cases, absorbed, survivor)
        await cases.change(AGENT, survivor, note("while merged"))
        if n % 2:
            await unmerge(cases, survivor, absorbed)
            await cases.change(AGENT, absorbed, note("after"))
        if n % 4 == 3:  # merged again after the unmerge
            await merge(cases, absorbed, survivor)
    return ids


async def test_live_read_models_equal_a_rebuild_after_merges_and_unmerges(own_pool: asyncpg.Pool) -> None:
    store = EventStore(own_pool)
    live = ProjectionRunner(store, own_pool, [CaseFiles()])
    async with running(live):
        ids = await write_merges(CaseService(store, CaseEventMapper()), 8)
        await wait_until_caught_up(live, "case_files")
    before = await all_rows(own_pool, ids)
    carried = await own_pool.fetch(
        "SELECT view FROM case_files WHERE case_id = ANY($1::uuid[]) AND convert_from(view, 'UTF8') LIKE '%\"merged_cases\":[{%'", ids)
    assert len(carried) == 4 + 2  # the pairs merged (0, 2, 4, 6) and merged again (3, 7)
    queued = await own_pool.fetch("SELECT DISTINCT case_id FROM queue_items WHERE queue = 'callbacks_due'"
                                  " AND case_id = ANY($1::uuid[])", ids)
    assert len(queued) == 8  # one per pair: the survivor while merged, else the case that owes it

    for batch in (1, 3, 20_000):  # every split of a merge's two events between batches
        projection = CaseFiles()
        await rebuild(live, projection)
        await drain(ProjectionRunner(store, own_pool, [projection], batch=batch), projection)
        assert await all_rows(own_pool, ids) == before, f"batch {batch}"
    await store.close()
