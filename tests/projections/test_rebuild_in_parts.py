"""A rebuild in parts (several processes, split by case) writes what a one-worker rebuild writes."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import asyncpg
import msgspec
import pytest

from casedesk.domain import decisions as d
from casedesk.domain.events import CaseEvent
from casedesk.domain.values import Card, ContactStart, Customer, Money
from casedesk.projections.case_files import CaseFiles
from casedesk.services import merchant_flags
from casedesk.services.case_service import CaseService
from casedesk.services.rebuild import rebuild_projections
from casedesk.services.rebuild_in_parts import PartFailedError, rebuild_case_files_in_parts
from casedesk.services.store.event_mapper import CaseEventMapper
from casedesk.services.store.event_store import EventStore
from casedesk.services.store.tracking import read_position
from tests.number_settings import check_number_setting
from tests.projections.helpers import (
    AGENT,
    REGISTERED,
    SUPERVISOR,
    all_rows,
    analyzed_with_rows,
    write_mixed_cases,
)
from tests.projections.test_merge_rebuild import write_merges

MERCHANT = "SHADY ONLINE GAMES"
MERCHANT_TABLES = ("merchant_flags", "merchant_disputes", "case_clocks")


async def disputed_case(cases: CaseService, n: int) -> uuid.UUID:
    """A case whose customer disputes a charge from MERCHANT."""
    contact = ContactStart(contact_id=uuid.uuid4(), direction="inbound", channel="phone", phone=REGISTERED,
                           department="fraud")
    customer = Customer(customer_id=f"parts-{n}", name_masked="T••• Y•••••", name_key=f"pk{n}", phone=REGISTERED)
    opened = await cases.open(AGENT, partial(
        d.open_case, case_id=uuid.uuid4(), customer=customer,
        cards=(Card(card_id="p", last4="4242", network="visa", kind="primary"),), reason="unrecognized_charge",
        channel="phone", summary=f"dispute {n}", amount_at_risk=Money(amount="5000", currency="JPY"), contact=contact))
    case_id = opened.case.id
    await cases.change(AGENT, case_id, partial(d.check_identity, contact_id=contact.contact_id,
                                               method="knowledge_based", passed=True, factors=("date_of_birth",)))
    await cases.change(AGENT, case_id, partial(
        d.dispute_charge, contact_id=contact.contact_id, dispute_id=uuid.uuid4(), transaction_id=f"tx-{n}",
        merchant=MERCHANT, amount=Money(amount="5000", currency="JPY"), reason_code="10.4", network="visa",
        transaction_date=(datetime.now(UTC) - timedelta(days=3)).date()))
    return case_id


async def everything(pool: asyncpg.Pool, ids: list[uuid.UUID]) -> dict[str, list[tuple]]:
    found = await all_rows(pool, ids)
    for table in MERCHANT_TABLES:
        found[table] = [tuple(r.values()) for r in await pool.fetch(f"SELECT * FROM {table} t ORDER BY t::text")]
    return found


async def test_two_processes_rebuild_what_one_worker_rebuilds(empty_pool: asyncpg.Pool, database_dsn: str) -> None:
    store = EventStore(empty_pool)
    cases = CaseService(store, CaseEventMapper())
    mapper = CaseEventMapper()
    # Given cases of every kind, a dispute naming a merchant before it is flagged and one after
    ids = await write_mixed_cases(cases, 24)
    before_flag = await disputed_case(cases, 1)
    await merchant_flags.flag(store, mapper, SUPERVISOR, MERCHANT, "chargeback ring")
    after_flag = await disputed_case(cases, 2)
    ids += [before_flag, after_flag, *[await disputed_case(cases, n) for n in range(3, 9)]]
    schema = await empty_pool.fetchval("SELECT current_schema()")
    head = await store.max_notification_id()

    # When the case files are rebuilt by one worker, and then by two processes split by case
    await rebuild_projections(empty_pool, ["case_files"], [CaseFiles()])
    one = await everything(empty_pool, ids)
    assert await analyzed_with_rows(empty_pool, "case_files")  # analyzed once filled
    await rebuild_projections(empty_pool, ["case_files"], [CaseFiles()], workers=2, dsn=database_dsn, schema=schema)
    two = await everything(empty_pool, ids)

    # Then the tables are the same, row for row, and the flag counted only from where it stands in the log
    assert len(one["case_files"]) == len(ids) and one["merchant_disputes"] and one["merchant_flags"]
    assert two == one
    flagged = {r["case_id"]: msgspec.json.decode(bytes(r["view"]))["flagged_merchants"] for r in
               await empty_pool.fetch("SELECT case_id, view FROM case_files WHERE case_id = ANY($1::uuid[])",
                                      [before_flag, after_flag])}
    assert flagged == {before_flag: [], after_flag: [MERCHANT]}
    assert await read_position(empty_pool, "case_files") == head
    await store.close()


async def test_merges_across_parts_carry_what_the_absorbed_case_owed_at_the_merge(
        empty_pool: asyncpg.Pool, database_dsn: str) -> None:
    """A survivor's CaseMerged takes what the absorbed case owes as it stood then: in parts, the
    absorbed case may be folded by the other process, ahead of the merge or not yet at all."""
    store = EventStore(empty_pool)
    # Given pairs merged, unmerged and merged again, with notes after, so the absorbed case changes later
    ids = await write_merges(CaseService(store, CaseEventMapper()), 16)
    schema = await empty_pool.fetchval("SELECT current_schema()")
    parts = {await empty_pool.fetchval("SELECT (hashtext($1::uuid::text) & 2147483647) % 2", case_id) for case_id in ids}
    assert parts == {0, 1}  # both processes have cases to fold

    # When the case files are rebuilt by one worker, and then by two processes split by case
    await rebuild_projections(empty_pool, ["case_files"], [CaseFiles()])
    one = await everything(empty_pool, ids)
    assert await analyzed_with_rows(empty_pool, "case_files")  # analyzed once filled
    await rebuild_projections(empty_pool, ["case_files"], [CaseFiles()], workers=2, dsn=database_dsn, schema=schema)

    # Then every survivor carries the same owed disputes and callbacks, row for row
    carried = [r for r in one["case_files"] if any(b'"merged_cases":[{' in v for v in r if isinstance(v, bytes))]
    assert len(carried) == 8 + 4  # the pairs merged (even) and merged again (3, 7, 11, 15)
    assert await everything(empty_pool, ids) == one
    await store.close()


async def test_a_part_that_cannot_fold_fails_the_rebuild_and_leaves_no_process(
        empty_pool: asyncpg.Pool, database_dsn: str) -> None:
    store = EventStore(empty_pool)
    await write_mixed_cases(CaseService(store, CaseEventMapper()), 4)
    # When the parts connect where the log is not (a schema that does not exist)
    with pytest.raises(PartFailedError, match=r"part 0: .*case_events"):
        async with empty_pool.acquire() as conn:
            await rebuild_case_files_in_parts(conn, database_dsn, "no_such_schema", CaseFiles(), 2)
    # Then nothing moved: the position stays where it was, and no part's process is left running
    assert await read_position(empty_pool, "case_files") is None
    assert not [p for p in multiprocessing.active_children() if p.name.startswith("casedesk-rebuild-part")]
    await store.close()


def test_a_new_version_is_built_by_one_process_unless_told_otherwise(tmp_path: Path) -> None:
    check_number_setting(tmp_path, "CASEDESK_BUILD_WORKERS", "build_workers", 1, ("2", 2), ("0", "65", "two"))


class SlowCaseFiles(CaseFiles):
    """Case files whose fold of a batch takes a minute: a part that is still folding when its rebuild ends."""

    async def apply(self, conn: asyncpg.Connection, events: Sequence[CaseEvent]) -> None:
        await asyncio.sleep(60)
        await super().apply(conn, events)


async def folding_parts(pool: asyncpg.Pool, since: datetime) -> int:
    """The part processes' sessions begun since `since` (the suite runs one test at a time)."""
    return await pool.fetchval("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'casedesk-rebuild'"
                               " AND datname = current_database() AND backend_start >= $1", since)


