"""The case file's tables, `case_files` and `timeline_parts`, and all their SQL.

A case_files row holds a case's view, the rest of its file (what later
sentences need) and the head of its timeline answer; timeline_parts holds the
timeline entries, one row per case per projection batch, written once and
never rewritten. The case_files projection writes both in its batch; the case
reads, the case stream, presence, the dashboard and lookups read them here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from casedesk.projections.timeline.fold import file_rest, pinned_entries
from casedesk.projections.timeline.shapes import CaseFile, TimelineAnswer, TimelineEntry

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


def case_file_row_sql(case: str) -> str:
    """A statement's part: the case's row (CASE_FILE_COLUMNS); `case` is an SQL expression of the
    statement that uses it (a claim's one round trip, projections/work_queues.py)."""
    return f"SELECT {CASE_FILE_COLUMNS} FROM case_files WHERE case_id = {case}"


def readable_sql(case: str, everyone: str, departments: str, agent: str) -> str:
    """A statement's part: one row when the projected case is readable by the caller (the rule of
    check_may_read_parts: `everyone`, a role that reads every case; else a department in common, or
    the assignee), none otherwise. The arguments are SQL expressions of the statement that uses it."""
    return (f"SELECT 1 FROM case_files WHERE case_id = {case}"
            f" AND ({everyone} OR departments && {departments} OR assignee = {agent})")


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
    # (A list encoded whole, brackets dropped: the entries comma-joined, in one call and not one per entry.)
    parts = [(f.view.case_id, f.timeline[0].version, f.timeline[-1].version, _encode(f.timeline)[1:-1])
             for f in files if f.timeline]
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


# --- the timeline answer from its stored form: the head a case_files row keeps, and the parts ---


def timeline_head(file: CaseFile) -> bytes:
    """The timeline answer up to where the stored entries go: `{..., "entries":[` and the pinned entry.

    Kept in case_files.timeline_head; `timeline_bytes` completes it.
    """
    head = _encode(TimelineAnswer(case_id=file.view.case_id, version=file.view.version,
                                  pinned_note=file.view.pinned_note, entries=pinned_entries(file)))
    return head[:-2]  # drop "]}": entries is the answer's last field


class _EncodedTimeline(msgspec.Struct):
    """The timeline answer (TimelineAnswer's fields, in its order) with its parts kept as the JSON they are.

    Decoded from a stored timeline_head (nothing in it is decoded further) and
    encoded as the answer; each of `entries` is one or more encoded entries,
    comma-joined as a timeline part stores them, written as the array's items.
    """

    case_id: msgspec.Raw
    version: msgspec.Raw
    pinned_note: msgspec.Raw
    entries: list[msgspec.Raw]


_decode_head = msgspec.json.Decoder(_EncodedTimeline).decode


def timeline_bytes(head: bytes, entries: bytes | None, new: Sequence[TimelineEntry] = ()) -> bytes:
    """The timeline answer: `head`'s fields and pinned entry, the stored entries (comma-joined), then `new` ones."""
    answer = _decode_head(head + b"]}")  # the head stops inside `entries`, the answer's last field
    if entries:
        answer.entries.append(msgspec.Raw(entries))
    answer.entries += [msgspec.Raw(_encode(e)) for e in new]
    return _encode(answer)
