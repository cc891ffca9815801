"""casedesk's benchmark harness (SPEC §6): figures as ratios measured in one run.

Each module `tests/bench/bench_<name>.py` exposes `async def run(ctx) -> list[Figure]`.
`python -m tests.bench [name ...]` discovers them, runs them against DATABASE_URL
(or an embedded PostgreSQL in a temp dir), prints one table and writes
`tests/bench/results/latest.json`.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import pkgutil
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import asyncpg

from casedesk.services.store.migrations import migrate

BENCH_DIR = Path(__file__).parent
RESULTS_DIR = BENCH_DIR / "results"
SECONDS_ENV = "CASEDESK_BENCH_SECONDS"


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured figure, and its ratio against a reference from the same run."""

    name: str
    value: float
    unit: str
    reference: str
    reference_value: float
    ratio: float
    target: str | None = None
    met: bool | None = None

    @classmethod
    def versus(
        cls,
        name: str,
        value: float,
        unit: str,
        reference: str,
        reference_value: float,
        *,
        at_least: float | None = None,
        target: str | None = None,
    ) -> Figure:
        """A figure whose ratio is value / reference_value; `at_least` sets the target."""
        ratio = value / reference_value if reference_value else float("nan")
        met = None if at_least is None else ratio >= at_least
        if at_least is not None and target is None:
            target = f">= {at_least:g}x"
        return cls(name, value, unit, reference, reference_value, ratio, target, met)

    def as_json(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and v != v else v) for k, v in asdict(self).items()}


@dataclass(slots=True)
class BenchContext:
    """What a benchmark gets: the database and how long to measure."""

    dsn: str
    seconds_override: float | None = None
    warmup_fraction: float = 0.2

    def duration(self, default: float) -> float:
        """Seconds to measure one figure: CASEDESK_BENCH_SECONDS / --seconds, else `default`."""
        return self.seconds_override if self.seconds_override is not None else default

    def warmup(self, seconds: float) -> float:
        return min(1.0, max(0.1, seconds * self.warmup_fraction))

    async def connect(self, schema: str | None = None) -> asyncpg.Connection:
        settings = {"search_path": schema} if schema else None
        return await asyncpg.connect(self.dsn, server_settings=settings)

    @asynccontextmanager
    async def fresh_schema(self, prefix: str = "bench") -> AsyncIterator[str]:
        """CREATE SCHEMA, migrate it (search_path set), yield its name, DROP it."""
        schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
        conn = await self.connect()
        try:
            await conn.execute(f"CREATE SCHEMA {schema}")
            await conn.execute(f"SET search_path TO {schema}")
            await migrate(conn)
        finally:
            await conn.close()
        try:
            yield schema
        finally:
            conn = await self.connect()
            try:
                await conn.execute(f"DROP SCHEMA {schema} CASCADE")
            finally:
                await conn.close()

    def libpq_params(self) -> dict[str, Any]:
        """dbname/host/port/user/password from the DSN, for the library's PostgresDatastore.

        Handles both postgresql://user:pw@host:port/db and the embedded server's
        postgresql://postgres@/postgres?host=/tmp/xyz (a unix socket dir).
        """
        url = urlparse(self.dsn)
        query = parse_qs(url.query)
        return {
            "dbname": unquote(url.path.lstrip("/")) or query.get("dbname", ["postgres"])[0],
            "host": url.hostname or query.get("host", ["localhost"])[0],
            "port": url.port or int(query.get("port", ["5432"])[0]),
            "user": unquote(url.username or "") or query.get("user", ["postgres"])[0],
            "password": unquote(url.password or "") or query.get("password", [""])[0],
        }


@dataclass(frozen=True, slots=True)
class Rate:
    """Operations completed per second over the measured window (after warmup)."""

    ops: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0


async def measure_async(
    op: Callable[[int], Awaitable[object]], concurrency: int, seconds: float, warmup: float
) -> Rate:
    """Run `op(worker)` in a loop on `concurrency` tasks; count completions in the window."""
    counts = [0] * concurrency
    stop = False

    async def worker(n: int) -> None:
        while not stop:
            await op(n)
            counts[n] += 1

    tasks = [asyncio.create_task(worker(n)) for n in range(concurrency)]
    try:
        await _sleep_or_fail(tasks, warmup)
        start_ops, start = sum(counts), time.perf_counter()
        await _sleep_or_fail(tasks, seconds)
        end_ops, end = sum(counts), time.perf_counter()
    finally:
        stop = True
        results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return Rate(end_ops - start_ops, end - start)


async def measure_threads(op: Callable[[int], object], threads: int, seconds: float, warmup: float) -> Rate:
    """Run the blocking `op(worker)` in a loop on `threads` threads (asyncio.to_thread)."""
    counts = [0] * threads
    stop = threading.Event()

    def worker(n: int) -> None:
        while not stop.is_set():
            op(n)
            counts[n] += 1

    tasks = [asyncio.create_task(asyncio.to_thread(worker, n)) for n in range(threads)]
    try:
        await _sleep_or_fail(tasks, warmup)
        start_ops, start = sum(counts), time.perf_counter()
        await _sleep_or_fail(tasks, seconds)
        end_ops, end = sum(counts), time.perf_counter()
    finally:
        stop.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return Rate(end_ops - start_ops, end - start)


async def _sleep_or_fail(tasks: list[asyncio.Task[None]], seconds: float) -> None:
    """Sleep, but surface a worker's exception at once instead of after the window."""
    done, _ = await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_EXCEPTION)
    for task in done:
        if task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    if done:
        raise RuntimeError("a benchmark worker stopped early")


def discover() -> dict[str, ModuleType]:
    """{short name: module} for every tests/bench/bench_*.py, in name order."""
    found: dict[str, ModuleType] = {}
    for info in sorted(pkgutil.iter_modules([str(BENCH_DIR)]), key=lambda i: i.name):
        if info.name.startswith("bench_"):
            module = importlib.import_module(f"{__name__}.{info.name}")
            if callable(getattr(module, "run", None)):
                found[info.name.removeprefix("bench_")] = module
    return found


def seconds_from_env() -> float | None:
    value = os.environ.get(SECONDS_ENV)
    return float(value) if value else None
