"""What the HTTP-level benchmarks share: databases, server subprocesses, load, percentiles.

- `fresh_database(ctx)`: CREATE DATABASE (migrated or not), yield a BenchContext on it, DROP it.
- `Server`: a subprocess serving HTTP (`casedesk serve` or tests/bench/plain_app.py),
  waited for on /healthz and stopped at the end, its stderr kept for errors.
- `load(...)`: closed-loop HTTP load from another process: Debian's `wrk` with
  tests/bench/load.lua when installed, else a Python (aiohttp) generator in a
  process of its own. Both report requests, errors and p50/p99 latency.
- `quantile`, `at_most`/`at_least_abs`: figures with an absolute SPEC target.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlparse, urlunparse

import aiohttp
import asyncpg

from casedesk.services.store.migrations import migrate
from tests.bench import BENCH_DIR, BenchContext, Figure

REPO_ROOT = BENCH_DIR.parent.parent
TOKEN_SECRET = "bench-secret-" + "x" * 40
PII_KEY = "bench-pii-key"
LUA_SCRIPT = BENCH_DIR / "load.lua"


# --- figures ----------------------------------------------------------------


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) by the nearest-rank method; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def absolute(
    name: str,
    value: float,
    unit: str,
    reference: str,
    reference_value: float,
    *,
    below: float | None = None,
    at_least: float | None = None,
) -> Figure:
    """A figure whose SPEC target is on the value itself (not on the ratio)."""
    ratio = value / reference_value if reference_value else float("nan")
    target, met = None, None
    if below is not None:
        target, met = f"< {below:g} {unit}", value < below
    elif at_least is not None:
        target, met = f">= {at_least:,.0f} {unit}", value >= at_least
    return Figure(name, value, unit, reference, reference_value, ratio, target, met)


# --- databases --------------------------------------------------------------


def dsn_for_database(dsn: str, dbname: str) -> str:
    """The same server and credentials, another database (URL path or ?dbname=)."""
    url = urlparse(dsn)
    query = [(k, v) for k, v in parse_qsl(url.query, keep_blank_values=True) if k != "dbname"]
    return urlunparse(url._replace(path=f"/{dbname}", query=urlencode(query, safe="/")))


@contextlib.asynccontextmanager
async def fresh_database(
    ctx: BenchContext, prefix: str = "bench", *, migrated: bool = True
) -> AsyncIterator[BenchContext]:
    """CREATE DATABASE (migrated unless told not to), yield a context on it, DROP it."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = await ctx.connect()
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    inner = BenchContext(dsn_for_database(ctx.dsn, name), ctx.seconds_override, ctx.warmup_fraction)
    try:
        if migrated:
            conn = await inner.connect()
            try:
                await migrate(conn)
            finally:
                await conn.close()
        yield inner
    finally:
        admin = await ctx.connect()
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await admin.close()


# --- server subprocesses ----------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def casedesk_command(port: int) -> list[str]:
    script = Path(sys.executable).parent / "casedesk"
    if script.exists():
        return [str(script), "serve", "--port", str(port)]
    return [sys.executable, "-m", "casedesk.services.cli", "serve", "--port", str(port)]


def casedesk_env(dsn: str) -> dict[str, str]:
    """`casedesk serve`'s environment (its CASEDESK_DATA_DIR is the Server's temp dir)."""
    return {
        **os.environ,
        "DATABASE_URL": dsn,
        "CASEDESK_TOKEN_SECRET": TOKEN_SECRET,
        "CASEDESK_PII_KEY": PII_KEY,
        "CASEDESK_LOG_LEVEL": "warning",
        # The figures of earlier runs had neither effect running: the processor sender and the webhook
        # sender are measured on their own (issue 17), not folded into every other figure.
        "CASEDESK_PROCESSOR_INSTRUCTIONS": "off",
        "CASEDESK_WEBHOOKS": "off",
        # Every load here comes from one address (loopback), by design.
        "CASEDESK_MAX_CONNECTIONS_PER_IP": "100000",
    }


