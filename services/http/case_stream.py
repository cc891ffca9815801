"""Presence and the per-case event stream (issue 19), and the agent's case page.

`POST /v1/cases/{id}/presence` is a heartbeat (services/presence.py);
`GET /v1/cases/{id}/presence` says who is on the case; `GET /v1/cases/{id}/stream`
sends server-sent events: `presence` (who is on the case now, as the GET answers)
at once and on every change, and `case-event` for every event appended to the
case from then on, with its timeline entry as the timeline route shows it.

One `CaseFeed` per process holds one LISTEN connection (on the primary, like
the dashboard's) for two channels: `case_events`, which every append notifies
in its own transaction, and `case_presence`, which a heartbeat notifies when
the people on a case change. A wake-up reads, in one indexed query, every
event newer than what each open stream has sent, for all watched cases at
once; so a stream never misses an event appended between its first read and
its subscription, nor one whose NOTIFY was lost with a connection (a slow
timer looks again while streams are open). Each stream folds the new events
into its own copy of the case file, exactly as the projection does, so its
timeline entries are the timeline route's, masked alike. Events this process's
own commands append are handed out at once (CaseService.appended), before the
NOTIFY comes back; a stream takes each version once. Leaving by expiry
is looked for at the earliest expiry the feed last read.

Nothing here holds a command: heartbeats write only case_presence; the feed
only reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import tzinfo
from uuid import UUID

import asyncpg
import msgspec
import structlog
from aiohttp import web
from aiohttp_sse import sse_response
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from casedesk.domain.clock_policies import ClockPolicy
from casedesk.domain.events import CaseEvent, CaseOpened
from casedesk.projections.timeline.fold import apply
from casedesk.projections.timeline.rows import reach_of
from casedesk.projections.timeline.shapes import CaseFile, TimelineEntry
from casedesk.services import presence
from casedesk.services.case_access import READ_EVERY_CASE, CaseHiddenError, check_may_read_parts
from casedesk.services.http.app_keys import (
    CASE_READER,
    CASES,
    CLOCK_POLICY,
    CUSTOMER_KEYS,
    DIRECT_POOL,
    POOL,
    READ_POOL,
    SETTINGS,
    ZONE,
)
from casedesk.services.http.case_requests import Request
from casedesk.services.http.commands import path_uuid
from casedesk.services.http.middleware import PRINCIPAL
from casedesk.services.http.request_body import decode
from casedesk.services.http.static_page import static_page
from casedesk.services.store.database import keeps_session_state
from casedesk.services.store.event_mapper import CaseEventMapper
from casedesk.services.store.event_store import CHANNEL as APPENDED
from casedesk.services.store.event_store import events_after_versions
from casedesk.services.tokens import Principal
from casedesk.services.turn_taking import not_quick

log = structlog.get_logger("casedesk.case_stream")

CASE_OPENED_TOPIC = get_topic(CaseOpened)
PING_SECONDS = 15.0
CLIENT_RETRY_MS = 2000
LOOK_AGAIN_SECONDS = 2.0  # a NOTIFY lost with a LISTEN connection delays a stream this long at most
SWEEP_SECONDS = 300.0
INBOX = 256  # events a stream may fall behind before it is ended (the browser reconnects and reads afresh)
RECONNECT_SECONDS = (0.5, 10.0)
CLOSED = ("", b"")

_encode = msgspec.json.Encoder().encode

class Heartbeat(Request, kw_only=True):
    """What the agent's client does with the case it has open."""

    activity: presence.Activity


class CaseEventMessage(msgspec.Struct, frozen=True, kw_only=True):
    """The data of a `case-event`: one new event of the case, as its timeline entry."""

    case_id: UUID
    type: str
    version: int
    position: int
    entry: TimelineEntry


