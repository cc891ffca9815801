"""The application side of four-eyes approvals: find an approval's case, record expiries, sweep.

An approval lives on its case's stream; the case_approvals read model says
which case an approval id belongs to. Expiry is an event recorded by casedesk
itself (`ApprovalExpired`, a system actor), at the moment of the service's
clock (`CaseService.clock`, which tests set): when an approve or reject comes
too late (the caller is still told 409 `approval-expired`), and by a sweep
every API process runs, so the `approvals` queue empties itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from functools import partial
from uuid import UUID

import asyncpg
import structlog

from casedesk.domain import decisions as d
from casedesk.domain.errors import RuleViolation
from casedesk.domain.values import Actor
from casedesk.projections.approvals import case_of_approval, due_for_expiry
from casedesk.services.case_service import CaseNotFoundError, CaseService, Outcome
from casedesk.services.store.event_store import log_head
from casedesk.services.store.tracking import read_position

log = structlog.get_logger("casedesk.approvals")

EXPIRY = Actor(id="system:approvals", name="casedesk (approval expiry)", role="system", department="")
SWEEP_SECONDS = 60.0
# An approval id not yet in the read model: wait this long at most for it to catch up with the log.
CATCH_UP_SECONDS = 5.0


# The projection whose batches write case_approvals (projections/case_files.py).
PROJECTION = "case_files"


class ApprovalsBehindError(Exception):
    """The projection writing case_approvals has not reached the log's head within CATCH_UP_SECONDS."""


async def case_of(pool: asyncpg.Pool, approval_id: UUID) -> UUID | None:
    """The case of an approval; None when there is no such approval.

    A request just made may not be projected yet: until the projection writing
    case_approvals has reached the log's head as it stood when asked (every
    request answered before is at or below it; the position is read before the
    row, so a row committed meanwhile is seen) it is waited for, CATCH_UP_SECONDS
    at most, then ApprovalsBehindError rather than a wrong "no such approval".
    """
    deadline, head = time.monotonic() + CATCH_UP_SECONDS, await log_head(pool)
    while True:
        caught_up = (await read_position(pool, PROJECTION) or 0) >= head
        case_id = await case_of_approval(pool, approval_id)
        if case_id is not None or caught_up:
            return case_id
        if time.monotonic() > deadline:
            raise ApprovalsBehindError(f"{PROJECTION} has not reached position {head}")
        await asyncio.sleep(0.02)


async def record_expiry(cases: CaseService, case_id: UUID, approval_id: UUID) -> Outcome:
    """ApprovalExpired on the case if the approval is pending and past its 72 h (nothing otherwise)."""
    return await cases.record_for_system(EXPIRY, case_id, partial(d.expire_approval, approval_id=approval_id))


@contextlib.asynccontextmanager
async def expiry_recorded(cases: CaseService, case_id: UUID, approval_id: UUID) -> AsyncIterator[None]:
    """Around an approve or reject: refused as `approval-expired`, the expiry is recorded, then refused."""
    try:
        yield
    except RuleViolation as refused:
        if refused.rule == "approval-expired":
            await record_expiry(cases, case_id, approval_id)
        raise


async def sweep_expired(cases: CaseService, pool: asyncpg.Pool) -> int:
    """Record the expiry of every pending approval past its 72 h by the service's clock; how many."""
    expired = 0
    for approval_id, case_id in await due_for_expiry(pool, cases.clock()):
        try:
            outcome = await record_expiry(cases, case_id, approval_id)
        except CaseNotFoundError:
            continue
        expired += len(outcome.events)
    return expired


async def sweep_forever(cases: CaseService, pool: asyncpg.Pool, every: float = SWEEP_SECONDS) -> None:
    """The periodic sweep (each API process runs one; a second expiry of one approval records nothing).

    It waits before its first sweep too: a process starting records nothing in its first minute.
    """
    while True:
        await asyncio.sleep(every)
        try:
            if expired := await sweep_expired(cases, pool):
                log.info("approvals_expired", count=expired)
        except Exception:  # the database away for a moment: the next sweep tries again
            log.exception("approval_sweep_failed")