async def until_parts_are(pool: asyncpg.Pool, count: int, seconds: float, since: datetime) -> None:
    async with asyncio.timeout(seconds):
        while await folding_parts(pool, since) != count:
            await asyncio.sleep(0.05)


async def test_a_part_that_cannot_connect_names_why(empty_pool: asyncpg.Pool) -> None:
    await write_mixed_cases(CaseService(EventStore(empty_pool), CaseEventMapper()), 2)
    async with empty_pool.acquire() as conn:
        with pytest.raises(PartFailedError, match=r"part 1: ConnectionRefusedError"):
            await rebuild_case_files_in_parts(conn, "postgresql://postgres@127.0.0.1:1/none", None, CaseFiles(), 2)
    assert not [p for p in multiprocessing.active_children() if p.name.startswith("casedesk-rebuild-part")]


async def test_a_cancelled_rebuild_stops_its_parts_at_once(empty_pool: asyncpg.Pool, database_dsn: str) -> None:
    await write_mixed_cases(CaseService(EventStore(empty_pool), CaseEventMapper()), 4)
    schema = await empty_pool.fetchval("SELECT current_schema()")
    since = await empty_pool.fetchval("SELECT now()")

    async def rebuilding() -> None:
        async with empty_pool.acquire() as conn:
            await rebuild_case_files_in_parts(conn, database_dsn, schema, SlowCaseFiles(), 2)

    # Given a rebuild whose two parts are in the middle of a fold
    task = asyncio.create_task(rebuilding())
    await until_parts_are(empty_pool, 2, 30, since)
    # When it is cancelled (a worker told to stop)
    cancelled_at = time.monotonic()
    task.cancel()
    # Then it ends within seconds, not when the parts would have finished (a minute; a wait for them to
    # finish holds the loop, so asyncio.timeout could not tell), and leaves none folding
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert time.monotonic() - cancelled_at < 8
    await until_parts_are(empty_pool, 0, 5, since)
    assert await read_position(empty_pool, "case_files") is None


