"""How many events a second the webhook sender delivers to one receiver (not a test: a measurement).

    DATABASE_URL=postgresql://… .venv/bin/python -m tests.effects.measure_webhook_rate [--cases 2000] [--notes 4]

Writes the cases through the real app, starts the receiver (verifying every signature, no
delay) and `casedesk webhooks` as processes, subscribes with event_types ["*"], replays
from position 1 and times the subscription's position from there to the log's end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import asyncpg
from aiohttp.test_utils import TestClient, TestServer

from casedesk.services.http.app import create_app
from casedesk.services.settings import Settings
from casedesk.services.tokens import issue_token
from tests.api.conftest import SECRET, new_case_body, with_schema
from tests.conftest import new_schema
from tests.effects.test_webhook_delivery import PII_KEY, Processes


async def measure(dsn: str, cases: int, notes: int) -> tuple[int, float]:
    """(events delivered, seconds): a replay of the whole log to one receiver verifying every signature."""
    schema = await new_schema(dsn)
    folder = Path(tempfile.mkdtemp(prefix="casedesk-webhook-rate-"))
    url = with_schema(dsn, schema)
    settings = Settings(token_secret=SECRET, pii_key=PII_KEY, data_dir=folder, webhook_allow_private=True)
    headers = {role: {"Authorization": "Bearer " + issue_token(SECRET, sub=role, name=role, role=role,
                                                                 departments=["fraud"])} for role in ("agent", "admin")}
    processes = Processes(folder, url)
    async with TestClient(TestServer(create_app(settings, dsn=url))) as api:
        gate = asyncio.Semaphore(32)

        async def one_case() -> None:
            async with gate:
                case_id = (await (await api.post("/v1/cases", headers=headers["agent"], json=new_case_body())).json())[
                    "case_id"]
                for n in range(notes):
                    await api.post(f"/v1/cases/{case_id}/notes", headers=headers["agent"], json={"text": f"n{n}"})

        await asyncio.gather(*(one_case() for _ in range(cases)))
        conn = await asyncpg.connect(url)
        last = int(await conn.fetchval("SELECT max(notification_id) FROM case_events"))
        receiver = await start_fast_receiver(processes)
        created = await (await api.post("/v1/webhooks", headers=headers["admin"],
                                        json={"url": receiver + "/hook", "event_types": ["*"]})).json()
        processes.secret_file.write_text(created["secret"])
        # As serve runs it (resting at a peak of others' work); the receiver's verifying is not such a peak.
        processes.start_sender(CASEDESK_WEBHOOK_PEAK_DELAY=str(Settings().webhook_peak_delay))
        await asyncio.sleep(3)  # the sender started and idle at the log's end
        started = time.perf_counter()
        await api.post(f"/v1/webhooks/{created['webhook_id']}/replay", headers=headers["admin"],
                       json={"from_position": 1})
        while await conn.fetchval("SELECT position FROM webhooks") < last:
            await asyncio.sleep(0.01)
        took = time.perf_counter() - started
        await conn.close()
    processes.close()
    conn = await asyncpg.connect(dsn)
    await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    await conn.close()
    return last, took


async def start_fast_receiver(processes: Processes) -> str:
    """The test receiver without its answer delay."""
    import sys

    from tests.effects.test_webhook_delivery import _answers, until

    processes._spawn([sys.executable, "-m", "tests.effects.webhook_receiver", "--port", str(processes.port),
                      "--secret-file", str(processes.secret_file), "--out", str(processes.out),
                      "--fail-flag", str(processes.fail_flag), "--delay", "0"], "receiver.log", dict(os.environ))
    import aiohttp

    base = f"http://127.0.0.1:{processes.port}"
    async with aiohttp.ClientSession() as session:
        await until(lambda: _answers(session, base + "/alive"), "the receiver to listen")
    return base


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--notes", type=int, default=4)
    args = parser.parse_args()
    events, took = asyncio.run(measure(os.environ["DATABASE_URL"], args.cases, args.notes))
    print(f"{events:,} events to one receiver in {took:.2f} s: {events / took:,.0f} events/s")


if __name__ == "__main__":
    main()
