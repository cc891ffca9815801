"""The supervisor dashboard: JSON, a server-sent event stream, and the page.

One snapshot answers everything the board shows: every queue's depth, oldest
wait, overdue items and this hour's claims and resolutions; the agents holding
open cases; claims and resolutions per hour over the last eight hours; how
far each projection has read; and the card-processor instructions in flight
(not yet answered by the processor) with the oldest one's age. `dashboard_feed` keeps one LISTEN connection on
`read_models_moved` (the projection runner notifies it on every commit), takes
one snapshot per burst of notifications (and every few seconds anyway, so ages
move) and hands it to every open stream. With a standby the LISTEN stays on
the primary (DATABASE_DIRECT_URL: hot standbys refuse LISTEN, PgBouncer in
transaction mode loses it) and snapshots are read from the standby; one that
lags the notification shows at the next burst or refresh.

Waits use `asyncio.timeout`, never `asyncio.wait_for`: on Python 3.11 a
wait_for whose awaitable finishes as the task is cancelled swallows the
cancellation, and the feed would then never stop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
import structlog
from aiohttp import web
from aiohttp_sse import EventSourceResponse, sse_response

from casedesk.projections.deadline_clocks import clock_risks
from casedesk.projections.timeline.rows import agents_on_open_cases
from casedesk.projections.work_queues import claims_per_hour, queue_depths
from casedesk.services.effects.instruction_calls import instructions_in_flight
from casedesk.services.http.app_keys import DIRECT_POOL, READ_MODELS_MOVED, READ_POOL
from casedesk.services.http.read_your_writes import ReadModelsMoved
from casedesk.services.http.static_page import static_page
from casedesk.services.store.database import keeps_session_state
from casedesk.services.store.tracking import every_position
from casedesk.services.turn_taking import not_quick

log = structlog.get_logger("casedesk.dashboard")

CHANNEL = "read_models_moved"  # what projections/runner.py notifies after every batch
EVENT = "dashboard"
DEBOUNCE_SECONDS = 0.1
REFRESH_SECONDS = 5.0
PING_SECONDS = 15.0
RECONNECT_SECONDS = (0.5, 10.0)  # first and longest pause before listening again
CLIENT_RETRY_MS = 2000

_encode = msgspec.json.Encoder().encode

async def dashboard_snapshot(pool: asyncpg.Pool) -> dict[str, Any]:
    """Everything the board shows, read in one consistent read-only transaction."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        queues = await queue_depths(conn)
        agents = await agents_on_open_cases(conn)
        hours = await claims_per_hour(conn)
        positions = await every_position(conn)
        instructions = await instructions_in_flight(conn)
        clocks = await clock_risks(conn)
    return {
        "generated_at": datetime.now(UTC),
        "queues": queues,
        "agents": agents,
        "claims_per_hour": hours,
        "positions": positions,
        "processor_instructions": instructions,
        "clocks": clocks,
    }


class Broadcaster:
    """Hands each new snapshot to every open stream; a slow stream gets only the newest."""

    CLOSED = b""

    def __init__(self) -> None:
        self._inboxes: set[asyncio.Queue[bytes]] = set()

    @property
    def listeners(self) -> int:
        return len(self._inboxes)

    @contextlib.contextmanager
    def subscription(self) -> Iterator[asyncio.Queue[bytes]]:
        inbox: asyncio.Queue[bytes] = asyncio.Queue(maxsize=1)
        self._inboxes.add(inbox)
        try:
            yield inbox
        finally:
            self._inboxes.discard(inbox)

    def publish(self, snapshot: bytes) -> None:
        for inbox in self._inboxes:
            with contextlib.suppress(asyncio.QueueEmpty):
                inbox.get_nowait()  # drop what the stream has not sent yet: it is stale now
            inbox.put_nowait(snapshot)

    def close(self) -> None:
        """Tell every stream to end (the server is stopping)."""
        self.publish(self.CLOSED)


BROADCASTER = web.AppKey("dashboard_broadcaster", Broadcaster)


async def get_dashboard(request: web.Request) -> web.Response:
    snapshot = await dashboard_snapshot(request.app[READ_POOL])
    return web.Response(body=_encode(snapshot), content_type="application/json")