class Server:
    """An HTTP server subprocess: started, waited for on /healthz, stopped with SIGINT."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], port: int) -> None:
        self.name, self.command, self.env, self.port = name, command, env, port
        self.url = f"http://127.0.0.1:{port}"
        self.process: asyncio.subprocess.Process | None = None
        self._folder = Path(tempfile.mkdtemp(prefix=f"casedesk-bench-{name}-"))
        self.log_path = self._folder / "stderr.log"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def __aenter__(self) -> Server:
        with self.log_path.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.command, env={**self.env, "CASEDESK_DATA_DIR": str(self._folder)},
                cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
            )
        try:
            await self._wait_until_up()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def _wait_until_up(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + 60
        async with aiohttp.ClientSession() as session:
            while True:
                if self.process.returncode is not None:
                    raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with session.get(f"{self.url}/healthz") as r:
                        if r.status == 200:
                            return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} did not answer /healthz in 60 s:\n{self.log_tail()}")
                await asyncio.sleep(0.1)

    async def __aexit__(self, *exc: object) -> None:
        process = self.process
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()
        shutil.rmtree(self._folder, ignore_errors=True)


# --- load -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoadResult:
    """One closed-loop load run: completed requests over its duration, failures, latency."""

    generator: str
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


LOAD_ENV = "CASEDESK_BENCH_LOAD"  # "python" uses the Python generator even where wrk is installed


def wrk_path() -> str | None:
    return None if os.environ.get(LOAD_ENV) == "python" else shutil.which("wrk")


async def load(
    base_url: str,
    path: str,
    ids: Sequence[str],
    body: bytes,
    token: str,
    connections: int,
    seconds: int,
    started: asyncio.Event | None = None,
) -> LoadResult:
    """POST `body` to `path` ({id} taking each of `ids` in turn) for `seconds`, `connections` at once.

    Each connection's requests walk the ids in order from its own offset, so no
    two requests in flight name the same id while len(ids) > connections.
    `started` is set when the load begins (after the generator process is up).
    """
    started = started or asyncio.Event()
    if wrk_path():
        return await _wrk(base_url, path, ids, body, token, connections, seconds, started)
    return await _python_load(base_url, path, ids, body, token, connections, seconds, started)


async def _wrk(
    base_url: str, path: str, ids: Sequence[str], body: bytes, token: str, connections: int, seconds: int,
    started: asyncio.Event,
) -> LoadResult:
    with tempfile.NamedTemporaryFile("w", suffix=".ids", delete=False) as f:
        f.write("\n".join(ids) + "\n")
        ids_file = f.name
    threads = 1  # 2 cores: the server and PostgreSQL need the other one
    env = {
        **os.environ,
        "BENCH_IDS": ids_file,
        "BENCH_PATH": path,
        "BENCH_BODY": body.decode(),
        "BENCH_TOKEN": token,
        "BENCH_THREADS": str(threads),
    }
    try:
        process = await asyncio.create_subprocess_exec(
            wrk_path() or "wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
            "--timeout", "10s", "-s", str(LUA_SCRIPT), base_url,
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        started.set()
        out, err = await process.communicate()
    finally:
        os.unlink(ids_file)
    text = out.decode(errors="replace")
    line = next((ln for ln in text.splitlines() if ln.startswith("BENCH_RESULT ")), None)
    if process.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({process.returncode}):\n{text}\n{err.decode(errors='replace')}")
    r = json.loads(line.removeprefix("BENCH_RESULT "))
    errors = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
    return LoadResult("wrk", r["requests"], r["duration_us"] / 1e6, errors, r["p50_us"] / 1000, r["p99_us"] / 1000)


async def _python_load(
    base_url: str, path: str, ids: Sequence[str], body: bytes, token: str, connections: int, seconds: int,
    started: asyncio.Event,
) -> LoadResult:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    process = ctx.Process(
        target=_python_load_main,
        args=(child, base_url, path, list(ids), body, token, connections, float(seconds)),
        daemon=True,
    )
    process.start()
    child.close()
    try:
        ready = await asyncio.to_thread(parent.recv)
        if ready == "started":
            started.set()
            result = await asyncio.to_thread(parent.recv)
        else:
            result = ready
    finally:
        await asyncio.to_thread(process.join, 30)
    if isinstance(result, str):
        raise RuntimeError(f"python load generator failed: {result}")
    requests, duration, errors, latencies = result
    return LoadResult(
        "python", requests, duration, errors, quantile(latencies, 0.5) * 1000, quantile(latencies, 0.99) * 1000
    )


def _python_load_main(
    conn: object, base_url: str, path: str, ids: list[str], body: bytes, token: str,
    connections: int, seconds: float,
) -> None:
    """The load generator process: `connections` aiohttp tasks in a closed loop."""
    try:
        try:
            import uvloop

            runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
        except ImportError:
            runner = asyncio.Runner()
        with runner:
            result: object = runner.run(
                _python_load_loop(conn, base_url, path, ids, body, token, connections, seconds))
    except Exception as error:
        result = f"{type(error).__name__}: {error}"
    conn.send(result)  # type: ignore[attr-defined]


async def _python_load_loop(
    conn: object, base_url: str, path: str, ids: list[str], body: bytes, token: str, connections: int,
    seconds: float,
) -> tuple[int, float, int, list[float]]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    latencies: list[float] = []
    errors = 0
    per = max(1, len(ids) // connections)
    conn.send("started")  # type: ignore[attr-defined]
    stop_at = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(base_url, connector=connector, headers=headers) as session:

        async def worker(n: int) -> None:
            nonlocal errors
            i = 0
            while time.perf_counter() < stop_at:
                case_id = ids[(n * per + i) % len(ids)]
                i += 1
                started = time.perf_counter()
                async with session.post(path.replace("{id}", case_id), data=body) as r:
                    await r.read()
                    if r.status >= 400:
                        errors += 1
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*[worker(n) for n in range(connections)])
        duration = time.perf_counter() - started
    return len(latencies), duration, errors, latencies


async def wait_for_position(conn: asyncpg.Connection, name: str, position: int, timeout: float = 120) -> float:
    """Poll until projection `name` reached `position`; return the seconds it took."""
    started = time.perf_counter()
    while (await conn.fetchval(
        "SELECT notification_id FROM projection_tracking WHERE application_name = $1", name) or 0) < position:
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"projection {name} did not reach {position} in {timeout} s")
        await asyncio.sleep(0.01)
    return time.perf_counter() - started
