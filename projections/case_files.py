"""The case_files projection: every read model folded from a case's events.

One fold per case per batch feeds several tables, each written and read by its own module:
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
from datetime import UTC, datetime, tzinfo
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
    customer_rows,
    forget_cases,
    lookup_follows_merge,
    outbound_row,
    write_lookup,
)
from casedesk.projections.deadline_clocks import write_clocks
from casedesk.projections.merchant_intelligence import MerchantBook
from casedesk.projections.timeline.fold import apply, stored_file
from casedesk.projections.timeline.handoff import refresh_handoff
from casedesk.projections.timeline.rows import TIMELINE_CONTENTS, stored_versions, view_and_file_of, write_files
from casedesk.projections.timeline.shapes import CaseFile
from casedesk.projections.timeline.view_changes import carry_absorbed
from casedesk.projections.work_queues import QUEUE_CONTENTS, write_activity, write_queues

_encode = msgspec.json.Encoder().encode


def _hour_of(event: ev.CaseEvent) -> datetime:
    """The UTC hour a queue's activity counts the event in (only for the events it counts: a rebuild
    spent 3 % of its fold on this line when every event's hour was taken)."""
    return event.timestamp.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


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
    contents: ClassVar[dict[str, str]] = {"timeline_parts": TIMELINE_CONTENTS, "queue_items": QUEUE_CONTENTS}

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
            customers = await customer_rows(conn, ids)
            # Written again only when the batch changed them (a note or a claim changes no customer row).
            stored = {case_id: _encode(row) for case_id, row in customers.items()}
            merchants = await MerchantBook.load(conn, list(events))
            # (no collector passes meanwhile: the runner pauses it around the whole batch)
            changed, outbound, activity = self._fold(events, files, customers, merchants)
            erased = {e.originator_id for e in events if isinstance(e, ev.CustomerDataErased)}
            await write_files(conn, changed)
            await write_queues(conn, changed)
            await write_clocks(conn, changed, new)
            await write_lookup(conn, [row for case_id, row in customers.items() if _encode(row) != stored.get(case_id)],
                               outbound)
            if erased:  # lookup no longer finds an erased customer: their digests go (issue 21)
                await forget_cases(conn, list(erased))
            await write_activity(conn, activity)
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
            if isinstance(event, ev.CaseAssigned) and event.queue:
                activity[(event.queue, _hour_of(event), "claims")] += 1
            elif isinstance(event, ev.CaseResolved) and file.view.claimed_from:
                activity[(file.view.claimed_from, _hour_of(event), "resolutions")] += 1
        changed = [f for f in files.values() if f is not None]
        for file in changed:
            refresh_handoff(file.view)
        return changed, outbound, activity
