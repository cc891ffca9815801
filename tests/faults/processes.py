"""casedesk as real processes for the fault tests: API server, projection worker, their PostgreSQL.

Each process can be killed with SIGKILL and started again; PostgreSQL (the
test's own embedded server) can be stopped in immediate mode and started on
the same socket directory. Logs go to files in the test's folder, never to a
pipe nobody reads (a full pipe would stall the server).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import asyncpg

from tests.faults.test_database_restart import pg_ctl

CASEDESK = [sys.executable, "-m", "casedesk.services.cli"]
ROOT = Path(__file__).resolve().parents[2]

# A batch of the projection worker is in flight when one of its connections is
# inside a transaction that has touched a projection table. The API process
# runs no projections here, and the load sends no reads, so only the worker's
# batches match.
BATCH_IN_FLIGHT = """
SELECT count(*) FROM pg_stat_activity
WHERE pid <> pg_backend_pid() AND xact_start IS NOT NULL AND backend_type = 'client backend'
  AND query ~ '(case_files|queue_items|queue_activity|case_customers|outbound_attempts|merchant_)'
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Casedesk:
    """`casedesk serve` (projections off) and `casedesk project`, on a PostgreSQL of the test's own."""

    def __init__(self, folder: Path, dsn: str, secret: str) -> None:
        self.folder, self.dsn = folder, dsn
        self.data = folder / "pg"
        self.socket_dir = (self.data / "postmaster.pid").read_text().splitlines()[4]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CASEDESK_")},
            "DATABASE_URL": dsn, "CASEDESK_TOKEN_SECRET": secret, "CASEDESK_PII_KEY": "fault-test-pii-key",
            "CASEDESK_DATA_DIR": str(folder / "data"), "CASEDESK_LOG_LEVEL": "warning",
            "CASEDESK_POOL_MAX": "8",
            # Every stored event must be an answer the clients got: no processor confirmations here
            # (tests/effects/processor kills the processor's sender and the processor under load).
            "CASEDESK_PROCESSOR_INSTRUCTIONS": "off",
        }
        self.api: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self.started: list[subprocess.Popen[bytes]] = []
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3))

    def _spawn(self, command: list[str], log: str, **env: str) -> subprocess.Popen[bytes]:
        with open(self.folder / log, "ab") as out:
            process = subprocess.Popen(command, env={**self.env, **env}, cwd=ROOT,
                                       stdout=out, stderr=subprocess.STDOUT)
        self.started.append(process)
        return process

    def start_load(self, token: str, ledger: Path, stop: Path, desks: int = 6) -> subprocess.Popen[bytes]:
        """The load client (ledger_client.py), in a process of its own."""
        return self._spawn([sys.executable, "-m", "tests.faults.ledger_client", "--url", self.url,
                            "--token", token, "--ledger", str(ledger), "--stop", str(stop),
                            "--desks", str(desks)], "client.log")

    async def status(self, path: str) -> int:
        """The HTTP status of a GET, or 0 when nothing answers."""
        try:
            async with self.session.get(self.url + path) as r:
                return r.status
        except (aiohttp.ClientError, TimeoutError, OSError):
            return 0

    async def readiness(self) -> tuple[int, dict[str, object]]:
        """/readyz: its status and body, or (0, {}) when nothing answers."""
        try:
            async with self.session.get(self.url + "/readyz") as r:
                return r.status, await r.json()
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError):
            return 0, {}

    async def start_api(self) -> None:
        # The API does not project: CASEDESK_PROJECTIONS=0, the worker does it.
        self.api = self._spawn([*CASEDESK, "serve", "--port", str(self.port)], "api.log", CASEDESK_PROJECTIONS="0")
        deadline = time.monotonic() + 60
        while await self.status("/healthz") != 200:
            assert self.api.poll() is None, self.log("api.log")
            assert time.monotonic() < deadline, "casedesk serve did not answer /healthz within 60 s"
            await asyncio.sleep(0.1)

    def kill_api(self) -> None:
        assert self.api is not None
        _kill(self.api)

    def start_worker(self) -> None:
        self.worker = self._spawn([*CASEDESK, "project"], "worker.log")

    def kill_worker(self) -> None:
        assert self.worker is not None
        _kill(self.worker)

    async def stop_worker(self) -> None:
        """SIGTERM: the worker stops at a batch boundary and exits 0."""
        assert self.worker is not None
        self.worker.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(self.worker.wait, 30) == 0, self.log("worker.log")

    async def stop_postgres_immediately(self) -> None:
        await asyncio.to_thread(pg_ctl, self.data, "stop", "-m", "immediate")

    async def start_postgres(self) -> None:
        await asyncio.to_thread(pg_ctl, self.data, "start", "-o", f'-h "" -k {self.socket_dir}',
                                "-l", str(self.data / "log"))

    async def batch_in_flight(self, within: float) -> bool:
        """Poll until a projection batch is inside its transaction; False if none was seen in time."""
        conn = await asyncpg.connect(self.dsn)
        try:
            deadline = time.monotonic() + within
            while time.monotonic() < deadline:
                if await conn.fetchval(BATCH_IN_FLIGHT):
                    return True
                await asyncio.sleep(0.002)
            return False
        finally:
            await conn.close()

    def log(self, name: str) -> str:
        path = self.folder / name
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    async def close(self) -> None:
        for process in self.started:
            _kill(process)
        await self.session.close()


def _kill(process: subprocess.Popen[bytes]) -> None:
    """kill -9, and reap it."""
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
