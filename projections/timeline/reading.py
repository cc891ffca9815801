"""Reading a case file (view + timeline) for the query routes and audit history.

The case_files read model answers; if the projection has not yet folded the
case's newest events, they are read from the stream and folded on the spot,
so an agent never reads a case older than its last acknowledged command.

On a streaming replica (DATABASE_READ_URL) the row comes from the standby and
the tail from wherever freshness is promised: the primary by default; the
standby itself once the caller's min_position has been waited for there, since
WAL replays in commit order and so every event up to that position is on the
standby too. Nothing here writes, so a read-only standby serves it.
(Audit history, the case as it stood at a point, is history.py; CaseReader bundles both for the routes.)
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any
from uuid import UUID

import asyncpg
import msgspec
from eventsourcing.utils import get_topic

from casedesk.domain.clock_policies import DEFAULT_POLICY, ClockPolicy
from casedesk.domain.errors import CaseNotFoundError
from casedesk.domain.events import CaseEvent, CaseOpened
from casedesk.projections.timeline.fold import fold, stored_file, timeline_of
from casedesk.projections.timeline.history import case_history_document
from casedesk.projections.timeline.rows import case_file_row, file_columns, timeline_bytes, timeline_head
from casedesk.projections.timeline.shapes import CaseFile, TimelineAnswer, TimelineEntry
from casedesk.services.store.event_mapper import CaseEventMapper
from casedesk.services.store.event_store import EventStore

CASE_OPENED_TOPIC = get_topic(CaseOpened)
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class CaseRead:
    """What a case read needs: who may see it, its version, and the bytes to send."""

    departments: list[str]
    assignee: str | None
    version: int
    view: bytes
    timeline: bytes | None  # None when the read was for the view alone


async def read_case(
    store: EventStore,
    mapper: CaseEventMapper,
    case_id: UUID,
    zone: tzinfo,
    *,
    files: asyncpg.Pool | None = None,
    timeline: bool = True,
    policy: ClockPolicy = DEFAULT_POLICY,
) -> CaseRead:
    """The case as `store` has it; `files` is where case_files is read (default: the store's
    pool). Without `timeline` only the view is read and folded (GET of the case)."""
    row = await case_file_row(files or store.pool, case_id, timeline=timeline)
    tail = await store.read_stream(case_id, gt=row["version"] if row else None)
    if not tail and row is not None:
        return CaseRead(list(row["departments"]), row["assignee"], row["version"], row["view"],
                        timeline_bytes(row["timeline_head"], row["entries"]) if timeline else None)
    if row is None and tail and tail[0].topic != CASE_OPENED_TOPIC:
        raise CaseNotFoundError(str(case_id))  # another kind of stream (a merchant's)
    return file_with(row, (mapper.to_domain_event(s) for s in tail), zone, case_id, timeline=timeline,
                     policy=policy)


def file_with(row: Mapping[str, Any] | None, events: Iterable[CaseEvent], zone: tzinfo, case_id: UUID,
              *, timeline: bool = True, policy: ClockPolicy = DEFAULT_POLICY) -> CaseRead:
    """A case_files row (rows.CASE_FILE_COLUMNS; None before the first projection) with the
    stream's newer events folded in; events the row already holds are skipped."""
    file = stored_file(row["view"], row["file"]) if row is not None else None
    if file is not None:  # the projection may have moved on since the events were read
        events = (e for e in events if e.originator_version > file.view.version)
    file = fold(events, file, zone, timeline=timeline, policy=policy)
    if file is None:
        raise CaseNotFoundError(str(case_id))
    view = file.view
    answer: bytes | None = None
    if timeline:
        answer = (timeline_bytes(timeline_head(file), row["entries"], file.timeline) if row is not None
                  else _encode(timeline_of(file)))
    return CaseRead(list(view.departments), view.assignee.id if view.assignee else None, view.version,
                    _encode(view), answer)


# --- a survivor's timeline: its own entries and those of the cases merged into it -------------


class _MergedCase(msgspec.Struct):
    case_id: UUID


class _MergedCases(msgspec.Struct):
    merged_cases: list[_MergedCase] = []


_decode_merged = msgspec.json.Decoder(_MergedCases).decode
_decode_timeline = msgspec.json.Decoder(TimelineAnswer).decode


def merged_case_ids(view: bytes) -> list[UUID]:
    """The cases merged into this one, from its view (decoded only when there are any)."""
    if b'"merged_cases":[]' in view:
        return []
    return [m.case_id for m in _decode_merged(view).merged_cases]


