"""A synchronous face on casedesk's asyncpg event store for the library's tests.

The eventsourcing library's recorder test cases call recorders from threads;
this adapter runs casedesk's async store on an event loop in a thread of its
own and hands each call over with run_coroutine_threadsafe.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.persistence import (
    Notification,
    ProcessRecorder,
    StoredEvent,
    Subscription,
    Tracking,
)

from casedesk.services.store.database import create_pool
from casedesk.services.store.event_store import EventStore
from casedesk.services.store.tracking import read_position, record_position

T = TypeVar("T")


class LoopThread:
    """An asyncio loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)


class SyncCaseStore(ProcessRecorder):
    """casedesk's EventStore behind the library's ProcessRecorder interface."""

    def __init__(self, dsn: str, schema: str) -> None:
        self._loop = LoopThread()
        self._pool = self._loop.run(create_pool(dsn, schema=schema, min_size=1, max_size=12))
        self.store = self._loop.run(self._make_store())

    async def _make_store(self) -> EventStore:
        return EventStore(self._pool)

    def close(self) -> None:
        self._loop.run(self.store.close())
        self._loop.run(self._pool.close())
        self._loop.stop()

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        tracking: Tracking | None = kwargs.get("tracking")
        if tracking is not None:
            return self._loop.run(
                self.store.append_with_tracking(
                    stored_events, tracking.application_name, tracking.notification_id
                )
            )
        return self._loop.run(self.store.append(stored_events))

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        oid = originator_id if isinstance(originator_id, UUID) else UUID(originator_id)
        return self._loop.run(self.store.read_stream(oid, gt=gt, lte=lte, desc=desc, limit=limit))

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        return self._loop.run(
            self.store.read_notifications(
                start, limit, stop, topics, inclusive_of_start=inclusive_of_start
            )
        )

    def max_notification_id(self) -> int | None:
        return self._loop.run(self.store.max_notification_id())

    def subscribe(
        self, gt: int | None = None, topics: Sequence[str] = ()
    ) -> Subscription[Any]:
        # casedesk's readers are the async projection runner, which LISTENs itself.
        raise NotImplementedError("casedesk projections subscribe through the async runner")

    def insert_tracking(self, tracking: Tracking) -> None:
        async def insert() -> None:
            async with self._pool.acquire() as conn, conn.transaction():
                await record_position(conn, tracking.application_name, tracking.notification_id)

        self._loop.run(insert())

    def max_tracking_id(self, application_name: str) -> int | None:
        return self._loop.run(read_position(self._pool, application_name))
