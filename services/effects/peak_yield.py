"""The webhook sender rests while the machine is saturated by other work (issue 17's cost).

Niceness alone (CASEDESK_WEBHOOK_NICE) is not enough on a small machine: the API's
pipeline waits on the database many times a request, and in each gap the niced sender
(signing and posting one request per event) and its receivers run and then delay the
API's next step. So, between two batches, the sender looks at how busy this machine's
CPUs were with everyone else's work since its last look (Linux /proc/stat, less its own
time and all niced time); at BUSY_AT (80 %) or more it rests and looks again.

Webhooks promise at least once and per case in order, not a delay. A peak still delays
them by at most CASEDESK_WEBHOOK_PEAK_DELAY seconds: a follower that has not stood at
the log's end for that long delivers at its niceness's share until it has caught up.
0 turns resting off. Where /proc/stat cannot be read, the sender never rests. Niced work
never counts as load: a deployment that runs the API and PostgreSQL niced should set 0.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast
from uuid import UUID

REST_SECONDS = 0.1  # one rest; the CPUs are looked at again after it
BUSY_AT = 0.8  # share of all CPUs busy with others' work at which the sender rests
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


class CpuGauge:
    """Share of the machine's CPUs busy with others' work since the last look (None: unknown).

    `own` is the CPU time not to count as others' (the sender's own, when it is a process of its
    own; in serve's process all of it is the API's too, and counts). Followers of several
    subscriptions look at one gauge: a look within SHORTEST_LOOK of the last one (ticks are 10 ms)
    answers that one's share.
    """

    def __init__(self, stat: Path = PROC_STAT, own: Callable[[], float] = _nothing_own,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._stat, self._own, self._clock = stat, own, clock
        self._last: tuple[float, float, float] | None = self._read()
        self._looked, self._share = clock(), cast(float | None, None)

    def _read(self) -> tuple[float, float, float] | None:
        """(all CPU seconds, busy CPU seconds not niced, this process's seconds) so far."""
        try:
            first = self._stat.read_text().split("\n", 1)[0].split()
            # cpu user nice system idle iowait irq softirq steal ...: niced work (ours and any
            # other background process's) and waiting are not the load we give way to.
            ticks = [int(t) for t in first[1:9]]
        except (OSError, ValueError, IndexError):
            return None
        user, _nice, system, _idle, _iowait, irq, softirq, _steal = ticks
        return sum(ticks) / _TICKS, (user + system + irq + softirq) / _TICKS, self._own()

    def busy(self) -> float | None:
        if self._clock() - self._looked < SHORTEST_LOOK:
            return self._share
        now = self._read()
        last, self._last, self._looked = self._last, now, self._clock()
        if now is None or last is None or now[0] <= last[0]:
            self._share = None
        else:
            busy = (now[1] - last[1]) - max(0.0, now[2] - last[2])
            self._share = max(0.0, min(1.0, busy / (now[0] - last[0])))
        return self._share


class PeakYield:
    """When the sender's followers rest: the CPUs busy with others, and none of them lagging too long."""

    def __init__(self, longest_delay: float, busy_at: float = BUSY_AT, *, gauge: CpuGauge | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.longest_delay, self.busy_at = longest_delay, busy_at
        self._gauge = gauge if gauge is not None or longest_delay <= 0 else CpuGauge()
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
        return self._clock() - self._at_end.setdefault(webhook_id, self._clock())

    def should_rest(self, webhook_id: UUID) -> bool:
        if self._gauge is None or self.behind_for(webhook_id) >= self.longest_delay:
            return False
        busy = self._gauge.busy()
        return busy is not None and busy >= self.busy_at

    async def rest_while_peak(self, webhook_id: UUID) -> None:
        """Rest while the machine is busy with others' work, up to the follower's longest delay."""
        # (Polled, not an event: what ends a rest is the CPUs' load, which nothing announces.)
        while True:
            if not self.should_rest(webhook_id):
                return
            await asyncio.sleep(REST_SECONDS)
