"""Claiming the next case from a work queue: atomic, also with 50 agents at once.

The claim picks the first waiting case nobody is holding (FOR UPDATE SKIP
LOCKED, then a short hold row), and writes CaseAssigned through the case
service. The domain's `already-assigned` rule is the final guard: even if the
queue read model lags, no case is ever handed to two agents.
"""

from __future__ import annotations

from functools import partial

import asyncpg

from casedesk.domain import decisions as d
from casedesk.domain.errors import RuleViolation
from casedesk.projections.work_queues import QUEUE_ORDER
from casedesk.services.case_service import CaseService, Idempotency, Outcome, Respond
from casedesk.services.tokens import Principal

HOLD_SECONDS = 30  # while a claim writes its CaseAssigned
TAKEN_SECONDS = 600  # once assigned: until the projection takes it out of the queue
ATTEMPTS = 50


LOST_RACE = object()  # the candidate was held by another claim meanwhile: try the next


async def _hold_next(pool: asyncpg.Pool, queue: str, agent_id: str) -> object | None:
    """The id of the case now held for this claim; None if none waits; LOST_RACE to retry."""
    async with pool.acquire() as conn, conn.transaction():
        case_id = await conn.fetchval(
            "SELECT q.case_id FROM queue_items q WHERE q.queue = $1 AND NOT EXISTS ("
            " SELECT 1 FROM claim_holds h WHERE h.case_id = q.case_id AND h.until > now())"
            f" ORDER BY {QUEUE_ORDER} LIMIT 1 FOR UPDATE SKIP LOCKED",
            queue,
        )
        if case_id is None:
            return None
        held = await conn.fetchval(
            "INSERT INTO claim_holds (case_id, agent_id, until) VALUES ($1, $2, now() + $3 * interval '1 second')"
            " ON CONFLICT (case_id) DO UPDATE SET agent_id = excluded.agent_id, until = excluded.until"
            " WHERE claim_holds.until <= now() RETURNING case_id",
            case_id, agent_id, HOLD_SECONDS,
        )
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
            continue  # taken or closed since the read model saw it: the next one
        finally:
            # Taken either way: keep it out of other claims even if the read model lags
            # past the short hold (a release or reopen frees it, see case_files).
            await pool.execute("UPDATE claim_holds SET until = now() + $2 * interval '1 second'"
                               " WHERE case_id = $1", case_id, TAKEN_SECONDS)
    return None
