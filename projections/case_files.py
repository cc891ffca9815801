"""The case_files projection: the case view and timeline of every case, ready to send.

One row per case. A batch reads the files of the cases it touches in one query,
folds their new events, and writes them back in one statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, tzinfo
from uuid import UUID

import asyncpg
import msgspec
from casedesk.domain.events import CaseEvent
from casedesk.projections.case_file import apply, timeline_of
from casedesk.projections.case_view import CaseFile

_decode_file = msgspec.json.Decoder(CaseFile).decode
_encode = msgspec.json.Encoder().encode


class CaseFiles:
    """Keeps case_files: the view and the timeline of each case."""

    name = "case_files"
    tables = ("case_files",)

    def __init__(self, zone: tzinfo = UTC) -> None:
        self.zone = zone

    async def apply(self, conn: asyncpg.Connection, events: Sequence[CaseEvent]) -> None:
        ids = list({e.originator_id for e in events})
        rows = await conn.fetch("SELECT case_id, file FROM case_files WHERE case_id = ANY($1::uuid[])", ids)
        files: dict[UUID, CaseFile | None] = {r[0]: _decode_file(r[1]) for r in rows}
        for event in events:
            current = files.get(event.originator_id)
            if current is not None and event.originator_version <= current.view.version:
                continue  # already folded (a rebuild racing a live batch cannot double-apply)
            files[event.originator_id] = apply(current, event, self.zone)
        changed = [f for f in files.values() if f is not None]
        await conn.execute(
            "INSERT INTO case_files (case_id, version, status, departments, assignee, file, view, timeline)"
            " SELECT c, v, s, string_to_array(d, ','), a, f, w, t FROM unnest($1::uuid[], $2::bigint[],"
            " $3::text[], $4::text[], $5::text[], $6::bytea[], $7::bytea[], $8::bytea[]) AS x(c, v, s, d, a, f, w, t)"
            " ON CONFLICT (case_id) DO UPDATE SET version = excluded.version, status = excluded.status,"
            " departments = excluded.departments, assignee = excluded.assignee, file = excluded.file,"
            " view = excluded.view, timeline = excluded.timeline",
            [f.view.case_id for f in changed],
            [f.view.version for f in changed],
            [f.view.status for f in changed],
            [",".join(f.view.departments) for f in changed],
            [f.view.assignee.id if f.view.assignee else None for f in changed],
            [_encode(f) for f in changed],
            [_encode(f.view) for f in changed],
            [_encode(timeline_of(f)) for f in changed],
        )
