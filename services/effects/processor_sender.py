"""The sender of processor instructions: pending rows → calls → case events.

One lane per case: a lane sends its case's pending instructions one after
another, in the order the decisions were made (so per case, and so per card,
the processor sees them in order), and a call that fails for a while holds
back only its own case; up to `lanes` cases are worked at once. A call that
may work later (timeout, connection error, 5xx, 408, 409, 429) is sent again,
same body and token, with exponential backoff and jitter (stamina), for as
long as it takes: an instruction waits, it is never dropped.

The answer becomes a case event, recorded by the system actor
(`ProcessorInstructionConfirmed` or `...Rejected`), and only then is the row
marked answered. A crash between the processor applying a call and that
event being stored leaves the row pending: the call is sent again, the
processor answers the first answer again (same token), and the decision
records an answer for a token only once.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from functools import partial
from uuid import UUID

import asyncpg
import stamina
import structlog

from casedesk.domain.decisions import confirm_instruction, reject_instruction
from casedesk.domain.values import Actor, InstructionKind
from casedesk.services.case_service import CaseService, Decision
from casedesk.services.effects.instruction_calls import cases_waiting, mark_answered, next_call, note_failure
from casedesk.services.effects.processor_client import (
    Applied,
    ProcessorClient,
    ProcessorUnavailable,
    Refused,
    retry_hook,
)

log = structlog.get_logger("casedesk.processor")

# Who records the processor's answers on a case: casedesk itself, not an agent.
SYSTEM = Actor(id="system:processor", name="casedesk (card processor link)", role="system", department="fraud")
RESCAN_SECONDS = 1.0

@dataclass(frozen=True, slots=True)
class Pending:
    """A pending row: the call to make and what it concerns."""

    token: str
    case_id: UUID
    card_id: str
    instruction: InstructionKind
    path: str
    body: bytes


class InstructionSender:
    """Works the pending instructions, a lane per case."""

    def __init__(self, pool: asyncpg.Pool, cases: CaseService, client: ProcessorClient, *,
                 retry_max: float = 10.0, lanes: int = 32) -> None:
        self.pool, self.cases, self.client = pool, cases, client
        self.retry_max, self.lane_count = retry_max, lanes
        self._lanes: dict[UUID, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._handed: list[UUID] = []  # cases the follower just recorded calls for
        self._rescan = True  # look in the table for waiting cases (at start, a lane freed, each RESCAN_SECONDS)

    def wake(self, cases: list[UUID] | None = None) -> None:
        """Start lanes for these cases (the follower just recorded their calls), or, with none named,
        for every case with a pending call."""
        if cases is None:
            self._rescan = True
        else:
            self._handed.extend(cases)
        self._wake.set()

    async def run(self) -> None:
        """Start lanes for waiting cases whenever woken (or every RESCAN_SECONDS), until cancelled.

        The cases the follower hands over get a lane at once, without asking the
        table which cases wait (one round trip less between a decision and the
        processor); the table is asked at start, when a lane ends and every
        RESCAN_SECONDS, so a case handed over while every lane was busy waits
        for none of them in particular.
        """
        try:
            while True:
                self._wake.clear()
                handed, self._handed = self._handed, []
                rescan, self._rescan = self._rescan, False
                for case_id in dict.fromkeys(handed):
                    if case_id in self._lanes:
                        continue  # its lane reads the case's next call from the table
                    if len(self._lanes) >= self.lane_count:
                        break  # the others wait for a lane to end, which rescans
                    self._lanes[case_id] = asyncio.create_task(self._lane(case_id), name=f"lane-{case_id}")
                free = self.lane_count - len(self._lanes)
                if rescan and free > 0:
                    for case_id in await cases_waiting(self.pool, list(self._lanes), free):
                        self._lanes[case_id] = asyncio.create_task(self._lane(case_id), name=f"lane-{case_id}")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(RESCAN_SECONDS):
                        await self._wake.wait()
                if not self._wake.is_set():
                    self._rescan = True
        finally:
            lanes = list(self._lanes.values())
            for lane in lanes:
                lane.cancel()
            await asyncio.gather(*lanes, return_exceptions=True)

    async def _lane(self, case_id: UUID) -> None:
        try:
            while (row := await next_call(self.pool, case_id)) is not None:
                await self._settle(Pending(*row.values()))
        except Exception:  # the database, most likely: the rescan picks the case up again
            log.exception("processor_lane_failed", case_id=str(case_id))
            await asyncio.sleep(RESCAN_SECONDS)
        finally:
            self._lanes.pop(case_id, None)
            self.wake()  # a lane is free: another case may wait for one

    async def _settle(self, row: Pending) -> None:
        answer = await self._send(row)
        await self.cases.record_for_system(SYSTEM, row.case_id, _recording(row, answer))
        await mark_answered(self.pool, row.token, confirmed=isinstance(answer, Applied))
        log.info("processor_instruction_answered", token=row.token, instruction=row.instruction,
                 answer=type(answer).__name__)

    async def _send(self, row: Pending) -> Applied | Refused:
        async for attempt in stamina.retry_context(
            on=retry_hook, attempts=None, timeout=None, wait_initial=0.05, wait_max=self.retry_max,
            wait_jitter=min(1.0, self.retry_max / 2),
        ):
            with attempt:
                try:
                    return await self.client.send(row.path, row.body)
                except ProcessorUnavailable as error:
                    await self._note_failure(row, str(error))
                    raise
        raise AssertionError("unreachable: the retries never stop")

    async def _note_failure(self, row: Pending, error: str) -> None:
        with contextlib.suppress(Exception):  # only a note for people; the retry matters, not this
            await note_failure(self.pool, row.token, error)


def _recording(row: Pending, answer: Applied | Refused) -> Decision:
    if isinstance(answer, Applied):
        return partial(confirm_instruction, instruction=row.instruction, token=row.token, card_id=row.card_id,
                       processor_reference=answer.reference, applied_at=answer.at)
    return partial(reject_instruction, instruction=row.instruction, token=row.token, card_id=row.card_id,
                   status=answer.status, code=answer.code, reason=answer.reason)
