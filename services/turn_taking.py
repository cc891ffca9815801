"""Agents' quick requests first: long work gives way to them between its slices (issue 15).

Long work in the API process (an auditor's 5,000-event history, a 100,000-line breach
list) is already cut into slices of a few milliseconds. Handing the loop back once per
slice is not enough: with two auditors reading, an agent's read, which needs the loop
four or five times (request, query, answer), waits behind a slice of each at every one of
those turns. So the server counts its quick requests in flight (every request, until it
declares itself long work; streams never count), and long work, between two slices,
calls `give_way()`: while quick requests are in flight it waits until none is, at most
LONGEST_WAIT (so it always moves on, even under a steady stream of agents), else it hands
the loop over once. A quick request then waits behind at most the slices already running
when it arrived.

Bulk work (a breach list) can also be given a share of the time, `give_way(share)`: while
agents are working (a quick request in flight or finished within AGENTS_RECENTLY), after each
slice it rests in proportion to how long the slice took (share 0.25: three times as long), each
of its tasks for its own slices. A slice is the time since the task's last hand-over with the
share, any wait in it included (for the database, for quick requests, for a sibling task), so the
database and the projection worker it feeds are not run flat out either, and agents' reads
find a free core. With no agent about, it goes at full speed (CASEDESK_BULK_SHARE, 0.25).

Outside a request (the CLI, a worker, a test calling a service directly) `give_way()` is one
loop turn, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar

LONGEST_WAIT = 0.010  # seconds long work waits for quick requests per slice: ~100 slices/s under any load
LONGEST_REST = 1.0  # seconds bulk work rests after one slice, however long the slice took
AGENTS_RECENTLY = 1.0  # seconds after the last quick request that bulk work still takes only its share


class TurnTaking:
    """One server's quick requests in flight, and the moment there are none."""

    __slots__ = ("_last_quick", "_quick", "_quiet", "gave_way")

    def __init__(self) -> None:
        self._quick = 0
        self._last_quick = float("-inf")  # when a quick request last finished
        self._quiet = asyncio.Event()
        self._quiet.set()
        self.gave_way = 0  # slices of long work that waited for quick requests (for tests and metrics)

    @property
    def quick_in_flight(self) -> int:
        return self._quick

    def _started(self) -> None:
        self._quick += 1
        self._quiet.clear()

    def _ended(self, finished: bool = False) -> None:
        self._quick -= 1
        if finished:
            self._last_quick = time.monotonic()
        if self._quick == 0:
            self._quiet.set()

    def agents_about(self) -> bool:
        """A quick request in flight, or one finished within AGENTS_RECENTLY."""
        return self._quick > 0 or time.monotonic() - self._last_quick < AGENTS_RECENTLY

    async def _wait_for_quiet(self) -> None:
        if self._quiet.is_set():
            await asyncio.sleep(0)
            return
        self.gave_way += 1
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(LONGEST_WAIT):
                await self._quiet.wait()


class _Turn:
    """One request's place: quick until it gives way the first time."""

    __slots__ = ("quick", "turns")

    def __init__(self, turns: TurnTaking) -> None:
        self.turns = turns
        self.quick = True


_TURN: ContextVar[_Turn | None] = ContextVar("casedesk_turn", default=None)
# When the current task's bulk slice began (it went on after giving way with a share). A context
# variable, so each task of a request has its own: a breach list is checked in one task while its
# last chunk is written in another, and one clock for both measured each from the other's last
# hand-over, so the writing, which waits for the database, rested next to nothing.
_SLICE_BEGAN: ContextVar[float | None] = ContextVar("casedesk_slice_began", default=None)


@contextlib.contextmanager
def quick_request(turns: TurnTaking) -> Iterator[None]:
    """A request counted as quick while it runs (the HTTP middleware opens one per request)."""
    turn = _Turn(turns)
    token = _TURN.set(turn)
    # A connection's requests run in one task: the last one's slice is not this one's.
    began = _SLICE_BEGAN.set(None)
    turns._started()
    try:
        yield
    finally:
        _SLICE_BEGAN.reset(began)
        _TURN.reset(token)
        # A task the request started carries its turn on: if it gave way later, the request
        # must not be counted off a second time.
        if turn.quick:
            turn.quick = False
            turns._ended(finished=True)


def not_quick() -> None:
    """The current request is long work or a stream: others no longer wait for it."""
    turn = _TURN.get()
    if turn is not None and turn.quick:
        turn.quick = False
        turn.turns._ended()


async def give_way(share: float = 1.0) -> None:
    """Between two slices of long work: quick requests in flight go first; with `share` < 1, rest
    first so the work takes about that share of the time (see the module's text)."""
    turn = _TURN.get()
    if turn is None:
        await asyncio.sleep(0)
        return
    not_quick()
    began = _SLICE_BEGAN.get()
    if share < 1.0 and began is not None and turn.turns.agents_about():
        await asyncio.sleep(min((time.perf_counter() - began) * (1.0 / share - 1.0), LONGEST_REST))
    await turn.turns._wait_for_quiet()
    if share < 1.0:
        # A hand-over at the full share inside a bulk slice (its customers' keys made, say) does
        # not end it: the whole slice is rested for at the next hand-over with the share.
        _SLICE_BEGAN.set(time.perf_counter())
