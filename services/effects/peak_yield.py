"""The webhook sender rests while the machine is saturated (issue 17's cost).

Niceness alone (CASEDESK_WEBHOOK_NICE) is not enough on a small machine: the API's
pipeline waits on the database many times a request, and in each gap the niced sender
(signing and posting one request per event) and its receivers run and then delay the
API's next step. Measured on 2 cores, `POST note` kept 0.72-0.85x of its rate with them.

So, between two batches, the sender looks at this machine's CPUs (Linux /proc/stat)
since its last look. All of them busy (SATURATED, 90 %, its own and niced work
included) starts a rest; it rests in steps of REST_SECONDS while others' work alone
(at normal priority, less its own time) keeps them OTHERS_BUSY (70 %) busy. Two
thresholds, because the sender's own work is part of what saturates the machine and
its absence is what a rest is for: judged by others' work alone it never started
resting (with it running, others got only 65 % of the CPUs), and judged by all work
it would rest for its own load on an idle machine.

Webhooks promise at least once and per case in order, not a delay. A peak still delays
them by at most CASEDESK_WEBHOOK_PEAK_DELAY seconds: a follower that has not stood at
the log's end for that long delivers at its niceness's share until it has caught up.
0 turns resting off. Where /proc/stat cannot be read, the sender never rests. Niced work
never keeps a rest going: a deployment that runs the API and PostgreSQL niced should set 0.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple
from uuid import UUID

REST_SECONDS = 0.1  # one rest; the CPUs are looked at again after it
SATURATED = 0.9  # share of all CPU time busy with any work at which a rest starts
OTHERS_BUSY = 0.7  # share busy with others' work at normal priority that keeps a rest going
SHORTEST_LOOK = 0.1  # seconds: a look sooner after the last one gives the last one's share
PROC_STAT = Path("/proc/stat")
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def own_process_seconds() -> float:
    """This process's CPU time that /proc/stat counts as busy: its system time, and its user time
    only when it is not niced (a niced process's user time is counted as niced)."""
    times = os.times()
    return times.system + (times.user if os.getpriority(os.PRIO_PROCESS, 0) <= 0 else 0.0)


def _nothing_own() -> float:
    return 0.0


class CpuLoad(NamedTuple):
    """How busy the CPUs were between two looks, as shares of all CPU time."""

    everyone: float  # with any work: ours, niced and others'
    others: float  # with others' work at normal priority (not ours, not niced)


class CpuGauge:
    """The CPUs' load since the last look (None: unknown).

    `own` is the CPU time not to count as others' (the sender's own, when it is a process of its
    own; in serve's process all of it is the API's too, and counts). Followers of several
    subscriptions look at one gauge: a look within SHORTEST_LOOK of the last one (ticks are 10 ms)
    answers that one's load.
    """

    def __init__(self, stat: Path = PROC_STAT, own: Callable[[], float] = _nothing_own,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._stat, self._own, self._clock = stat, own, clock
        self._last: tuple[float, float, float, float] | None = self._read()
        self._looked = clock()
        self._load: CpuLoad | None = None

    def _read(self) -> tuple[float, float, float, float] | None:
        """(all CPU seconds, busy with anything, busy at normal priority, this process's) so far."""
        try:
            first = self._stat.read_text().split("\n", 1)[0].split()
            ticks = [int(t) for t in first[1:9]]  # cpu user nice system idle iowait irq softirq steal
        except (OSError, ValueError, IndexError):
            return None
        user, nice, system, _idle, _iowait, irq, softirq, _steal = ticks
        normal = user + system + irq + softirq
        return sum(ticks) / _TICKS, (normal + nice) / _TICKS, normal / _TICKS, self._own()

    def load(self) -> CpuLoad | None:
        if self._clock() - self._looked < SHORTEST_LOOK:
            return self._load
        now = self._read()
        last, self._last, self._looked = self._last, now, self._clock()
        if now is None or last is None or now[0] <= last[0]:
            self._load = None
        else:
            elapsed = now[0] - last[0]
            others = (now[2] - last[2]) - max(0.0, now[3] - last[3])
            self._load = CpuLoad(everyone=max(0.0, min(1.0, (now[1] - last[1]) / elapsed)),
                                 others=max(0.0, min(1.0, others / elapsed)))
        return self._load


class PeakYield:
    """When the sender's followers rest: the CPUs saturated, and none of them lagging too long."""

    def __init__(self, longest_delay: float, *, gauge: CpuGauge | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.longest_delay = longest_delay
        self._gauge = gauge if longest_delay > 0 else None  # (no gauge, no rest)
        self._clock = clock
        # When each subscription's follower last read up to the log's end, or was first seen.
        # Kept when a follower is restarted (a lost connection, an admin's change): a new one
        # does not start its lag afresh, so restarts cannot stretch a peak's delay.
        self._at_end: dict[UUID, float] = {}

    def read(self, webhook_id: UUID, *, at_end: bool) -> None:
        """A follower read a batch; `at_end` when it reached the log's end."""
        if at_end:
            self._at_end[webhook_id] = self._clock()

    def behind_for(self, webhook_id: UUID) -> float:
        """Seconds since this subscription's follower last stood at the log's end (or was first seen)."""
        now = self._clock()
        return now - self._at_end.setdefault(webhook_id, now)

    def should_rest(self, webhook_id: UUID, *, resting: bool) -> bool:
        """Start a rest (`resting` False) when the CPUs are saturated; go on resting while others keep them busy."""
        if self._gauge is None or self.behind_for(webhook_id) >= self.longest_delay:
            return False
        load = self._gauge.load()
        if load is None:
            return False
        return load.others >= OTHERS_BUSY if resting else load.everyone >= SATURATED

    async def rest_while_peak(self, webhook_id: UUID) -> None:
        """Rest while the machine is saturated, up to the follower's longest delay."""
        # (Polled, not an event: what ends a rest is the CPUs' load, which nothing announces.)
        resting = False
        while True:
            if not self.should_rest(webhook_id, resting=resting):
                return
            resting = True
            await asyncio.sleep(REST_SECONDS)