@dataclass(eq=False)
class Watch:
    """One open stream: what it has sent, its copy of the case file, and its inbox."""

    case_id: UUID
    principal: Principal
    file: CaseFile
    inbox: asyncio.Queue[tuple[str, bytes]] = field(default_factory=lambda: asyncio.Queue(INBOX))
    presence_sent: bytes = b""

    @property
    def version(self) -> int:
        return self.file.view.version

    def send(self, event: str, data: bytes) -> bool:
        """Queue an event for the client; False (and the stream ends) when it is too far behind."""
        try:
            self.inbox.put_nowait((event, data))
            return True
        except asyncio.QueueFull:
            self.close()
            return False

    def close(self) -> None:
        with contextlib.suppress(asyncio.QueueEmpty):
            while True:
                self.inbox.get_nowait()
        self.inbox.put_nowait(CLOSED)


class CaseFeed:
    """The process's LISTEN on appends and presence, fanned out to the open case streams."""

    def __init__(self, listen_pool: asyncpg.Pool, pool: asyncpg.Pool, mapper: CaseEventMapper, zone: tzinfo,
                 policy: ClockPolicy, expiry: float) -> None:
        self.listen_pool, self.pool, self.mapper = listen_pool, pool, mapper
        self.zone, self.policy, self.expiry = zone, policy, expiry
        self.watches: dict[UUID, set[Watch]] = {}
        self._wake = asyncio.Event()
        self._appended = True
        self._presence_moved: set[UUID] = set()
        self._look_at: dict[UUID, float] = {}  # loop time at which someone on the case may have expired
        self.listening = asyncio.Event()

    @contextlib.contextmanager
    def watching(self, watch: Watch) -> Iterator[None]:
        self.watches.setdefault(watch.case_id, set()).add(watch)
        self._appended = True  # whatever was appended since the stream's first read
        self._wake.set()
        try:
            yield
        finally:
            watchers = self.watches.get(watch.case_id)
            if watchers is not None:
                watchers.discard(watch)
                if not watchers:
                    del self.watches[watch.case_id]
                    self._look_at.pop(watch.case_id, None)

    def close(self) -> None:
        for watchers in self.watches.values():
            for watch in watchers:
                watch.close()

    def _on_append(self, *_: object) -> None:
        if self.watches:
            self._appended = True
            self._wake.set()

    def _on_presence(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        with contextlib.suppress(ValueError):
            case_id = UUID(payload)
            if case_id in self.watches:
                self._presence_moved.add(case_id)
                self._wake.set()

    async def run(self) -> None:
        listener = asyncio.create_task(self._listen(), name="case-feed-listen")
        swept = time.monotonic()
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._pause()):
                        await self._wake.wait()
                self._wake.clear()
                if not self.watches:
                    self._appended = False
                    self._presence_moved.clear()
                else:
                    try:
                        await self._turn()
                    except Exception as error:  # the database is away: keep the feed, look again soon
                        log.warning("case_feed_failed", error=repr(error))
                        await asyncio.sleep(0.5)
                        self._appended = True
                if time.monotonic() - swept > SWEEP_SECONDS:
                    swept = time.monotonic()
                    with contextlib.suppress(Exception):
                        await presence.sweep(self.pool, self.expiry)
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)

    def _pause(self) -> float:
        if not self.watches:
            return LOOK_AGAIN_SECONDS * 5
        now = time.monotonic()
        due = min(self._look_at.values(), default=now + LOOK_AGAIN_SECONDS)
        return max(0.0, min(due - now, LOOK_AGAIN_SECONDS))

    async def _turn(self) -> None:
        # Appends: always when watched (a NOTIFY may have been lost), at least every LOOK_AGAIN_SECONDS.
        self._appended = False
        await self._deliver_events()
        now = time.monotonic()
        cases = self._presence_moved | {c for c, at in self._look_at.items() if at <= now}
        self._presence_moved = set()
        cases &= set(self.watches)
        if cases:
            await self._deliver_presence(sorted(cases))

    async def _deliver_events(self) -> None:
        since = {case_id: min(w.version for w in watchers) for case_id, watchers in self.watches.items()}
        if not since:
            return
        rows = await events_after_versions(self.pool, since)
        for row in rows:
            if all(row["originator_version"] <= w.version for w in self.watches.get(row["originator_id"], ())):
                continue  # handed out already, as this process appended it
            stored = StoredEvent(originator_id=row["originator_id"], originator_version=row["originator_version"],
                                 topic=row["topic"], state=bytes(row["state"]))
            self._hand_out(self.mapper.to_domain_event(stored), row["notification_id"])

    def appended_here(self, events: list[CaseEvent], positions: list[int]) -> None:
        """What this process's own commands appended, handed out at once (no NOTIFY, no read).

        The feed's read would bring the same events a moment later; each stream
        takes an event once, by version, so whichever comes first is sent."""
        if self.watches:
            for event, position in zip(events, positions, strict=True):
                self._hand_out(event, position)

    def _hand_out(self, event: CaseEvent, position: int) -> None:
        for watch in list(self.watches.get(event.originator_id, ())):
            if event.originator_version != watch.version + 1:
                continue  # sent already; or a gap (another process's event first): the feed's read fills it
            apply(watch.file, event, self.zone, policy=self.policy)
            entry = watch.file.timeline.pop()
            view = watch.file.view
            try:  # an escalation or release may take the case out of the caller's sight
                check_may_read_parts(watch.principal, view.departments, view.assignee.id if view.assignee else None)
            except CaseHiddenError:
                watch.close()
                continue
            watch.send("case-event", _encode(CaseEventMessage(
                case_id=event.originator_id, type=type(event).__name__, version=event.originator_version,
                position=position, entry=entry)))

    async def _deliver_presence(self, case_ids: list[UUID]) -> None:
        found = await presence.present(self.pool, case_ids, self.expiry)
        now = time.monotonic()
        for case_id, present in found.items():
            if present.leaves_in is None:
                self._look_at.pop(case_id, None)
            else:  # a heartbeat since may have moved it on: then nothing changes, and it is looked at later
                self._look_at[case_id] = now + max(present.leaves_in, 0.0) + 0.05
            data = _encode(present.answer)
            for watch in list(self.watches.get(case_id, ())):
                if watch.presence_sent != data:
                    watch.presence_sent = data
                    watch.send("presence", data)

    def schedule(self, case_id: UUID, present: presence.Present) -> None:
        """A stream's first presence read also says when to look for someone leaving."""
        if present.leaves_in is not None:
            at = time.monotonic() + max(present.leaves_in, 0.0) + 0.05
            self._look_at[case_id] = min(self._look_at.get(case_id, at), at)
            self._wake.set()

    async def _listen(self) -> None:
        first, longest = RECONNECT_SECONDS
        pause = first
        while True:
            try:
                await self._listen_until_lost()
                pause = first
            except Exception as error:  # cannot connect (database restarting): never let the feed die
                log.warning("case_feed_listen_failed", error=repr(error), retry_in=pause)
            self.listening.clear()
            await asyncio.sleep(pause)
            pause = min(pause * 2, longest)

    async def _listen_until_lost(self) -> None:
        lost = asyncio.Event()
        conn = await self.listen_pool.acquire()
        try:
            conn.add_termination_listener(lambda _conn: lost.set())
            keeps_session_state(conn)
            await conn.add_listener(APPENDED, self._on_append)
            await conn.add_listener(presence.CHANNEL, self._on_presence)
            self.listening.set()
            self._appended = True  # what was appended while nobody listened shows at once
            self._presence_moved |= set(self.watches)
            self._wake.set()
            await lost.wait()
            log.warning("case_feed_listener_lost")
        finally:
            with contextlib.suppress(Exception):
                if not conn.is_closed():
                    await conn.remove_listener(APPENDED, self._on_append)
                    await conn.remove_listener(presence.CHANNEL, self._on_presence)
            with contextlib.suppress(Exception):
                await self.listen_pool.release(conn)


