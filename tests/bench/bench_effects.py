"""Effects (issue 17): how soon the card processor hears a decision, how fast webhooks go out.

- Instruction latency: real processes (API, processor-instruction sender,
  processor simulator), one suspension at a time 20 ms apart; from the
  suspension's HTTP answer to the simulator's transaction receiving the call
  (tests/effects/processor/latency.py). Target p99 < 100 ms.
- Webhook delivery: 1,000 cases of 5 events, replayed from position 1 to one
  receiver process that verifies every signature with `standardwebhooks`
  (tests/effects/measure_webhook_rate.py). Target >= 2,000 events/s.

Both are absolute figures against their targets (the reference column is the
target), since nothing else on this machine does the same work to compare with.
Not measured here yet: what the two senders cost `POST note` throughput.
"""

from __future__ import annotations

from tests.bench import BenchContext, Figure
from tests.effects import measure_webhook_rate
from tests.effects.processor import latency

SUSPENSIONS = 200
CASES, NOTES = 1_000, 4
LATENCY_TARGET_MS = 100.0
RATE_TARGET = 2_000.0


def _under(name: str, value: float, target: float) -> Figure:
    return Figure(name, value, "ms", f"target < {target:g} ms", target, value / target, f"< {target:g} ms",
                  value < target)


async def run(ctx: BenchContext) -> list[Figure]:
    delays = await latency.measure(SUSPENSIONS, dsn=ctx.dsn)
    p50, p99 = delays[len(delays) // 2], delays[max(0, int(len(delays) * 0.99) - 1)]
    events, seconds = await measure_webhook_rate.measure(ctx.dsn, CASES, NOTES)
    rate = events / seconds
    return [
        _under(f"processor instruction p50, answer -> processor ({len(delays)} suspensions)", p50, LATENCY_TARGET_MS),
        _under(f"processor instruction p99, answer -> processor ({len(delays)} suspensions)", p99, LATENCY_TARGET_MS),
        Figure(f"webhook delivery to one verifying receiver ({events:,} events)", rate, "events/s",
               f"target {RATE_TARGET:,.0f} events/s", RATE_TARGET, rate / RATE_TARGET, f">= {RATE_TARGET:,.0f}/s",
               rate >= RATE_TARGET),
    ]