async def with_merged_timelines(store: EventStore, mapper: CaseEventMapper, read: CaseRead, zone: tzinfo, *,
                                files: asyncpg.Pool | None = None, policy: ClockPolicy = DEFAULT_POLICY) -> bytes:
    """`read`'s timeline; a survivor's interleaved with those of the cases merged into it."""
    assert read.timeline is not None
    merged = merged_case_ids(read.view)
    if not merged:
        return read.timeline
    others = [await read_case(store, mapper, case_id, zone, files=files, timeline=True, policy=policy)
              for case_id in merged]
    return interleaved(read.timeline, [o.timeline for o in others if o.timeline is not None])


def _marked(answer: TimelineAnswer) -> tuple[list[TimelineEntry], list[TimelineEntry]]:
    """(the pinned note's entry, if shown first; every entry in order), each marked with its case."""
    entries = [msgspec.structs.replace(e, from_case_id=answer.case_id) for e in answer.entries]
    if answer.pinned_note is not None and len(entries) > 1 and entries[0].version in {e.version for e in entries[1:]}:
        return entries[:1], entries[1:]
    return [], entries


def interleaved(timeline: bytes, merged: list[bytes]) -> bytes:
    """The survivor's timeline with the merged cases' entries in time order, each marked `from_case_id`.

    Composed when read, from each case's own timeline: no stored entry is ever
    rewritten, and an unmerge needs nothing undone (the entries simply stop
    being composed). Ties in time keep the survivor's entries first.
    """
    survivor = _decode_timeline(timeline)
    pinned, own = _marked(survivor)
    theirs = [_marked(_decode_timeline(t))[1] for t in merged]
    entries = list(heapq.merge(own, *theirs, key=lambda e: e.at))
    return _encode(TimelineAnswer(case_id=survivor.case_id, version=survivor.version,
                                  pinned_note=survivor.pinned_note, entries=pinned + entries))


@dataclass(frozen=True, slots=True)
class CaseReader:
    """Reads cases for the query routes, now and as they stood: the read model's rows plus the stream's newer events.

    `files` and `standby` are where rows, and the tail once the caller's
    min_position was waited for, are read on a streaming replica; both are the
    primary's without one. `primary=True` reads everything from the primary
    (a claim answers the case it just assigned).
    """

    store: EventStore
    mapper: CaseEventMapper
    zone: tzinfo
    policy: ClockPolicy = DEFAULT_POLICY
    files: asyncpg.Pool | None = None
    standby: EventStore | None = None

    async def read(self, case_id: UUID, *, timeline: bool = True, waited: bool = False,
                   primary: bool = False) -> CaseRead:
        """The case as it stands; `waited`: the standby has passed the caller's min_position."""
        store = self.standby if waited and self.standby is not None and not primary else self.store
        return await read_case(store, self.mapper, case_id, self.zone, files=None if primary else self.files,
                               timeline=timeline, policy=self.policy)

    async def timeline(self, read: CaseRead, *, primary: bool = False) -> bytes:
        """`read`'s timeline; a survivor's interleaved with those of the cases merged into it."""
        return await with_merged_timelines(self.store, self.mapper, read, self.zone,
                                           files=None if primary else self.files, policy=self.policy)

    async def history(self, case_id: UUID, *, version: int | None = None, as_of: datetime | None = None) -> bytes:
        """The audit history document: the case as of a version or a time, every stored event to then."""
        return await case_history_document(self.store, self.mapper, case_id, self.zone, version=version,
                                           as_of=as_of, policy=self.policy)

    async def exists(self, case_id: UUID) -> bool:
        """Whether anything was ever written under this id (on the primary)."""
        return bool(await self.store.read_stream(case_id, limit=1))

    async def file(self, case_id: UUID) -> CaseFile:
        """The case file as it stands now, to fold further (the case stream's start): its stored
        entries are not read, so `timeline` holds none."""
        row = await file_columns(self.files or self.store.pool, case_id)
        tail = await self.store.read_stream(case_id, gt=row["version"] if row else None)
        if row is None and (not tail or tail[0].topic != CASE_OPENED_TOPIC):
            raise CaseNotFoundError(str(case_id))  # nothing, or another kind of stream (a merchant's)
        file = stored_file(row["view"], row["file"]) if row is not None else None
        events = [self.mapper.to_domain_event(s) for s in tail]
        if file is not None:  # the projection may have moved on since the events were read
            events = [e for e in events if e.originator_version > file.view.version]
        folded = fold(events, file, self.zone, policy=self.policy)
        if folded is None:
            raise CaseNotFoundError(str(case_id))
        folded.timeline = []  # what the stream sends are the entries after this
        return folded

    def with_events(self, row: Mapping[str, Any] | None, events: Iterable[CaseEvent], case_id: UUID) -> CaseRead:
        """A row read elsewhere (a claim's) with the events after it folded in (see file_with)."""
        return file_with(row, events, self.zone, case_id, policy=self.policy)
