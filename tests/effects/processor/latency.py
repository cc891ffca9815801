"""How long after a suspension's answer the processor receives its call (not a test: a measurement).

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python -m tests.effects.processor.latency 200

Real processes as in test_exactly_once_in_effect.py (API, sender, simulator), one
suspension at a time with 20 ms between them, no other load. Measured once the
sender is up: one suspension first, not counted, until the processor has its
call (the sender process takes about half a second to import and connect;
suspensions made meanwhile measured its start, not an instruction's way: the
first dozen waited 100-500 ms and made the p99, issue 17's 175-300 ms). The processor's
receipt time is its transaction's now(); the answer's time is the client's
clock, on the same machine.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from casedesk.services.tokens import issue_token
from tests.effects.processor.processes import SECRET, Effects, open_case_and_suspend


async def measure(count: int, dsn: str | None = None) -> list[float]:
    """Milliseconds from each suspension's answer to the processor receiving its call, sorted."""
    with tempfile.TemporaryDirectory() as folder:
        effects = await Effects.on_new_schema(Path(folder), dsn or os.environ["DATABASE_URL"])
        try:
            await effects.start_sim()
            await effects.start_api()
            effects.start_sender()
            token = issue_token(SECRET, sub="bench", name="Bench", role="agent", departments=["fraud"])
            await open_case_and_suspend(effects, token)  # the sender is up once its call arrives
            await effects.until("the sender's first call", lambda: _received(effects, 1))
            answered: dict[str, datetime] = {}
            for _ in range(count):
                _, [card] = await open_case_and_suspend(effects, token)
                answered[card] = datetime.now(UTC)
                await asyncio.sleep(0.02)
            await effects.until("every call received", lambda: _received(effects, count + 1))
            calls = [c for c in (await effects.calls()).values() if c["body"]["card_token"] in answered]
            return sorted((datetime.fromisoformat(c["at"]) - answered[c["body"]["card_token"]]).total_seconds()
                          * 1000 for c in calls)
        finally:
            await effects.close()


async def _received(effects: Effects, count: int) -> bool:
    return len(await effects.calls()) == count


def main() -> None:
    latencies = asyncio.run(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 200))
    p50, p99 = latencies[len(latencies) // 2], latencies[max(0, int(len(latencies) * 0.99) - 1)]
    print(f"{len(latencies)} suspensions, answer -> processor: p50 {p50:.1f} ms, p99 {p99:.1f} ms,"
          f" max {latencies[-1]:.1f} ms")


if __name__ == "__main__":
    main()