CASE_FEED = web.AppKey("case_feed", CaseFeed)


async def case_feed(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: the process's case feed, for as long as the app runs."""
    settings = app[SETTINGS]
    # The feed reads through the direct pool too, never queueing behind the requests for a connection of
    # POOL: under load a note's delivery would otherwise wait for the very requests it competes with.
    feed = CaseFeed(app[DIRECT_POOL], app[DIRECT_POOL], app[CASE_READER].mapper, app[ZONE], app[CLOCK_POLICY],
                    settings.presence_expiry)
    app[CASE_FEED] = feed
    app[CASES].appended.append(feed.appended_here)
    task = asyncio.create_task(feed.run(), name="case-feed")
    yield
    app[CASES].appended.remove(feed.appended_here)
    feed.close()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def close_case_streams(app: web.Application) -> None:
    """An on_shutdown hook: end open case streams, so a stopping server need not wait for them."""
    if CASE_FEED in app:
        app[CASE_FEED].close()


async def _case_file(request: web.Request, case_id: UUID) -> CaseFile:
    """The case file as it stands now (the read model plus the stream's newer events), if the caller may read it."""
    folded = await request.app[CASE_READER].file(case_id)
    view = folded.view
    check_may_read_parts(request[PRINCIPAL], view.departments, view.assignee.id if view.assignee else None)
    return folded


async def _readable(request: web.Request) -> UUID:
    """The case id in the path, once the caller may read the case (404 otherwise, as for reading it)."""
    case_id = path_uuid(request, "case_id")
    reach = await reach_of(request.app[READ_POOL], [case_id])
    if reach:
        _, departments, assignee = reach[0]
        check_may_read_parts(request[PRINCIPAL], departments, assignee)
    else:  # not projected yet (just opened), or no case at all: the write side knows
        case = await request.app[CASES].load(case_id)
        check_may_read_parts(request[PRINCIPAL], case.departments,
                             case.assignee.agent_id if case.assignee else None)
    return case_id


async def post_presence(request: web.Request) -> web.Response:
    """A heartbeat: the caller has the case open now (204)."""
    body = await decode(request, Heartbeat)
    case_id, principal = path_uuid(request, "case_id"), request[PRINCIPAL]
    expiry = request.app[SETTINGS].presence_expiry
    # One round trip for nearly every beat: the access check and the upsert in one statement.
    if not await presence.heartbeat_if_readable(request.app[POOL], case_id, principal.sub, principal.name,
                                                body.activity, expiry,
                                                reads_every_case=principal.role in READ_EVERY_CASE,
                                                departments=list(principal.departments)):
        await _readable(request)  # 404 for a case not there or not the caller's; else just not projected yet
        await presence.heartbeat(request.app[POOL], case_id, principal.sub, principal.name, body.activity, expiry)
    return web.Response(status=204)


async def get_presence(request: web.Request) -> web.Response:
    case_id = await _readable(request)
    found = await presence.present(request.app[POOL], [case_id], request.app[SETTINGS].presence_expiry)
    return web.Response(body=_encode(found[case_id].answer), content_type="application/json")


async def case_stream(request: web.Request) -> web.StreamResponse:
    """`presence` at once and on every change; a `case-event` for every new event of the case."""
    case_id = path_uuid(request, "case_id")
    feed = request.app[CASE_FEED]
    watch = Watch(case_id, request[PRINCIPAL], await _case_file(request, case_id))
    with feed.watching(watch):
        found = (await presence.present(request.app[POOL], [case_id], feed.expiry))[case_id]
        feed.schedule(case_id, found)
        watch.presence_sent = _encode(found.answer)
        not_quick()  # a stream lasts as long as its client: long work does not wait for it
        async with sse_response(request, ping_interval=PING_SECONDS) as stream:
            with contextlib.suppress(ConnectionResetError, TimeoutError):
                await stream.send(watch.presence_sent.decode(), event="presence", retry=CLIENT_RETRY_MS)
                while stream.is_connected() and request.transport is not None:
                    try:
                        async with asyncio.timeout(1.0):  # wake each second to notice a gone client
                            event, data = await watch.inbox.get()
                    except TimeoutError:
                        continue
                    if (event, data) == CLOSED:
                        break
                    # Sealed personal data opens on its way out, as in every answer (issue 21).
                    await stream.send((await request.app[CUSTOMER_KEYS].open_json(data)).decode(), event=event)
    return stream


async def desk_case_page(request: web.Request) -> web.StreamResponse:
    path_uuid(request, "case_id")  # 404 problem for an id that cannot be a case
    return static_page("desk_case.html")
