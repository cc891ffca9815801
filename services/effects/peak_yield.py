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
0 turns resting off. Where /proc/stat cannot be read, the sender never rests.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from uuid import UUID

import structlog

log = structlog.get_logger("casedesk.webhooks")

REST_SECONDS = 0.1  # one rest; the CPUs are looked at again after it
BUSY_AT = 0.8  # share of all CPUs busy with others' work at which the sender rests
PROC_STAT = Path("/proc/stat")
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _own_seconds() -> float:
    """This process's CPU time that /proc/stat counts as busy: its system time, and its user time
    only when it is not niced (a niced process's user time is counted as niced)."""
    times = os.times()
    return times.system + (times.user if os.getpriority(os.PRIO_PROCESS, 0) <= 0 else 0.0)


class CpuGauge:
    """Share of the machine's CPUs busy with others' work since the last look (None: unknown)."""

    def __init__(self, stat: Path = PROC_STAT, own: Callable[[], float] = _own_seconds) -> None:
        self._stat, self._own = stat, own
        self._last: tuple[float, float, float] | None = self._read()

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
        now = self._read()
        last, self._last = self._last, now
        if now is None or last is None or now[0] <= last[0]:
            return None
        busy = (now[1] - last[1]) - max(0.0, now[2] - last[2])
        return max(0.0, min(1.0, busy / (now[0] - last[0])))


class PeakYield:
    """When the sender's followers rest: the CPUs busy with others, and none of them lagging too long."""

    def __init__(self, longest_delay: float, busy_at: float = BUSY_AT, *, gauge: CpuGauge | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.longest_delay, self.busy_at = longest_delay, busy_at
        self._gauge = gauge if gauge is not None or longest_delay <= 0 else CpuGauge()
        self._clock = clock
        self._at_end: dict[UUID, float] = {}  # when each follower last read up to the log's end
        self.rests = 0  # (for tests and the log)

    def read(self, webhook_id: UUID, *, at_end: bool) -> None:
        """A follower read a batch; `at_end` when it reached the log's end."""
        if at_end or webhook_id not in self._at_end:
            self._at_end[webhook_id] = self._clock()

    def gone(self, webhook_id: UUID) -> None:
        self._at_end.pop(webhook_id, None)

    def behind_for(self, webhook_id: UUID) -> float:
        """Seconds since this follower last stood at the log's end."""
        return self._clock() - self._at_end.get(webhook_id, self._clock())

    def should_rest(self, webhook_id: UUID) -> bool:
        if self._gauge is None or self.behind_for(webhook_id) >= self.longest_delay:
            return False
        busy = self._gauge.busy()
        return busy is not None and busy >= self.busy_at

    async def rest_while_peak(self, webhook_id: UUID) -> None:
        """Rest while the machine is busy with others' work, up to the follower's longest delay."""
        while self.should_rest(webhook_id):
            self.rests += 1
            await asyncio.sleep(REST_SECONDS)
