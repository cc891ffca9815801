"""Claiming the next case from a work queue: atomic, also with 50 agents at once.

The claim picks the first waiting case nobody is holding and puts a hold row
on it (FOR UPDATE SKIP LOCKED and the hold in one statement), and writes
CaseAssigned through the case service. The domain's `already-assigned` rule is the final guard: even if the
queue read model lags, no case is ever handed to two agents.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any
from uuid import UUID

import asyncpg
from eventsourcing.persistence import StoredEvent

from casedesk.domain import decisions as d
from casedesk.domain.errors import RuleViolation
from casedesk.domain.events import CaseEvent
from casedesk.projections.work_queues import CLAIM_HOLD_SECONDS, hold_briefly, hold_next
from casedesk.services.case_service import Answer, CaseService, Idempotency, Outcome
from casedesk.services.store.event_mapper import CaseEventMapper
from casedesk.services.tokens import Principal
from casedesk.services.turn_taking import not_quick

# A claim holds its case from the start for as long as the read model may take to
# drop it from the queue (CLAIM_HOLD_SECONDS); a claim that fails for any reason but the domain's
# refusal shortens it to RELEASED_SECONDS, so the case is soon claimable again.
# (Only a process dying mid-claim leaves the long hold; the case is not lost:
# a supervisor can still assign it, and any change to it drops the hold.)
RELEASED_SECONDS = 0
ATTEMPTS = 50
# A queue whose waiting rows were all skipped for their row lock (a projection batch rewriting them)
# is looked at again after a pause growing from LOCKED_PAUSE to LOCKED_PAUSE_MAX, for at most
# LOCKED_FOR_AT_MOST seconds (a lock held longer, as by a stuck session, ends in "nothing to claim").
# Kept apart from ATTEMPTS: lost races and locked rows do not use up each other's budget.
LOCKED_PAUSE = 0.01
LOCKED_PAUSE_MAX = 0.05
LOCKED_FOR_AT_MOST = 2.0


LOST_RACE = object()  # the candidate was held by another claim meanwhile: try the next
ONLY_LOCKED = object()  # nothing claimable now, but a waiting case's row was locked: look again

@dataclass(frozen=True, slots=True)
class HeldCase:
    """A case this claim holds, with what was read beside the hold."""

    case_id: UUID
    snapshot_version: int
    snapshot: bytes | None
    case_file: Mapping[str, Any] | None  # CASE_FILE_COLUMNS (departments, assignee unused); None until projected
    events: list[CaseEvent]  # the stream after the older of snapshot and case file

    @property
    def version(self) -> int:
        """The version this read reached."""
        if self.events:
            return self.events[-1].originator_version
        return max(self.snapshot_version, self.case_file["version"] if self.case_file else 0)


@dataclass(frozen=True, slots=True)
class Claim:
    """An assignment made by a claim, and the case file it started from."""

    outcome: Outcome
    case_file: Mapping[str, Any] | None
    events: list[CaseEvent]  # what the hold read of the stream, then the assignment's events
    read_up_to: int  # the version the hold's read reached

    @property
    def complete(self) -> bool:
        """True when `events` run unbroken to the assignment: no write came between the read and it."""
        return self.read_up_to + len(self.outcome.events) == self.outcome.version


async def _hold_next(pool: asyncpg.Pool, mapper: CaseEventMapper, queue: str, agent_id: str) -> object | None:
    """The case now held for this claim; None if none waits; LOST_RACE or ONLY_LOCKED to look again."""
    row = await hold_next(pool, queue, agent_id, CLAIM_HOLD_SECONDS)
    if row["candidate"] is None:
        # A case may wait with its queue row locked for a moment (a projection batch rewriting it):
        # answering "nothing to claim" then would send the agent away from a waiting case.
        return ONLY_LOCKED if row["only_locked"] else None
    case_id = row["held"]
    if case_id is None:
        return LOST_RACE
    events = [mapper.to_domain_event(StoredEvent(originator_id=case_id, originator_version=v, topic=t, state=bytes(s)))
              for v, t, s in zip(row["versions"] or (), row["topics"] or (), row["states"] or (), strict=True)]
    return HeldCase(case_id, row["snapshot_version"] or 0, row["snapshot"],
                    row if row["version"] is not None else None, events)


async def claim_next(pool: asyncpg.Pool, cases: CaseService, principal: Principal, queue: str, *,
                     idempotency: Idempotency | None = None, answer: Answer | None = None) -> Claim | None:
    """Assign the caller the next case of the queue; None when the queue is empty.

    With an Idempotency-Key, `answer`'s answer is kept with the assignment, as for any command.
    """
    attempts, pause, locked_until = 0, LOCKED_PAUSE, None
    while attempts < ATTEMPTS:
        held = await _hold_next(pool, cases.mapper, queue, principal.sub)
        if held is None:
            return None
        if held is ONLY_LOCKED:
            now = time.monotonic()
            locked_until = locked_until or now + LOCKED_FOR_AT_MOST
            if now >= locked_until:
                return None
            not_quick()  # pausing for up to 2 s: long work need not wait for this claim
            await asyncio.sleep(pause)
            pause = min(pause * 2, LOCKED_PAUSE_MAX)
            continue
        attempts += 1
        if not isinstance(held, HeldCase):
            continue
        case_id = held.case_id
        try:
            cases.adopt(case_id, held.snapshot,
                        (e for e in held.events if e.originator_version > held.snapshot_version))
            outcome = await cases.change(principal, case_id, partial(  # type: ignore[arg-type]
                d.assign, agent_id=principal.sub, agent_name=principal.name, queue=queue),
                idempotency=idempotency, answer=answer)
        except RuleViolation:
            # Taken or closed since the read model saw it: keep the hold (it stays out of
            # other claims even if the read model lags; a release or reopen frees it,
            # see work_queues.write_queues) and try the next.
            continue
        except BaseException:
            # Not assigned (the database failed, the request was cancelled): let it go.
            with contextlib.suppress(Exception):
                await hold_briefly(pool, case_id, principal.sub, RELEASED_SECONDS)
            raise
        return Claim(outcome, held.case_file, [*held.events, *outcome.events], held.version)
    return None
