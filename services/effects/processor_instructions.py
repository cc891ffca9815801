"""Processor instructions: follow the case log, keep each call as pending, have it sent.

The pattern of the projections (projections/runner.py) and of the
`eventsourcing` library's process applications, in two halves:

- the follower reads the log after its tracking position and, for every event
  that asks something of the card processor (domain/processor_instructions.py),
  inserts one `processor_instructions` row per call, pending, with its token,
  in the same transaction as its new position: a crash loses none and, the
  token being the row's key, doubles none (past events that ask nothing, the
  position is stored at most once a second: one query per wake, nothing
  written, and after a crash those are read again, recording nothing);
- the sender (processor_sender.py) posts pending rows and turns answers into
  case events.

Both run under one session advisory lock, so across any number of processes
one of them works at a time; if its connection dies, PostgreSQL frees the
lock and a standby takes over, resending what was pending (same tokens).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any
from uuid import UUID

import asyncpg
import msgspec
import structlog
from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic

from casedesk.domain import events as ev
from casedesk.domain.processor_instructions import ProcessorInstruction, instructions_for
from casedesk.projections.runner import lock_key
from casedesk.services.case_service import CaseService
from casedesk.services.effects.instruction_calls import record_calls
from casedesk.services.effects.processor_client import ProcessorClient
from casedesk.services.effects.processor_sender import InstructionSender
from casedesk.services.store.database import keeps_session_state
from casedesk.services.store.event_mapper import CaseEventMapper
from casedesk.services.store.event_store import CHANNEL, next_of_topics
from casedesk.services.store.tracking import move_position, read_position

log = structlog.get_logger("casedesk.processor")

NAME = "processor_instructions"  # its tracking row and its lock
BATCH = 500
FALLBACK_POLL_SECONDS = 1.0
# Woken by an append, the follower waits this long before reading: under a busy desk's note
# load every group commit NOTIFYs, and reading the log once per commit cost the API a share of
# its throughput for events that ask nothing of the processor. 10 ms bounds the reads at 100 a
# second and stays far inside the 100 ms a block may take to reach the processor.
GATHER_SECONDS = 0.01
# Only these events ask anything of the processor; the others are skipped in the query.
TOPICS = [get_topic(t) for t in (ev.CardSuspended, ev.ReplacementCardIssued, ev.PaymentStopped)]
_encode = msgspec.json.Encoder().encode

# One round trip per wake (event_store.next_of_topics): on a busy desk almost every append is a
# note or a contact, so a wake then costs that one query, nothing written.
# Past events that ask nothing, the stored position is moved at most this often: reading
# them again after a crash costs a scan and records nothing twice (the token is the key).
SAVE_POSITION_SECONDS = 1.0

Call = tuple[int, int, ev.CaseEvent, ProcessorInstruction]  # position, n-th call of its event, event, call


class Follower:
    """Reads the log after its position and records the calls the events ask for.

    The position is kept in memory between wakes and read from the tracking row
    when the follower (re)starts, i.e. whenever it takes the lock. The head is
    read with the events: appends commit in notification order (the store's
    table lock), so every id up to it is visible, and the position may move to
    the head even past events that ask nothing.
    """

    def __init__(self, mapper: CaseEventMapper, batch: int = BATCH) -> None:
        self.mapper, self.batch = mapper, batch
        self.position: int | None = None  # read from the tracking row on first use
        self._saved = 0
        self._saved_at = 0.0
        self.cases: list[UUID] = []

    async def follow(self, conn: asyncpg.Connection) -> int:
        """Record the calls of the next events after the position; return how many events asked for
        any (0: caught up with the head). `cases` then names the cases they concern."""
        if self.position is None:
            self.position = self._saved = await read_position(conn, NAME) or 0
            self._saved_at = time.monotonic()
        head, found = await next_of_topics(conn, self.position, TOPICS, self.batch)
        if not found:
            if head > self.position:
                self.position = head
                if time.monotonic() - self._saved_at >= SAVE_POSITION_SECONDS:
                    await self.save(conn)
            return 0
        events: list[tuple[int, ev.CaseEvent]] = [
            (r[1], self.mapper.to_domain_event(Notification(id=r[1], originator_id=r[2], originator_version=r[3],
                                                            topic=r[4], state=bytes(r[5])))) for r in found]
        calls: list[Call] = [(at, n, event, i) for at, event in events
                             for n, i in enumerate(instructions_for(event), 1)]
        moved_to = found[-1][1] if len(found) == self.batch else head
        moved = await record_calls(
            conn, [(i.token, i.case_id, i.card_id, i.instruction, i.path, _encode(i.call), at, n, event.timestamp)
                   for at, n, event, i in calls], NAME, moved_to)
        if moved is None:
            log.warning("processor_position_not_moved", position=self.position)
        self.position = self._saved = moved_to
        self._saved_at = time.monotonic()
        self.cases = list(dict.fromkeys(i.case_id for *_, i in calls))
        return len(found)

    async def save(self, conn: asyncpg.Connection) -> None:
        """Store the position (past events that asked nothing), if it moved since last stored."""
        if self.position is None or self.position <= self._saved:
            return
        await move_position(conn, NAME, self.position)
        self._saved, self._saved_at = self.position, time.monotonic()


class ProcessorInstructions:
    """The follower and the sender, run together in one process at a time (advisory lock)."""

    def __init__(self, pool: asyncpg.Pool, cases: CaseService, client: ProcessorClient, *,
                 retry_max: float = 10.0, lanes: int = 32) -> None:
        self.pool, self.cases, self.client = pool, cases, client
        self.sender = InstructionSender(pool, cases, client, retry_max=retry_max, lanes=lanes)
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._work(), name="processor-instructions")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.client.close()

    def wake(self, *_: Any) -> None:
        self._wake.set()

    async def _work(self) -> None:
        while not self._stopping:
            try:
                async with self.pool.acquire() as holder, self.pool.acquire() as listener:
                    await self._hold_lock_and_run(holder, listener)
            except asyncio.CancelledError:
                raise
            except Exception:  # database gone: log, back off, take the lock again
                log.exception("processor_instructions_failed")
                await asyncio.sleep(1.0)

    async def _hold_lock_and_run(self, holder: asyncpg.Connection, listener: asyncpg.Connection) -> None:
        # Per schema: casedesks in two schemas of one database (tests do that) each send their own.
        key = lock_key(f"{NAME}@{await holder.fetchval('SELECT current_schema()')}")
        keeps_session_state(holder)
        keeps_session_state(listener)
        while not await holder.fetchval("SELECT pg_try_advisory_lock($1)", key):
            if self._stopping:
                return
            await asyncio.sleep(FALLBACK_POLL_SECONDS)  # another process sends; stand by
        await listener.add_listener(CHANNEL, self.wake)
        sending = asyncio.create_task(self.sender.run(), name="processor-sender")
        follower = Follower(self.cases.mapper)  # from the stored position: another process may have moved it
        try:
            while not self._stopping:
                self._wake.clear()
                while found := await follower.follow(holder):
                    self.sender.wake(follower.cases)
                    if found < follower.batch:
                        break
                if sending.done():
                    sending.result()  # the sender failed: give up the lock and start again
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(FALLBACK_POLL_SECONDS):
                        await self._wake.wait()
                if not self._wake.is_set():  # a quiet second: store how far the log was read
                    await follower.save(holder)
                else:
                    await asyncio.sleep(GATHER_SECONDS)
        finally:
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)
            with contextlib.suppress(Exception):
                await listener.remove_listener(CHANNEL, self.wake)
            with contextlib.suppress(Exception):
                if not holder.is_closed():
                    await holder.execute("SELECT pg_advisory_unlock($1)", key)
