"""The case_files projection: every read model folded from a case's events.

One fold per case per batch feeds several tables, each defined by its module:
- case_files: the view and timeline, ready to send (case_view, case_file);
- queue_items and queue_activity: the work queues (work_queues);
- case_customers and outbound_attempts: customer lookup (customer_lookup);
- merchant_flags and merchant_disputes: merchant intelligence (merchant_intelligence).
They move together with one tracking position, so a read that waited for
`min_position` sees all of them at that point.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Sequence
from datetime import UTC, tzinfo
from uuid import UUID

import asyncpg
import msgspec

from casedesk.domain import events as ev
from casedesk.domain.merchants import MerchantFlagged
from casedesk.projections.case_file import apply, timeline_of
from casedesk.projections.case_view import CaseFile
from casedesk.projections.customer_lookup import (
    CustomerRow,
    OutboundRow,
    change_customer,
    customer_row,
    outbound_row,
)
from casedesk.projections.handoff import refresh_handoff
from casedesk.projections.merchant_intelligence import MerchantBook
from casedesk.projections.work_queues import queue_rows

_decode_file = msgspec.json.Decoder(CaseFile).decode
_encode = msgspec.json.Encoder().encode


class CaseFiles:
    """Keeps the case files, the work queues and the lookup tables."""

    name = "case_files"
    tables = ("case_files", "queue_items", "queue_activity", "case_customers", "outbound_attempts",
              "merchant_flags", "merchant_disputes")

    def __init__(self, zone: tzinfo = UTC, remembered: int = 20_000) -> None:
        self.zone = zone
        self._remembered: OrderedDict[UUID, CaseFile] = OrderedDict()
        self._remember_at_most = remembered

    async def _files(self, conn: asyncpg.Connection, ids: list[UUID]) -> dict[UUID, CaseFile | None]:
        """The stored files of these cases: from memory when the stored version matches, else decoded.

        Only this process writes the projection while it holds its lock, but a
        rolled-back batch or a rebuild elsewhere leaves memory ahead or stale,
        hence the version check against the table.
        """
        stored = {r[0]: r[1] for r in await conn.fetch(
            "SELECT case_id, version FROM case_files WHERE case_id = ANY($1::uuid[])", ids)}
        files: dict[UUID, CaseFile | None] = {}
        missing = []
        for case_id, version in stored.items():
            known = self._remembered.get(case_id)
            if known is not None and known.view.version == version:
                files[case_id] = known
            else:
                missing.append(case_id)
        if missing:
            for r in await conn.fetch("SELECT case_id, file FROM case_files WHERE case_id = ANY($1::uuid[])", missing):
                files[r[0]] = _decode_file(r[1])
        return files

    def _remember(self, files: list[CaseFile]) -> None:
        for file in files:
            self._remembered[file.view.case_id] = file
            self._remembered.move_to_end(file.view.case_id)
        while len(self._remembered) > self._remember_at_most:
            self._remembered.popitem(last=False)

    async def apply(self, conn: asyncpg.Connection, events: Sequence[ev.CaseEvent]) -> None:
        ids = list({e.originator_id for e in events if isinstance(e, ev.CaseEvent)})
        files = await self._files(conn, ids)
        customers = {
            r["case_id"]: CustomerRow(**dict(r))
            for r in await conn.fetch("SELECT * FROM case_customers WHERE case_id = ANY($1::uuid[])", ids)
        }
        outbound: list[OutboundRow] = []
        activity: Counter[tuple[str, object, str]] = Counter()
        merchants = await MerchantBook.load(conn, list(events))
        for event in events:
            if isinstance(event, MerchantFlagged):
                merchants.flag(event)
                continue
            if not isinstance(event, ev.CaseEvent):
                continue  # a breach record: its outreach cases carry what the read side needs
            current = files.get(event.originator_id)
            if current is not None and event.originator_version <= current.view.version:
                continue  # already folded
            file = files[event.originator_id] = apply(current, event, self.zone)
            merchants.mark(file.view, event)
            if isinstance(event, ev.CaseOpened):
                customers[event.originator_id] = customer_row(event)
            elif event.originator_id in customers:
                change_customer(customers[event.originator_id], event)
            row = outbound_row(event)
            if row is not None:
                outbound.append(row)
            hour = event.timestamp.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
            if isinstance(event, ev.CaseAssigned) and event.queue:
                activity[(event.queue, hour, "claims")] += 1
            elif isinstance(event, ev.CaseResolved) and file.view.claimed_from:
                activity[(file.view.claimed_from, hour, "resolutions")] += 1
        changed = [f for f in files.values() if f is not None]
        for file in changed:
            refresh_handoff(file.view)
        await _write_files(conn, changed)
        await _write_queues(conn, changed)
        await _write_lookup(conn, list(customers.values()), outbound)
        await _write_activity(conn, activity)
        await merchants.write(conn)
        self._remember(changed)


async def _write_files(conn: asyncpg.Connection, files: list[CaseFile]) -> None:
    await conn.execute(
        "INSERT INTO case_files (case_id, version, status, departments, assignee, file, view, timeline,"
        " assignee_name) SELECT c, v, s, string_to_array(d, ','), a, f, w, t, n FROM unnest($1::uuid[],"
        " $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::bytea[], $8::bytea[], $9::text[])"
        " AS x(c, v, s, d, a, f, w, t, n)"
        " ON CONFLICT (case_id) DO UPDATE SET version = excluded.version, status = excluded.status,"
        " departments = excluded.departments, assignee = excluded.assignee, file = excluded.file,"
        " view = excluded.view, timeline = excluded.timeline, assignee_name = excluded.assignee_name",
        [f.view.case_id for f in files],
        [f.view.version for f in files],
        [f.view.status for f in files],
        [",".join(f.view.departments) for f in files],
        [f.view.assignee.id if f.view.assignee else None for f in files],
        [_encode(f) for f in files],
        [_encode(f.view) for f in files],
        [_encode(timeline_of(f)) for f in files],
        [f.view.assignee.name if f.view.assignee else None for f in files],
    )


async def _write_queues(conn: asyncpg.Connection, files: list[CaseFile]) -> None:
    await conn.execute("DELETE FROM queue_items WHERE case_id = ANY($1::uuid[])", [f.view.case_id for f in files])
    waiting = [f.view.case_id for f in files if f.view.assignee is None and f.view.status == "open"]
    # A released or reopened case is claimable again: drop the hold its last claim left.
    await conn.execute("DELETE FROM claim_holds WHERE case_id = ANY($1::uuid[]) AND until > now() + interval '60 s'",
                       waiting)
    rows = [r for f in files for r in queue_rows(f.view)]
    if rows:
        await conn.executemany(
            "INSERT INTO queue_items (queue, case_id, priority, reason, due_at, enqueued_at, amount_at_risk)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)",
            [(r.queue, r.case_id, r.priority, r.reason, r.due_at, r.enqueued_at,
              _encode(r.amount_at_risk).decode() if r.amount_at_risk else None) for r in rows],
        )


async def _write_lookup(conn: asyncpg.Connection, customers: list[CustomerRow], outbound: list[OutboundRow]) -> None:
    if customers:
        await conn.executemany(
            "INSERT INTO case_customers (case_id, customer_id, name_masked, name_key, phone_key, last4s, reason,"
            " opened_at, status) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (case_id) DO UPDATE"
            " SET last4s = excluded.last4s, status = excluded.status",
            [(c.case_id, c.customer_id, c.name_masked, c.name_key, c.phone_key, c.last4s, c.reason,
              c.opened_at, c.status) for c in customers],
        )
    if outbound:
        await conn.executemany(
            "INSERT INTO outbound_attempts (contact_id, case_id, at, phone_key, department, purpose, agent_name)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (contact_id) DO NOTHING",
            [(o.contact_id, o.case_id, o.at, o.phone_key, o.department, o.purpose, o.agent_name) for o in outbound],
        )


async def _write_activity(conn: asyncpg.Connection, activity: Counter[tuple[str, object, str]]) -> None:
    if activity:
        await conn.executemany(
            "INSERT INTO queue_activity (queue, hour, claims, resolutions) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (queue, hour) DO UPDATE SET claims = queue_activity.claims + excluded.claims,"
            " resolutions = queue_activity.resolutions + excluded.resolutions",
            [(queue, hour, n if kind == "claims" else 0, n if kind == "resolutions" else 0)
             for (queue, hour, kind), n in activity.items()],
        )
