"""The case_files projection: every read model folded from a case's events.

One fold per case per batch feeds several tables, each defined by its module:
- case_files and timeline_parts: the view and the timeline, ready to send
  (timeline/: shapes, fold, rows); timeline entries are written once, never rewritten;
- queue_items and queue_activity: the work queues (work_queues);
- case_customers and outbound_attempts: customer lookup (customer_lookup);
- merchant_flags and merchant_disputes: merchant intelligence (merchant_intelligence);
- case_clocks: the deadline clocks (deadline_clocks);
- case_approvals: four-eyes approvals across cases (approvals).
They move together with one tracking position, so a read that waited for
`min_position` sees all of them at that point.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Sequence
from datetime import UTC, tzinfo
from typing import ClassVar
from uuid import UUID

import asyncpg
import msgspec

from casedesk.domain import events as ev
from casedesk.domain.clock_policies import DEFAULT_POLICY, ClockPolicy
from casedesk.domain.merchants import MerchantFlagged
from casedesk.projections.approvals import write_approvals
from casedesk.projections.customer_lookup import (
    CustomerRow,
    OutboundRow,
    change_customer,
    customer_row,
    forget_cases,
    lookup_follows_merge,
    outbound_row,
)
from casedesk.projections.deadline_clocks import write_clocks
from casedesk.projections.merchant_intelligence import MerchantBook
from casedesk.projections.timeline.fold import apply, stored_file
from casedesk.projections.timeline.handoff import refresh_handoff
from casedesk.projections.timeline.rows import TIMELINE_CONTENTS, stored_versions, view_and_file_of, write_files
from casedesk.projections.timeline.shapes import CaseFile
from casedesk.projections.timeline.view_changes import carry_absorbed
from casedesk.projections.work_queues import queue_rows

_encode = msgspec.json.Encoder().encode


class CaseFiles:
    """Keeps the case files, the work queues and the lookup tables."""

    name = "case_files"
    # Raise it when the fold or the tables change: the new version is built beside the served one
    # and switched to (projections/blue_green.py); next_version_sql holds the DDL of a table change.
    version = 1
    next_version_sql: tuple[str, ...] = ()
    tables = ("case_files", "timeline_parts", "queue_items", "queue_activity", "case_customers", "outbound_attempts",
              "merchant_flags", "merchant_disputes", "case_clocks", "case_approvals")

    # What a table holds where that is not its rows as such: timeline_parts splits a
    # case's entries by the batches that wrote them, which a rebuild draws differently.
    contents: ClassVar[dict[str, str]] = {"timeline_parts": TIMELINE_CONTENTS}

    def __init__(self, zone: tzinfo = UTC, remembered: int = 20_000, policy: ClockPolicy = DEFAULT_POLICY) -> None:
        self.zone, self.policy = zone, policy
        self._remembered: OrderedDict[UUID, CaseFile] = OrderedDict()
        self._remember_at_most = remembered

    async def _files(self, conn: asyncpg.Connection, ids: list[UUID]) -> dict[UUID, CaseFile | None]:
        """The stored files of these cases: from memory when the stored version matches, else decoded.

        Only this process writes the projection while it holds its lock, but a
        rolled-back batch or a rebuild elsewhere leaves memory ahead or stale,
        hence the version check against the table.
        """
        stored = await stored_versions(conn, ids)
        files: dict[UUID, CaseFile | None] = {}
        missing = []
        for case_id, version in stored.items():
            known = self._remembered.get(case_id)
            if known is not None and known.view.version == version:
                files[case_id] = known
            else:
                missing.append(case_id)
        if missing:
            for case_id, view, rest in await view_and_file_of(conn, missing):
                files[case_id] = stored_file(view, rest)
        return files

    def _remember(self, files: list[CaseFile]) -> None:
        for file in files:
            file.timeline = []  # written: the rows hold them now
            file.clocks_moved = False
            self._remembered[file.view.case_id] = file
            self._remembered.move_to_end(file.view.case_id)
        while len(self._remembered) > self._remember_at_most:
            self._remembered.popitem(last=False)

    async def apply(self, conn: asyncpg.Connection, events: Sequence[ev.CaseEvent]) -> None:
        ids = list({e.originator_id for e in events if isinstance(e, ev.CaseEvent)}
                   # A survivor's merge carries what the absorbed case still owes: fold it with its file at hand.
                   | {e.absorbed_case_id for e in events if isinstance(e, ev.CaseMerged)})
        try:
            files = await self._files(conn, ids)
            new = {i for i in ids if i not in files}  # no case_files row yet: no clock rows either
            customers = {
                r["case_id"]: CustomerRow(**dict(r))
                for r in await conn.fetch("SELECT * FROM case_customers WHERE case_id = ANY($1::uuid[])", ids)
            }
            merchants = await MerchantBook.load(conn, list(events))
            # (no collector passes meanwhile: the runner pauses it around the whole batch)
            changed, outbound, activity = self._fold(events, files, customers, merchants)
            erased = {e.originator_id for e in events if isinstance(e, ev.CustomerDataErased)}
            await write_files(conn, changed)
            await _write_queues(conn, changed)
            await write_clocks(conn, changed, new)
            await _write_lookup(conn, list(customers.values()), outbound)
            if erased:  # lookup no longer finds an erased customer: their digests go (issue 21)
                await forget_cases(conn, list(erased))
            await _write_activity(conn, activity)
            await merchants.write(conn)
            await write_approvals(conn, events)
            self._remember(changed)
        except BaseException:
            # Files folded for a batch that will not commit are ahead of the table and still
            # hold entries it never got: forget them, so the next batch reads what is stored.
            for case_id in ids:
                self._remembered.pop(case_id, None)
            raise

    def _fold(
        self,
        events: Sequence[ev.CaseEvent],
        files: dict[UUID, CaseFile | None],
        customers: dict[UUID, CustomerRow],
        merchants: MerchantBook,
    ) -> tuple[list[CaseFile], list[OutboundRow], Counter[tuple[str, object, str]]]:
        """The batch folded in memory: the changed files, outbound attempts, queue activity."""
        outbound: list[OutboundRow] = []
        activity: Counter[tuple[str, object, str]] = Counter()
        for event in events:
            if isinstance(event, MerchantFlagged):
                merchants.flag(event)
                continue
            if not isinstance(event, ev.CaseEvent):
                continue  # a breach record: its outreach cases carry what the read side needs
            current = files.get(event.originator_id)
            if current is not None and event.originator_version <= current.view.version:
                continue  # already folded
            file = files[event.originator_id] = apply(current, event, self.zone, policy=self.policy)
            merchants.mark(file.view, event)
            if isinstance(event, ev.CaseMerged):
                absorbed = files.get(event.absorbed_case_id)
                if absorbed is not None:
                    carry_absorbed(file, absorbed)
            if (isinstance(event, (ev.CaseMerged, ev.CaseMergedInto, ev.CaseUnmerged))
                    and event.originator_id in customers):
                lookup_follows_merge(customers[event.originator_id], file.view)
            if isinstance(event, ev.CaseOpened):
                customers[event.originator_id] = customer_row(event)
            elif isinstance(event, ev.CustomerDataErased):
                customers.pop(event.originator_id, None)
                outbound = [o for o in outbound if o.case_id != event.originator_id]
            elif event.originator_id in customers:
                change_customer(customers[event.originator_id], event)
            row = outbound_row(event, file.view.reason)
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
        return changed, outbound, activity


async def _write_queues(conn: asyncpg.Connection, files: list[CaseFile]) -> None:
    await conn.execute("DELETE FROM queue_items WHERE case_id = ANY($1::uuid[])", [f.view.case_id for f in files])
    waiting = [f.view.case_id for f in files if f.view.assignee is None and f.view.status == "open"]
    # A released or reopened case is claimable again: drop the hold its last claim left.
    await conn.execute("DELETE FROM claim_holds WHERE case_id = ANY($1::uuid[]) AND until > now() + interval '60 s'",
                       waiting)
    rows = [r for f in files for r in queue_rows(f.view)]
    if rows:  # one statement of arrays, not a row per round trip
        await conn.execute(
            "INSERT INTO queue_items (queue, case_id, priority, reason, due_at, enqueued_at, amount_at_risk)"
            " SELECT * FROM unnest($1::text[], $2::uuid[], $3::smallint[], $4::text[], $5::timestamptz[],"
            " $6::timestamptz[], $7::jsonb[])",
            [r.queue for r in rows], [r.case_id for r in rows], [r.priority for r in rows],
            [r.reason for r in rows], [r.due_at for r in rows], [r.enqueued_at for r in rows],
            [_encode(r.amount_at_risk).decode() if r.amount_at_risk else None for r in rows],
        )


async def _write_lookup(conn: asyncpg.Connection, customers: list[CustomerRow], outbound: list[OutboundRow]) -> None:
    if customers:
        # last4s travel comma-joined: unnest cannot take an array of arrays of different lengths.
        await conn.execute(
            "INSERT INTO case_customers (case_id, customer_id, name_masked, name_key, phone_key, last4s, reason,"
            " opened_at, status, resolved_at) SELECT c, i, m, nk, pk, string_to_array(l, ','), r, o, s, ra"
            " FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],"
            " $8::timestamptz[], $9::text[], $10::timestamptz[]) AS x(c, i, m, nk, pk, l, r, o, s, ra)"
            " ON CONFLICT (case_id) DO UPDATE"
            " SET last4s = excluded.last4s, status = excluded.status, resolved_at = excluded.resolved_at",
            [c.case_id for c in customers], [c.customer_id for c in customers], [c.name_masked for c in customers],
            [c.name_key for c in customers], [c.phone_key for c in customers],
            [",".join(c.last4s) for c in customers], [c.reason for c in customers],
            [c.opened_at for c in customers], [c.status for c in customers], [c.resolved_at for c in customers],
        )
    if outbound:
        await conn.execute(
            "INSERT INTO outbound_attempts (contact_id, case_id, at, phone_key, department, purpose, agent_name,"
            " purpose_category) SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::text[],"
            " $5::text[], $6::text[], $7::text[], $8::text[]) ON CONFLICT (contact_id) DO NOTHING",
            [o.contact_id for o in outbound], [o.case_id for o in outbound], [o.at for o in outbound],
            [o.phone_key for o in outbound], [o.department for o in outbound], [o.purpose for o in outbound],
            [o.agent_name for o in outbound], [o.purpose_category for o in outbound],
        )


async def _write_activity(conn: asyncpg.Connection, activity: Counter[tuple[str, object, str]]) -> None:
    if activity:
        await conn.executemany(
            "INSERT INTO queue_activity (queue, hour, claims, resolutions) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (queue, hour) DO UPDATE SET claims = queue_activity.claims + excluded.claims,"
            " resolutions = queue_activity.resolutions + excluded.resolutions",
            # In key order: a rebuild in parts adds to the same rows from several transactions at once.
            [(queue, hour, n if kind == "claims" else 0, n if kind == "resolutions" else 0)
             for (queue, hour, kind), n in sorted(activity.items(), key=lambda item: str(item[0]))],
        )
