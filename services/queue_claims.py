"""Claiming the next case from a work queue: atomic, also with 50 agents at once.

The claim picks the first waiting case nobody is holding and puts a hold row
on it (FOR UPDATE SKIP LOCKED and the hold in one statement), and writes
CaseAssigned through the case service. The domain's `already-assigned` rule is the final guard: even if the
queue read model lags, no case is ever handed to two agents.
"""

from __future__ import annotations

import contextlib
from functools import partial

import asyncpg

from casedesk.domain import decisions as d
from casedesk.domain.errors import RuleViolation
from casedesk.projections.work_queues import QUEUE_ORDER
from casedesk.services.case_service import CaseService, Idempotency, Outcome, Respond
from casedesk.services.tokens import Principal

# A claim holds its case from the start for as long as the read model may take to
# drop it from the queue; a claim that fails for any reason but the domain's
# refusal shortens it to RELEASED_SECONDS, so the case is soon claimable again.
# (Only a process dying mid-claim leaves the long hold; the case is not lost:
# a supervisor can still assign it, and any change to it drops the hold.)
TAKEN_SECONDS = 600
RELEASED_SECONDS = 0
ATTEMPTS = 50


LOST_RACE = object()  # the candidate was held by another claim meanwhile: try the next

# One statement, one round trip: pick the first waiting case nobody holds (SKIP
# LOCKED), hold it unless another claim's hold is still running, and say which
# happened (no candidate: the queue is empty; a candidate not held: lost race).
_HOLD_NEXT = f"""
WITH candidate AS (
    SELECT q.case_id FROM queue_items q
    WHERE q.queue = $1 AND NOT EXISTS (
        SELECT 1 FROM claim_holds h WHERE h.case_id = q.case_id AND h.until > now())
    ORDER BY {QUEUE_ORDER} LIMIT 1 FOR UPDATE OF q SKIP LOCKED
), held AS (
    INSERT INTO claim_holds (case_id, agent_id, until)
    SELECT case_id, $2, now() + $3 * interval '1 second' FROM candidate
    ON CONFLICT (case_id) DO UPDATE SET agent_id = excluded.agent_id, until = excluded.until
    WHERE claim_holds.until <= now()
    RETURNING case_id
)
SELECT (SELECT case_id FROM candidate), (SELECT case_id FROM held)
"""


async def _hold_next(pool: asyncpg.Pool, queue: str, agent_id: str) -> object | None:
    """The id of the case now held for this claim; None if none waits; LOST_RACE to retry."""
    candidate, held = await pool.fetchrow(_HOLD_NEXT, queue, agent_id, TAKEN_SECONDS)
    if candidate is None:
        return None
    return LOST_RACE if held is None else held


async def claim_next(pool: asyncpg.Pool, cases: CaseService, principal: Principal, queue: str, *,
                     idempotency: Idempotency | None = None, respond: Respond | None = None) -> Outcome | None:
    """Assign the caller the next case of the queue; None when the queue is empty.

    With an Idempotency-Key, `respond`'s answer is kept with the assignment, as for any command.
    """
    for _ in range(ATTEMPTS):
        case_id = await _hold_next(pool, queue, principal.sub)
        if case_id is None:
            return None
        if case_id is LOST_RACE:
            continue
        try:
            return await cases.change(principal, case_id, partial(  # type: ignore[arg-type]
                d.assign, agent_id=principal.sub, agent_name=principal.name, queue=queue),
                idempotency=idempotency, respond=respond)
        except RuleViolation:
            # Taken or closed since the read model saw it: keep the hold (it stays out of
            # other claims even if the read model lags; a release or reopen frees it,
            # see case_files) and try the next.
            continue
        except BaseException:
            # Not assigned (the database failed, the request was cancelled): let it go.
            with contextlib.suppress(Exception):
                await pool.execute("UPDATE claim_holds SET until = now() + $2 * interval '1 second'"
                                   " WHERE case_id = $1 AND agent_id = $3", case_id, RELEASED_SECONDS,
                                   principal.sub)
            raise
    return None
