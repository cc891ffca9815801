"""Helpers for projection tests: write a realistic mix of cases, compare tables."""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import partial

import asyncpg

from casedesk.domain import decisions as d
from casedesk.domain.processor_instructions import instructions_for
from casedesk.domain.values import Actor, Card, ContactStart, Customer, Money, PhoneNumber
from casedesk.projections.case_files import CaseFiles
from casedesk.projections.runner import Projection, ProjectionRunner
from casedesk.services.case_service import CaseService
from casedesk.services.tokens import Principal

AGENT = Principal(sub="agent-7", name="K. Takano", role="agent", departments=("fraud",), exp=2**40)
SUPERVISOR = Principal(sub="sup-1", name="M. Sato", role="supervisor", departments=("fraud",), exp=2**40)
REGISTERED = PhoneNumber(masked="•••• 5678", key="k-registered")


async def write_mixed_cases(cases: CaseService, count: int, seed: int = 7) -> list[uuid.UUID]:
    """Open cases and run a varied mix of commands on them, some concurrently."""
    rng = random.Random(seed)
    ids: list[uuid.UUID] = []
    for n in range(count):
        contact = ContactStart(contact_id=uuid.uuid4(), direction="inbound", channel="phone",
                               phone=REGISTERED, department="fraud")
        cards = (Card(card_id="p", last4="4242", network="visa", kind="primary"),
                 Card(card_id="f", last4="4243", network="visa", kind="family", primary_card_id="p"))
        customer = Customer(customer_id=f"c{n}", name_masked="T••• Y•••••", name_key=f"nk{n}", phone=REGISTERED)
        opened = await cases.open(AGENT, partial(
            d.open_case, case_id=uuid.uuid4(), customer=customer, cards=cards, reason="fraud_alert",
            channel="phone", summary=f"case {n}", amount_at_risk=Money(amount="190000", currency="JPY"),
            contact=contact))
        case_id, contact_id = opened.case.id, contact.contact_id
        ids.append(case_id)
        steps = [
            partial(d.add_handoff_note, note_id=uuid.uuid4(), text=f"note {n}", for_department=None, pinned=rng.random() < 0.5),
            partial(d.check_identity, contact_id=contact_id, method="knowledge_based", passed=True, factors=("date_of_birth",)),
            partial(d.suspend_card, card_id="f", reason="fraud", include_linked=rng.random() < 0.5),
            partial(d.escalate, to_department="credit_management", reason="review", priority=rng.randint(1, 5)),
            partial(d.schedule_callback, callback_id=uuid.uuid4(), due_at=datetime.now(UTC) + timedelta(hours=2),
                    phone=None, reason="follow up", department="fraud"),
            partial(d.end_contact, contact_id=contact_id, outcome="connected", summary="talked"),
            partial(d.start_contact, contact_id=uuid.uuid4(), direction="outbound", channel="phone",
                    phone=REGISTERED, department="credit_management", purpose="confirm the charge"),
        ]
        for step in steps[: rng.randint(2, len(steps)) if n % 3 else len(steps)]:
            await cases.change(AGENT, case_id, step)
    await answer_processor_instructions(cases, ids)
    # Racing notes on one case: the store retries the losers on fresh state.
    await asyncio.gather(*[
        cases.change(AGENT, ids[0], partial(d.add_handoff_note, note_id=uuid.uuid4(), text="race",
                                            for_department=None, pinned=False))
        for _ in range(10)
    ])
    return ids


PROCESSOR = Actor(id="system:processor", name="casedesk (card processor link)", role="system", department="fraud")


async def answer_processor_instructions(cases: CaseService, ids: list[uuid.UUID]) -> None:
    """The processor's answers, as the sender records them: confirmed, or every fourth case refused."""
    for n, case_id in enumerate(ids):
        events = [cases.mapper.to_domain_event(s) for s in await cases.store.read_stream(case_id)]
        for instruction in [i for e in events for i in instructions_for(e)][:1]:
            asked = dict(instruction=instruction.instruction, token=instruction.token, card_id=instruction.card_id)
            decide = (partial(d.reject_instruction, **asked, status=422, code="card_unknown", reason="no such card")
                      if n % 4 == 0 else
                      partial(d.confirm_instruction, **asked, processor_reference=instruction.token,
                              applied_at=datetime.now(UTC)))
            await cases.record_for_system(PROCESSOR, case_id, decide)
            await cases.record_for_system(PROCESSOR, case_id, decide)  # a second answer records nothing


@contextlib.asynccontextmanager
async def running(*runners: ProjectionRunner) -> AsyncIterator[None]:
    """Start runners and always stop them (a failed test must not hang on their connections)."""
    for runner in runners:
        await runner.start()
    try:
        yield
    finally:
        for runner in runners:
            await runner.stop()


async def drain(runner: ProjectionRunner, projection: Projection) -> None:
    while await runner.catch_up(projection):
        pass


async def wait_until_caught_up(runner: ProjectionRunner, name: str, within: float = 10.0) -> None:
    goal = await runner.store.max_notification_id() or 0
    async with asyncio.timeout(within):
        while runner.positions.get(name, 0) < goal:
            await asyncio.sleep(0.01)


async def row_estimates(pool: asyncpg.Pool, tables: tuple[str, ...]) -> dict[str, float] | None:
    """Each table's row estimate (pg_class.reltuples): -1 until ANALYZE (or VACUUM) has looked at it.
    None before PostgreSQL 14, where a table never analyzed shows 0, as an empty one does."""
    if await pool.fetchval("SELECT current_setting('server_version_num')::int") < 140000:
        return None
    rows = await pool.fetch("SELECT relname, reltuples FROM pg_class WHERE oid = ANY($1::regclass[])", list(tables))
    return {r["relname"]: r["reltuples"] for r in rows}


async def analyzed_with_rows(pool: asyncpg.Pool, table: str) -> bool:
    """Whether ANALYZE has found rows in the table (taken as so before PostgreSQL 14: it cannot be told)."""
    estimates = await row_estimates(pool, (table,))
    return estimates is None or estimates[table] > 0


def contents_of(table: str) -> str:
    """A query of what `table` holds, the same however batches split the work (see CaseFiles.contents)."""
    return CaseFiles.contents.get(table, f"SELECT * FROM {table}")


async def rows(pool: asyncpg.Pool, table: str, key: str, ids: list[uuid.UUID]) -> list[tuple]:
    records = await pool.fetch(f"SELECT * FROM ({contents_of(table)}) t WHERE {key} = ANY($1::uuid[])"
                               " ORDER BY t::text", ids)
    return [tuple(r.values()) for r in records]


CASE_TABLES = ("case_files", "timeline_parts", "queue_items", "case_customers", "outbound_attempts", "case_approvals")


async def all_rows(pool: asyncpg.Pool, ids: list[uuid.UUID]) -> dict[str, list[tuple]]:
    """Every read-model row of these cases, table by table, in a stable order."""
    found = {table: await rows(pool, table, "case_id", ids) for table in CASE_TABLES}
    found["queue_activity"] = [tuple(r.values()) for r in await pool.fetch(
        "SELECT * FROM queue_activity t ORDER BY t::text")]
    return found
