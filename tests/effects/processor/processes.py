"""casedesk and its card processor as real processes, on a schema of the test database.

`casedesk processor-sim` (the processor), `casedesk processor-instructions`
(the sender) and `casedesk serve` (the API, projecting in its own loop, with no
sender of its own) can each be killed with SIGKILL and started again. Logs go
to files in the test's folder, never to a pipe nobody reads.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import msgspec

from tests.api.conftest import with_schema
from tests.cli.test_commands import free_port
from tests.conftest import new_schema

CASEDESK = [sys.executable, "-m", "casedesk.services.cli"]
ROOT = Path(__file__).resolve().parents[2]
SECRET = "effects-test-secret-" + "x" * 32
USER, PASSWORD = "casedesk-test", "processor-test-password"


class Effects:
    """The three processes of one test, and clients for the API, the processor and the database."""

    def __init__(self, folder: Path, dsn: str) -> None:
        self.folder, self.dsn = folder, dsn
        self.sim_port, self.api_port = free_port(), free_port()
        self.sim_url, self.api_url = f"http://127.0.0.1:{self.sim_port}", f"http://127.0.0.1:{self.api_port}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CASEDESK_")},
            "DATABASE_URL": dsn, "CASEDESK_TOKEN_SECRET": SECRET, "CASEDESK_PII_KEY": "effects-test-pii-key",
            "CASEDESK_DATA_DIR": str(folder / "data"), "CASEDESK_LOG_LEVEL": "warning",
            "CASEDESK_PROCESSOR_URL": self.sim_url, "CASEDESK_PROCESSOR_USER": USER,
            "CASEDESK_PROCESSOR_PASSWORD": PASSWORD, "CASEDESK_PROCESSOR_RETRY_MAX": "0.5",
            "CASEDESK_PROCESSOR_INSTRUCTIONS": "off", "CASEDESK_PROJECTIONS": "in-process",
        }
        self.sim: subprocess.Popen[bytes] | None = None
        self.sender: subprocess.Popen[bytes] | None = None
        self.api: subprocess.Popen[bytes] | None = None
        self._started: list[subprocess.Popen[bytes]] = []
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self.processor_auth = {"Authorization": aiohttp.encode_basic_auth(USER, PASSWORD)}

    @classmethod
    async def on_new_schema(cls, folder: Path, database_dsn: str) -> Effects:
        return cls(folder, with_schema(database_dsn, await new_schema(database_dsn)))

    def _spawn(self, log: str, *args: str) -> subprocess.Popen[bytes]:
        with open(self.folder / log, "ab") as out:
            process = subprocess.Popen([*CASEDESK, *args], env=self.env, cwd=ROOT, stdout=out,
                                       stderr=subprocess.STDOUT)
        self._started.append(process)
        return process

    async def _answering(self, process: subprocess.Popen[bytes], url: str, log: str, **kwargs: Any) -> None:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, self.log(log)
            try:
                async with self.session.get(url, **kwargs) as r:
                    if r.status == 200:
                        return
            except (aiohttp.ClientError, OSError):
                pass
            assert time.monotonic() < deadline, f"{url} did not answer within 60 s"
            await asyncio.sleep(0.1)

    async def start_sim(self) -> None:
        self.sim = self._spawn("sim.log", "processor-sim", "--port", str(self.sim_port))
        await self._answering(self.sim, self.sim_url + "/faults", "sim.log", headers=self.processor_auth)

    async def start_api(self) -> None:
        self.api = self._spawn("api.log", "serve", "--port", str(self.api_port))
        await self._answering(self.api, self.api_url + "/healthz", "api.log")

    def start_sender(self) -> None:
        self.sender = self._spawn("sender.log", "processor-instructions")

    def kill_sim(self) -> None:
        assert self.sim is not None
        _kill(self.sim)

    def kill_sender(self) -> None:
        assert self.sender is not None
        _kill(self.sender)

    async def processor(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        async with self.session.request(method, self.sim_url + path, json=body, headers=self.processor_auth) as r:
            assert r.status == 200, await r.text()
            return await r.json()

    async def faults(self, **faults: Any) -> None:
        await self.processor("POST", "/faults", faults)

    async def calls(self) -> dict[str, dict[str, Any]]:
        """What the processor applied, by token."""
        return {c["token"]: c for c in (await self.processor("GET", "/calls"))["items"]}

    async def api_call(self, method: str, path: str, token: str, body: dict[str, Any] | None = None,
                       ) -> tuple[int, Any]:
        async with self.session.request(method, self.api_url + path, json=body,
                                        headers={"Authorization": f"Bearer {token}"}) as r:
            return r.status, await r.json()

    async def instructions(self) -> dict[str, str]:
        """Every instruction the follower recorded: token -> state."""
        conn = await asyncpg.connect(self.dsn)
        try:
            return {r[0]: r[1] for r in await conn.fetch("SELECT token, state FROM processor_instructions")}
        finally:
            await conn.close()

    async def recorded_answers(self) -> list[dict[str, Any]]:
        """Every ProcessorInstructionConfirmed and ...Rejected in the log, as stored."""
        conn = await asyncpg.connect(self.dsn)
        try:
            rows = await conn.fetch("SELECT topic, state FROM case_events WHERE topic LIKE '%:ProcessorInstruction%'"
                                    " ORDER BY notification_id")
        finally:
            await conn.close()
        return [{"type": r[0].rsplit(":", 1)[1], **msgspec.json.decode(r[1])} for r in rows]

    async def until(self, what: str, check: Any, seconds: float = 60.0) -> None:
        """Poll the async `check` until it holds (bounded, so a broken sender fails instead of hanging)."""
        deadline = time.monotonic() + seconds
        while not await check():
            assert time.monotonic() < deadline, f"{what} did not happen within {seconds} s:\n{self.log('sender.log')}"
            await asyncio.sleep(0.1)

    def log(self, name: str) -> str:
        path = self.folder / name
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    async def close(self) -> None:
        for process in self._started:
            _kill(process)
        await self.session.close()


def _kill(process: subprocess.Popen[bytes]) -> None:
    """kill -9, and reap it."""
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


async def open_case_and_suspend(effects: Effects, token: str, *, family: bool = False) -> tuple[str, list[str]]:
    """A case with a primary (and a family) card, suspended with its linked cards; its id and card ids."""
    cards: list[dict[str, Any]] = [{"card_id": f"p-{uuid.uuid4().hex[:8]}", "last4": "4242", "network": "visa",
                                    "kind": "primary"}]
    if family:
        cards.append({"card_id": f"f-{uuid.uuid4().hex[:8]}", "last4": "4243", "network": "visa", "kind": "family",
                      "primary_card_id": cards[0]["card_id"]})
    status, opened = await effects.api_call("POST", "/v1/cases", token, {
        "customer": {"customer_id": f"c-{uuid.uuid4().hex[:8]}", "name": "Taro Yamada",
                     "registered_phone": "+81 90 1234 5678"},
        "cards": cards, "reason": "fraud_alert", "channel": "phone", "summary": "alert on the card"})
    assert status == 201, opened
    case_id = opened["case_id"]
    status, suspended = await effects.api_call("POST", f"/v1/cases/{case_id}/cards/{cards[0]['card_id']}/suspend",
                                               token, {"reason": "fraud alert", "include_linked": True})
    assert status == 200, suspended
    return case_id, suspended["suspended"]
