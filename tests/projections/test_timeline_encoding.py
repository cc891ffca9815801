"""The stored timeline (a head in case_files, then per batch a row of the entries it
added, in timeline_parts) reads back byte for byte as the full encoding of the case
folded from its first event, pinned note first."""

from __future__ import annotations

import asyncpg
import msgspec
import pytest

from casedesk.projections.case_files import CaseFiles
from casedesk.projections.runner import ProjectionRunner
from casedesk.projections.timeline.fold import fold, timeline_of
from casedesk.projections.timeline.reading import read_case
from casedesk.services.case_service import CaseService
from casedesk.services.store.event_mapper import CaseEventMapper
from casedesk.services.store.event_store import EventStore
from tests.projections.helpers import drain, write_mixed_cases

_encode = msgspec.json.Encoder().encode


async def test_a_timeline_stored_batch_by_batch_reads_as_its_full_encoding(empty_pool: asyncpg.Pool) -> None:
    store = EventStore(empty_pool)
    mapper = CaseEventMapper()
    ids = await write_mixed_cases(CaseService(store, mapper), 12)
    projection = CaseFiles()
    await drain(ProjectionRunner(store, empty_pool, [projection], batch=3), projection)  # many small batches
    pinned = 0
    for case_id in ids:
        events = [mapper.to_domain_event(s) for s in await store.read_stream(case_id)]
        whole = fold(events, None, projection.zone)
        assert whole is not None
        read = await read_case(store, mapper, case_id, projection.zone)
        assert read.version == len(events)
        assert read.timeline == _encode(timeline_of(whole))
        parts = await empty_pool.fetch("SELECT from_version, to_version FROM timeline_parts WHERE case_id = $1"
                                       " ORDER BY from_version", case_id)
        assert [v for p in parts for v in range(p[0], p[1] + 1)] == list(range(1, len(events) + 1))  # once each
        pinned += whole.view.pinned_note is not None
    assert pinned > 0  # the pinned entry, shown first, is covered
    await store.close()


class FailsOnce(CaseFiles):
    """CaseFiles whose second batch fails after it folded and wrote its timeline parts."""

    def __init__(self) -> None:
        super().__init__()
        self.batches = 0

    async def apply(self, conn, events) -> None:  # type: ignore[no-untyped-def]
        await super().apply(conn, events)
        self.batches += 1
        if self.batches == 2:
            raise RuntimeError("the batch fails before it commits")


async def test_a_batch_rolled_back_after_folding_leaves_no_entry_missing_or_doubled(empty_pool: asyncpg.Pool) -> None:
    store = EventStore(empty_pool)
    mapper = CaseEventMapper()
    cases = CaseService(store, mapper)
    ids = await write_mixed_cases(cases, 6)
    projection = FailsOnce()
    runner = ProjectionRunner(store, empty_pool, [projection], batch=7)
    await runner.catch_up(projection)  # a first batch, committed: files remembered
    with pytest.raises(RuntimeError):
        await runner.catch_up(projection)  # folded, parts written, then rolled back
    ids += await write_mixed_cases(cases, 2, seed=11)
    await drain(runner, projection)
    for case_id in ids:
        events = [mapper.to_domain_event(s) for s in await store.read_stream(case_id)]
        whole = fold(events, None, projection.zone)
        assert whole is not None
        assert (await read_case(store, mapper, case_id, projection.zone)).timeline == _encode(timeline_of(whole))
    await store.close()
