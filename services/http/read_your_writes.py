"""min_position: a read waits (up to 5 s) until a projection has passed a position.

Every command answer carries the `position` of its last event; a client that
passes it back as `min_position` reads its own writes. Past the bound the
answer is 503 with Retry-After, never stale data presented as current.
With DATABASE_READ_URL the wait is on the standby's copy of the tracking
table, which replicates in the same WAL as the read tables it vouches for.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from casedesk.services.event_store import read_position
from casedesk.services.http.app_keys import READ_POOL
from casedesk.services.http.problems import FieldError, Problem, validation_problem

WAIT_SECONDS = 5.0


def min_position_of(request: web.Request) -> int | None:
    raw = request.query.get("min_position")
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise validation_problem([FieldError("min_position", "must be a whole number")]) from None
    if value < 0:
        raise validation_problem([FieldError("min_position", "must not be negative")])
    return value


async def wait_for_min_position(request: web.Request, projection: str, bound: float = WAIT_SECONDS) -> bool:
    """Wait on the read pool (the standby, if any); True when a min_position was asked and reached."""
    wanted = min_position_of(request)
    if wanted is None:
        return False
    pool = request.app[READ_POOL]
    deadline = time.monotonic() + bound
    pause = 0.002
    while (await read_position(pool, projection) or 0) < wanted:
        if time.monotonic() >= deadline:
            raise Problem(503, "projection-behind", "Not caught up yet",
                          f"{projection} has not reached position {wanted}", headers={"Retry-After": "1"})
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.05)
    return True