async def test_parts_end_with_the_process_that_started_them(empty_pool: asyncpg.Pool, database_dsn: str) -> None:
    await write_mixed_cases(CaseService(EventStore(empty_pool), CaseEventMapper()), 4)
    schema = await empty_pool.fetchval("SELECT current_schema()")
    since = await empty_pool.fetchval("SELECT now()")
    script = (
        "import asyncio, sys, asyncpg\n"
        "from casedesk.services.rebuild_in_parts import rebuild_case_files_in_parts\n"
        "from tests.projections.test_rebuild_in_parts import SlowCaseFiles\n"
        "async def main():\n"
        "    conn = await asyncpg.connect(sys.argv[1], server_settings={'search_path': sys.argv[2]})\n"
        "    await rebuild_case_files_in_parts(conn, sys.argv[1], sys.argv[2], SlowCaseFiles(), 2)\n"
        "if __name__ == '__main__':\n"
        "    asyncio.run(main())\n")
    # Given a rebuild in another process, its two parts in the middle of a fold
    rebuild = await asyncio.create_subprocess_exec(sys.executable, "-c", script, database_dsn, schema,
                                                   cwd=Path(__file__).parents[2])
    try:
        await until_parts_are(empty_pool, 2, 30, since)
        # When that process is killed (as a stop's SIGKILL after its grace would)
        rebuild.kill()
        await rebuild.wait()
        # Then its parts end with it: none goes on folding into tables a later build makes again
        await until_parts_are(empty_pool, 0, 10, since)
    finally:
        if rebuild.returncode is None:
            rebuild.kill()
            await rebuild.wait()
