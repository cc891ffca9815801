"""`casedesk erase --resolved-before DATE` (retention) and `casedesk seal-stored` (the sealing epoch)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
from datetime import UTC, date, datetime, time

from casedesk.services.settings import load_settings


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    erase = commands.add_parser(
        "erase", help="retention: erase the personal data of every customer whose cases were all resolved before"
        " DATE (their keys destroyed, CustomerDataErased on each case), with a progress bar")
    erase.add_argument("--resolved-before", type=date.fromisoformat, required=True, metavar="DATE",
                       help="YYYY-MM-DD: cases resolved before this day (UTC) are past retention")
    erase.add_argument("--reason", default=None, help="recorded on each case (default: retention ended)")
    erase.add_argument("--by", help="operator id recorded on the cases (default shell:$USER)")
    erase.add_argument("--name", help="operator name recorded on the cases")
    erase.add_argument("--dry-run", action="store_true", help="only count the customers who would be erased")
    erase.set_defaults(run=_erase)
    seal = commands.add_parser(
        "seal-stored", help="seal personal data stored in the clear before customer keys (once, after upgrading);"
        " recorded as a sealing epoch that `audit verify` checks")
    seal.set_defaults(run=_seal_stored)


def _erase(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from casedesk.domain.values import Actor
    from casedesk.services.case_service import CaseService
    from casedesk.services.privacy.customer_erasure import (
        PRIVACY_DEPARTMENT,
        customers_resolved_before,
        erase_customer,
    )
    from casedesk.services.privacy.customer_keys import CustomerKeys
    from casedesk.services.store.database import create_pool, database_url
    from casedesk.services.store.event_mapper import CaseEventMapper
    from casedesk.services.store.event_store import EventStore
    from casedesk.services.store.migrations import migrate

    settings = load_settings()
    user = getpass.getuser()
    actor = Actor(id=args.by or f"shell:{user}", name=args.name or user, role="admin", department=PRIVACY_DEPARTMENT)
    reason = args.reason or f"retention ended (cases resolved before {args.resolved_before.isoformat()})"

    async def run() -> int:
        pool = await create_pool(database_url(settings), min_size=1, max_size=4)
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
            before = datetime.combine(args.resolved_before, time.min, tzinfo=UTC)
            customers = await customers_resolved_before(pool, before)
            if args.dry_run:
                print(f"{len(customers)} customer(s) past retention")
                return 0
            store = EventStore(pool)
            cases = CaseService(store, CaseEventMapper())
            cases.privacy = keys = CustomerKeys(pool, settings.master_key_or_derived)
            erased = 0
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TextColumn("customers"), TimeRemainingColumn()) as progress:
                task = progress.add_task("erase personal data", total=len(customers))
                for customer_id in customers:
                    done = await erase_customer(cases, keys, actor, customer_id, reason)
                    erased += len(done.cases)
                    progress.advance(task)
            await store.close()
            print(f"{len(customers)} customer(s) erased, on {erased} case(s)")
            return 0
        finally:
            await pool.close()

    return asyncio.run(run())


def _seal_stored(_args: argparse.Namespace) -> int:
    from casedesk.services.privacy.customer_keys import CustomerKeys
    from casedesk.services.privacy.sealing_epoch import seal_stored
    from casedesk.services.store.audit_seal import HeadsFile, key_bytes
    from casedesk.services.store.database import create_pool, database_url
    from casedesk.services.store.migrations import migrate

    settings = load_settings()

    async def run() -> int:
        pool = await create_pool(database_url(settings), min_size=1, max_size=4)
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
            key = key_bytes(settings.audit_key)
            report = await seal_stored(pool, CustomerKeys(pool, settings.master_key_or_derived), key,
                                       HeadsFile(settings.audit_heads_path, key).append)
        finally:
            await pool.close()
        if report.epoch is None:
            print("nothing stored in the clear: no sealing epoch")
        else:
            print(f"sealing epoch {report.epoch}: {report.events} event(s) of {report.streams} case(s) sealed;"
                  " now run `casedesk rebuild` so the read models hold no clear text either")
        return 0

    return asyncio.run(run())
