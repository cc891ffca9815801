"""The case file's tables, `case_files` and `timeline_parts`, and all their SQL.

A case_files row holds a case's view, the rest of its file (what later
sentences need) and the head of its timeline answer; timeline_parts holds the
timeline entries, one row per case per projection batch, written once and
never rewritten. The case_files projection writes both in its batch; the case
reads, the case stream, presence, the dashboard and lookups read them here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from casedesk.projections.timeline.fold import file_rest, timeline_head
from casedesk.projections.timeline.shapes import CaseFile

_encode = msgspec.json.Encoder().encode
Reader = asyncpg.Connection | asyncpg.Pool

# One statement: the case file row and its timeline entries, joined in PostgreSQL.
_ROW_COLUMNS = "version, departments, assignee, view, file, timeline_head"
CASE_FILE_COLUMNS = (
    f"{_ROW_COLUMNS}, (SELECT string_agg(t.entries, ',' ORDER BY t.from_version) FROM timeline_parts t"
    " WHERE t.case_id = case_files.case_id) AS entries"
)
_VIEW_COLUMNS = f"{_ROW_COLUMNS}, NULL::bytea AS entries"  # a view read joins no timeline parts

# What timeline_parts holds as a whole: a case's entries, whichever batches wrote them
# (a live projection and a rebuild split them differently).
TIMELINE_CONTENTS = ("SELECT case_id, string_agg(entries, ',' ORDER BY from_version) AS entries"
                     " FROM timeline_parts GROUP BY case_id")


async def case_file_row(conn: Reader, case_id: UUID, *, timeline: bool = True) -> asyncpg.Record | None:
    """The case's row (CASE_FILE_COLUMNS; `entries` is NULL unless `timeline`), None before it is projected."""
    columns = CASE_FILE_COLUMNS if timeline else _VIEW_COLUMNS
    return await conn.fetchrow(f"SELECT {columns} FROM case_files WHERE case_id = $1", case_id)


async def file_columns(conn: Reader, case_id: UUID) -> asyncpg.Record | None:
    """The case's version, view and file (to fold further), None before it is projected."""
    return await conn.fetchrow("SELECT version, view, file FROM case_files WHERE case_id = $1", case_id)


async def stored_versions(conn: Reader, case_ids: list[UUID]) -> dict[UUID, int]:
    """The projected version of each of these cases that has a row."""
    return {r[0]: r[1] for r in await conn.fetch(
        "SELECT case_id, version FROM case_files WHERE case_id = ANY($1::uuid[])", case_ids)}


async def view_and_file_of(conn: Reader, case_ids: list[UUID]) -> list[tuple[UUID, bytes, bytes]]:
    """(case id, view, file) of each of these cases that has a row."""
    return [(r[0], r[1], r[2]) for r in await conn.fetch(
        "SELECT case_id, view, file FROM case_files WHERE case_id = ANY($1::uuid[])", case_ids)]


async def write_files(conn: asyncpg.Connection, files: list[CaseFile]) -> None:
    """Upsert the files' rows and add, per case, one timeline part of the entries this batch folded."""
    await conn.execute(
        "INSERT INTO case_files (case_id, version, status, departments, assignee, file, view, timeline_head,"
        " assignee_name) SELECT c, v, s, string_to_array(d, ','), a, f, w, t, n FROM unnest($1::uuid[],"
        " $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::bytea[], $8::bytea[], $9::text[])"
        " AS x(c, v, s, d, a, f, w, t, n)"
        " ON CONFLICT (case_id) DO UPDATE SET version = excluded.version, status = excluded.status,"
        " departments = excluded.departments, assignee = excluded.assignee, file = excluded.file,"
        " view = excluded.view, timeline_head = excluded.timeline_head, assignee_name = excluded.assignee_name",
        [f.view.case_id for f in files],
        [f.view.version for f in files],
        [f.view.status for f in files],
        [",".join(f.view.departments) for f in files],
        [f.view.assignee.id if f.view.assignee else None for f in files],
        [file_rest(f) for f in files],
        [_encode(f.view) for f in files],
        [timeline_head(f) for f in files],
        [f.view.assignee.name if f.view.assignee else None for f in files],
    )
    # One row per case of the entries this batch added: those before are rows already,
    # written with the case_files row they belong to (same transaction), so none can be
    # there twice. COPY: in a rebuild that is a row for each case of a 20,000-event batch.
    parts = [(f.view.case_id, f.timeline[0].version, f.timeline[-1].version,
              b",".join([_encode(e) for e in f.timeline])) for f in files if f.timeline]
    if parts:
        await conn.copy_records_to_table("timeline_parts", records=parts,
                                         columns=("case_id", "from_version", "to_version", "entries"))


async def agents_on_open_cases(conn: Reader) -> list[dict[str, Any]]:
    """Each agent holding open cases, with how many (the dashboard's board), most first."""
    return [dict(r) for r in await conn.fetch(
        "SELECT assignee AS agent_id, coalesce(max(assignee_name), assignee) AS name, count(*) AS cases"
        " FROM case_files WHERE assignee IS NOT NULL AND status = 'open'"
        " GROUP BY assignee ORDER BY cases DESC, name, agent_id")]


async def reach_of(conn: Reader, case_ids: Iterable[UUID]) -> list[tuple[UUID, list[str], str | None]]:
    """Each projected case's departments and assignee: what deciding who may see it needs."""
    return [(r[0], list(r[1]), r[2]) for r in await conn.fetch(
        "SELECT case_id, departments, assignee FROM case_files WHERE case_id = ANY($1::uuid[])", list(case_ids))]
