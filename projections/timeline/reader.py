"""The case reads of the query routes, bundled with where they read (primary or standby) and how they fold."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any
from uuid import UUID

import asyncpg

from casedesk.domain.clock_policies import DEFAULT_POLICY, ClockPolicy
from casedesk.domain.errors import CaseNotFoundError
from casedesk.domain.events import CaseEvent
from casedesk.projections.timeline.fold import fold, stored_file
from casedesk.projections.timeline.history import case_history_document
from casedesk.projections.timeline.reading import (
    CASE_OPENED_TOPIC,
    CaseRead,
    file_with,
    read_case,
    with_merged_timelines,
)
from casedesk.projections.timeline.rows import file_columns
from casedesk.projections.timeline.shapes import CaseFile
from casedesk.services.store.event_mapper import CaseEventMapper
from casedesk.services.store.event_store import EventStore


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
