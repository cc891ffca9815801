"""The eventsourcing library's own recorder test cases, run on casedesk's store.

Each test gets a freshly migrated schema, since the library's cases expect the
notification log to start empty.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from eventsourcing.tests.persistence import (
    ApplicationRecorderTestCase,
    NonInterleavingNotificationIDsBaseCase,
    ProcessRecorderTestCase,
    TrackingRecorderTestCase,
)

from tests.conformance.sync_adapter import SyncCaseStore
from tests.conftest import new_schema


class _OnCasedeskStore:
    """Mixin: create_recorder() gives a SyncCaseStore on a new schema."""

    dsn: str
    recorders: list[SyncCaseStore]
    schemas: list[str]

    @pytest.fixture(autouse=True)
    def _database(self, database_dsn: str) -> Any:
        self.dsn = database_dsn
        self.recorders, self.schemas = [], []
        yield
        for recorder in self.recorders:
            recorder.close()
        asyncio.run(_drop(database_dsn, self.schemas))

    def create_recorder(self) -> SyncCaseStore:
        schema = asyncio.run(new_schema(self.dsn))
        recorder = SyncCaseStore(self.dsn, schema)
        self.recorders.append(recorder)
        self.schemas.append(schema)
        return recorder


async def _drop(dsn: str, schemas: list[str]) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for schema in schemas:
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await conn.close()


class TestApplicationRecorder(_OnCasedeskStore, ApplicationRecorderTestCase[Any]):
    pass


class TestTrackingRecorder(_OnCasedeskStore, TrackingRecorderTestCase):
    pass


class TestProcessRecorder(_OnCasedeskStore, ProcessRecorderTestCase):
    pass


class TestNonInterleavingNotificationIDs(_OnCasedeskStore, NonInterleavingNotificationIDsBaseCase):
    pass
