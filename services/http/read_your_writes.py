"""min_position: a read waits (up to 5 s) until a projection has passed a position.

Every command answer carries the `position` of its last event; a client that
passes it back as `min_position` reads its own writes. A position the log
has never reached is the client's mistake: 422 `position-not-written` at
once. A written one not yet projected (or replicated) is waited for, and past
the bound the answer is 503 with Retry-After, never stale data presented as
current. Waiting readers wake on the projections' NOTIFY (each batch they
commit), which the dashboard feed's LISTEN connection hears for the process.
With DATABASE_READ_URL the wait is on the standby's copy of the tracking
table, which replicates in the same WAL as the read tables it vouches for.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiohttp import web

from casedesk.services.http.app_keys import POOL, READ_MODELS_MOVED, READ_POOL
from casedesk.services.http.problems import FieldError, Problem, validation_problem
from casedesk.services.http.query_numbers import BIGINT, whole_number
from casedesk.services.store.event_store import log_head
from casedesk.services.store.tracking import read_position
from casedesk.services.turn_taking import not_quick

WAIT_SECONDS = 5.0
# Looked at again without a NOTIFY: one lost with a LISTEN connection must not hold a reader 5 s.
FALLBACK_SECONDS = 0.5
# A standby shows a batch a little after the primary's NOTIFY: look again soon, then less often.
STANDBY_PAUSES = (0.002, 0.05)


class ReadModelsMoved:
    """Wakes every reader waiting for a projection position when a projection commits a batch."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def moved(self, *_: object) -> None:
        self._event.set()
        self._event = asyncio.Event()

    def next_move(self) -> asyncio.Event:
        """The event the next move sets: taken before looking, so a move in between is not missed."""
        return self._event


async def _until(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()


def min_position_of(request: web.Request) -> int | None:
    raw = request.query.get("min_position")
    if raw is None:
        return None
    # An empty value is refused too: read as "no minimum" it would serve stale data to a
    # client that lost its position.
    value = whole_number(raw, 0, BIGINT)
    if value is None:
        raise validation_problem([FieldError("min_position", "must be a whole number from 0")])
    return value


async def _must_be_written(request: web.Request, wanted: int) -> None:
    """Waiting for a position the primary's log has not reached would only end in a 503."""
    written = await log_head(request.app[POOL])
    if wanted > written:
        raise Problem(422, "position-not-written", "No event has this position yet",
                      f"min_position {wanted} is past the last position written ({written})",
                      errors=[FieldError("min_position", f"is past the last position written ({written})")])


async def wait_for_min_position(request: web.Request, projection: str, bound: float = WAIT_SECONDS) -> bool:
    """Wait on the read pool (the standby, if any); True when a min_position was asked and reached."""
    wanted = min_position_of(request)
    if wanted is None:
        return False
    pool, moves = request.app[READ_POOL], request.app[READ_MODELS_MOVED]
    move = moves.next_move()
    if (await read_position(pool, projection) or 0) >= wanted:
        return True
    await _must_be_written(request, wanted)
    not_quick()  # waiting for a projection for up to seconds: long work need not wait for this request
    standby = pool is not request.app[POOL]
    pause, longest = STANDBY_PAUSES if standby else (FALLBACK_SECONDS, FALLBACK_SECONDS)
    deadline = time.monotonic() + bound
    while (left := deadline - time.monotonic()) > 0:
        await _until(move, min(left, pause))
        pause = min(pause * 2, longest)
        move = moves.next_move()
        if (await read_position(pool, projection) or 0) >= wanted:
            return True
    raise Problem(503, "projection-behind", "Not caught up yet",
                  f"{projection} has not reached position {wanted}", headers={"Retry-After": "1"})
