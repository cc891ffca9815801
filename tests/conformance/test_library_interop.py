"""casedesk and the eventsourcing library's own PostgreSQL recorder read each other's rows."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from urllib.parse import parse_qs, urlparse

import pytest
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

from tests.conformance.sync_adapter import SyncCaseStore
from tests.conftest import new_schema


def library_datastore(dsn: str, schema: str) -> PostgresDatastore:
    url = urlparse(dsn)
    host = url.hostname or parse_qs(url.query).get("host", ["localhost"])[0]
    return PostgresDatastore(
        dbname=url.path.lstrip("/") or "postgres",
        host=host,
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password or "",
        schema=schema,
    )


@pytest.fixture
def both(database_dsn: str) -> Iterator[tuple[SyncCaseStore, PostgresApplicationRecorder]]:
    schema = asyncio.run(new_schema(database_dsn))
    ours = SyncCaseStore(database_dsn, schema)
    datastore = library_datastore(database_dsn, schema)
    theirs = PostgresApplicationRecorder(datastore, events_table_name="case_events")
    yield ours, theirs
    ours.close()
    datastore.close()


def test_library_recorder_reads_what_casedesk_wrote(both: tuple) -> None:
    ours, theirs = both
    case_id = uuid.uuid4()
    ids = ours.insert_events(
        [StoredEvent(case_id, 1, "casedesk.domain.events:CaseOpened", b'{"a":1}'),
         StoredEvent(case_id, 2, "casedesk.domain.events:HandoffNoteAdded", b'{"b":2}')]
    )
    events = theirs.select_events(case_id)
    assert [(e.originator_version, e.topic, e.state) for e in events] == [
        (1, "casedesk.domain.events:CaseOpened", b'{"a":1}'),
        (2, "casedesk.domain.events:HandoffNoteAdded", b'{"b":2}'),
    ]
    notifications = theirs.select_notifications(start=ids[0], limit=10)
    assert [n.id for n in notifications] == ids


def test_casedesk_reads_what_the_library_recorder_wrote(both: tuple) -> None:
    ours, theirs = both
    case_id = uuid.uuid4()
    ids = theirs.insert_events([StoredEvent(case_id, 1, "topic-a", b"state-a")])
    assert ours.select_events(case_id) == [StoredEvent(case_id, 1, "topic-a", b"state-a")]
    assert [n.id for n in ours.select_notifications(start=None, limit=10)] == ids
    # And the two writers share one notification sequence and one version check.
    more = ours.insert_events([StoredEvent(case_id, 2, "topic-b", b"state-b")])
    assert more[0] > ids[-1]
    with pytest.raises(Exception, match=r"moved on|duplicate|unique"):
        theirs.insert_events([StoredEvent(case_id, 2, "topic-c", b"state-c")])