async def dashboard_stream(request: web.Request) -> web.StreamResponse:
    """The snapshot at once, then every new one, as `dashboard` events."""
    with request.app[BROADCASTER].subscription() as inbox:
        first = _encode(await dashboard_snapshot(request.app[READ_POOL]))
        not_quick()  # a stream lasts as long as its client: long work does not wait for it
        async with sse_response(request, ping_interval=PING_SECONDS) as stream:
            with contextlib.suppress(ConnectionResetError, TimeoutError):
                await stream.send(first.decode(), event=EVENT, retry=CLIENT_RETRY_MS)
                await _relay(request, stream, inbox)
    return stream


async def _relay(request: web.Request, stream: EventSourceResponse, inbox: asyncio.Queue[bytes]) -> None:
    """Send snapshots until the client goes away or the server stops."""
    while stream.is_connected() and request.transport is not None:
        try:
            async with asyncio.timeout(1.0):  # wake each second to notice a gone client
                snapshot = await inbox.get()
        except TimeoutError:
            continue
        if snapshot == Broadcaster.CLOSED:
            return
        await stream.send(snapshot.decode(), event=EVENT)


async def dashboard_page(request: web.Request) -> web.StreamResponse:
    return static_page("dashboard.html")


async def dashboard_feed(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: LISTEN for read-model changes and fan them out to streams."""
    broadcaster = Broadcaster()
    app[BROADCASTER] = broadcaster
    moves = ReadModelsMoved()
    app[READ_MODELS_MOVED] = moves
    task = asyncio.create_task(_feed(app[DIRECT_POOL], app[READ_POOL], broadcaster, moves), name="dashboard-feed")
    yield
    broadcaster.close()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def close_streams(app: web.Application) -> None:
    """An on_shutdown hook: end open streams, so a stopping server need not wait for them."""
    app[BROADCASTER].close()


async def _feed(listen_pool: asyncpg.Pool, pool: asyncpg.Pool, broadcaster: Broadcaster,
                moves: ReadModelsMoved) -> None:
    """LISTEN on the primary (a standby cannot LISTEN); snapshots from `pool` (maybe the standby).

    The same notifications wake readers waiting for a min_position (`moves`)."""
    moved = asyncio.Event()
    listener = asyncio.create_task(_listen(listen_pool, moved, moves), name="dashboard-listen")
    try:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(REFRESH_SECONDS):
                    await moved.wait()
                await asyncio.sleep(DEBOUNCE_SECONDS)  # one snapshot for a burst of batches
            moved.clear()
            if broadcaster.listeners:
                await _publish(pool, broadcaster)
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)


async def _publish(pool: asyncpg.Pool, broadcaster: Broadcaster) -> None:
    try:
        broadcaster.publish(_encode(await dashboard_snapshot(pool)))
    except Exception as error:  # the database is away: keep the feed alive, try again next time
        log.warning("dashboard_snapshot_failed", error=repr(error))


async def _listen(pool: asyncpg.Pool, moved: asyncio.Event, moves: ReadModelsMoved) -> None:
    """Hold one LISTEN connection; when it dies, take another after a growing pause."""
    first, longest = RECONNECT_SECONDS
    pause = first
    while True:
        try:
            await _listen_until_lost(pool, moved, moves)
            pause = first  # it had been listening: this loss starts the pauses over
        except Exception as error:  # cannot connect (database restarting): never let the feed die
            log.warning("dashboard_listen_failed", error=repr(error), retry_in=pause)
        await asyncio.sleep(pause)
        pause = min(pause * 2, longest)


async def _listen_until_lost(pool: asyncpg.Pool, moved: asyncio.Event, moves: ReadModelsMoved) -> None:
    def notified(*_: object) -> None:
        moved.set()
        moves.moved()

    lost = asyncio.Event()
    conn = await pool.acquire()
    try:
        conn.add_termination_listener(lambda _conn: lost.set())
        keeps_session_state(conn)
        await conn.add_listener(CHANNEL, notified)
        moved.set()  # whatever moved while nobody listened shows at once
        moves.moved()
        await lost.wait()
        log.warning("dashboard_listener_lost")
    finally:
        # After a lost connection asyncpg may have taken it back already, and then
        # even is_closed() raises: that must not pass for a failure to listen.
        with contextlib.suppress(Exception):
            if not conn.is_closed():
                await conn.remove_listener(CHANNEL, notified)
        with contextlib.suppress(Exception):
            await pool.release(conn)
