"""Clocks are part of the case_files projection: under a policy, live equals a rebuild from zero."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import partial
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from casedesk.domain import decisions as d
from casedesk.domain.clock_policies import POLICIES
from casedesk.domain.values import Card, ContactStart, Customer, Money
from casedesk.projections.case_files import CaseFiles
from casedesk.projections.runner import ProjectionRunner, rebuild
from casedesk.services.case_service import CaseService
from casedesk.services.store.database import create_pool
from casedesk.services.store.event_mapper import CaseEventMapper
from casedesk.services.store.event_store import EventStore
from casedesk.services.store.migrations import migrate
from tests.projections.helpers import AGENT, REGISTERED, all_rows, drain, rows, running, wait_until_caught_up

US = POLICIES["us"]


@pytest.fixture
async def own_pool(database_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a database of its own: the projection's advisory lock is per database, so no
    other run's projection on the shared one can keep this test's from running."""
    name = f"clocks_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(database_dsn)
    await admin.execute(f"CREATE DATABASE {name}")
    pool = await create_pool(urlunsplit(urlsplit(database_dsn)._replace(path=f"/{name}")), min_size=1, max_size=10)
    async with pool.acquire() as conn:
        await migrate(conn)
    yield pool
    await pool.close()
    await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    await admin.close()


async def write_disputed_cases(cases: CaseService, count: int) -> list[uuid.UUID]:
    """Debit and credit cases, each with a dispute; most provisionally credited (every third of those credits
    reversed), the liability waived (pending or final); every other one resolved and the customer told.
    Every third has a callback promised and identity checks locked (its promise paused), every sixth
    unlocked again (the promise running, due later)."""
    ids = []
    for n in range(count):
        contact = ContactStart(contact_id=uuid.uuid4(), direction="inbound", channel="phone", phone=REGISTERED,
                               department="fraud")
        card = Card(card_id="p", last4="4242", network="visa", kind="primary", product=("debit", "credit")[n % 2])
        customer = Customer(customer_id=f"c{n}", name_masked="T••• Y•••••", name_key=f"nk{n}", phone=REGISTERED)
        opened = await cases.open(AGENT, partial(
            d.open_case, case_id=uuid.uuid4(), customer=customer, cards=(card,), reason="unrecognized_charge",
            channel="phone", summary=f"case {n}", contact=contact))
        case_id, dispute_id = opened.case.id, uuid.uuid4()
        ids.append(case_id)
        steps = [
            partial(d.check_identity, contact_id=contact.contact_id, method="knowledge_based", passed=True,
                    factors=("date_of_birth",)),
            partial(d.dispute_charge, contact_id=contact.contact_id, dispute_id=dispute_id, transaction_id=f"t{n}",
                    merchant="WEBTEL", amount=Money(amount="19.95", currency="USD"), reason_code="10.4",
                    network="visa", transaction_date=(datetime.now(UTC) - timedelta(days=n)).date(),
                    point_of_sale=n % 4 == 0),
        ]
        if n % 3 != 2:
            credit_id = uuid.uuid4()
            steps.append(partial(d.grant_provisional_credit, credit_id=credit_id, dispute_id=dispute_id,
                                 amount=Money(amount="10.00", currency="USD")))
            if n % 3 == 1:
                steps.append(partial(d.reverse_provisional_credit, credit_id=credit_id, reason="merchant proved it"))
        steps.append(partial(d.waive_liability, contact_id=contact.contact_id, dispute_id=dispute_id, note="owes nothing",
                             amount=Money(amount="19.95", currency="USD"), finality=("pending", "final")[n % 2]))
        if n % 2 == 0:
            steps += [partial(d.resolve_dispute, dispute_id=dispute_id, outcome="upheld", note="refunded"),
                      partial(d.notify_customer, channel="letter", subject="investigation_result", summary="refunded")]
        if n % 3 == 0:
            steps.append(partial(d.schedule_callback, callback_id=uuid.uuid4(),
                                 due_at=datetime.now(UTC) + timedelta(hours=4), phone=None, reason="decision",
                                 department="fraud"))
            steps += [partial(d.check_identity, contact_id=contact.contact_id, method="knowledge_based",
                              passed=False, factors=("date_of_birth",))] * 3
            if n % 6 == 0:
                steps.append(partial(d.unlock_identity, reason="verified at the branch"))
        for step in steps:
            await cases.change(AGENT, case_id, step)
    return ids


async def test_live_clocks_under_the_us_policy_equal_a_rebuild_from_zero(own_pool: asyncpg.Pool) -> None:
    store = EventStore(own_pool)
    live = ProjectionRunner(store, own_pool, [CaseFiles(policy=US)])
    async with running(live):
        ids = await write_disputed_cases(CaseService(store, CaseEventMapper()), 12)
        await wait_until_caught_up(live, "case_files")
    before = await all_rows(own_pool, ids)
    clocks_before = await rows(own_pool, "case_clocks", "case_id", ids)
    assert clocks_before
    views = [json.loads(v) for v in await own_pool.fetchval(
        "SELECT array_agg(view) FROM case_files WHERE case_id = ANY($1::uuid[])", ids)]
    rules = {c["rule"] for v in views for c in v["clocks"]}
    assert {"reg_e_investigation", "reg_e_results_told", "reg_z_resolution", "visa_fraud_filing_limit"} <= rules
    credits = {c["state"] for v in views for dispute in v["disputes"] for c in dispute["provisional_credits"]}
    assert credits == {"granted", "reversed"}
    assert {w["finality"] for v in views for w in v["liability_waivers"]} == {"pending", "final"}
    promises = [c for v in views for c in v["clocks"] if c["rule"] == "callback_promise"]
    assert {c["state"] for c in promises} == {"paused", "running"}  # locked, and unlocked again

    projection = CaseFiles(policy=US)
    await rebuild(live, projection)
    await drain(ProjectionRunner(store, own_pool, [projection]), projection)
    assert await all_rows(own_pool, ids) == before
    assert await rows(own_pool, "case_clocks", "case_id", ids) == clocks_before
    await store.close()


async def test_a_policy_change_takes_effect_by_rebuilding(own_pool: asyncpg.Pool) -> None:
    store = EventStore(own_pool)
    live = ProjectionRunner(store, own_pool, [CaseFiles()])  # jp
    async with running(live):
        ids = await write_disputed_cases(CaseService(store, CaseEventMapper()), 2)
        await wait_until_caught_up(live, "case_files")

    async def rules() -> set[str]:
        views = await own_pool.fetch("SELECT view FROM case_files WHERE case_id = ANY($1::uuid[])", ids)
        return {c["rule"] for v in views for c in json.loads(v["view"])["clocks"]}

    assert await rules() == {"visa_fraud_filing_limit", "callback_promise"}
    projection = CaseFiles(policy=US)
    await rebuild(live, projection)
    await drain(ProjectionRunner(store, own_pool, [projection]), projection)
    assert "reg_e_provisional_credit" in await rules() and "reg_z_acknowledgment" in await rules()
    await store.close()
