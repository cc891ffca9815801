"""The stored timeline is built from entries encoded in earlier batches: it must be byte for byte the full encoding."""

from __future__ import annotations

import asyncpg
import msgspec

from casedesk.projections.case_file import apply, timeline_of
from casedesk.projections.case_files import CaseFiles
from casedesk.projections.case_view import CaseFile
from casedesk.services.case_service import CaseService
from casedesk.services.event_mapper import CaseEventMapper
from casedesk.services.event_store import EventStore
from tests.projections.helpers import write_mixed_cases

_encode = msgspec.json.Encoder().encode


async def test_a_timeline_encoded_batch_by_batch_equals_its_full_encoding(empty_pool: asyncpg.Pool) -> None:
    store = EventStore(empty_pool)
    mapper = CaseEventMapper()
    ids = await write_mixed_cases(CaseService(store, mapper), 12)
    projection = CaseFiles()
    compared = 0
    for case_id in ids:
        events = [mapper.to_domain_event(s) for s in await store.read_stream(case_id)]
        file: CaseFile | None = None
        for n, event in enumerate(events):
            file = apply(file, event, projection.zone)
            if n % 3 == 2 or n == len(events) - 1:  # a batch boundary every third event
                assert projection._timeline_bytes(file) == _encode(timeline_of(file))
                compared += 1
        # Memory ahead of the table (a rolled-back batch): a shorter timeline is encoded afresh.
        shorter = apply(None, events[0], projection.zone)
        assert projection._timeline_bytes(shorter) == _encode(timeline_of(shorter))
    assert compared > 30
    await store.close()
