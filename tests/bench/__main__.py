"""`python -m tests.bench [name ...] [--seconds S]`: run the benchmarks, print, save JSON."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
from rich.console import Console
from rich.table import Table

from casedesk.services.logs import configure_logging
from casedesk.services.store.embedded_postgres import temporary_embedded_postgres
from tests.bench import RESULTS_DIR, SECONDS_ENV, BenchContext, Figure, discover, seconds_from_env


@contextmanager
def database() -> Iterator[tuple[str, str]]:
    """(dsn, kind): DATABASE_URL when set, else an embedded server in a temp dir."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url, "DATABASE_URL"
        return
    with temporary_embedded_postgres("casedesk-bench-pg-") as dsn:
        yield dsn, "embedded (temp dir)"


def git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, check=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


async def server_info(dsn: str) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        info = {"postgres_version": await conn.fetchval("SHOW server_version")}
        for setting in ("synchronous_commit", "fsync", "max_connections", "shared_buffers"):
            info[setting] = await conn.fetchval(f"SHOW {setting}")
        return info
    finally:
        await conn.close()


async def run_all(
    dsn: str, names: list[str], seconds: float | None
) -> tuple[list[tuple[str, Figure]], dict[str, Any], dict[str, float]]:
    # asyncio.to_thread uses the default executor; give threaded benchmarks room.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=64))
    ctx = BenchContext(dsn=dsn, seconds_override=seconds)
    modules = discover()
    info = await server_info(dsn)
    figures: list[tuple[str, Figure]] = []
    timings: dict[str, float] = {}
    for name in names or list(modules):
        started = time.perf_counter()
        figures += [(name, f) for f in await modules[name].run(ctx)]
        timings[name] = time.perf_counter() - started
    return figures, info, timings


def number(value: float) -> str:
    if value != value:  # NaN
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


def table(figures: list[tuple[str, Figure]]) -> Table:
    out = Table(title="casedesk benchmarks (ratio = value / reference, same run)")
    for column, justify in [
        ("bench", "left"),
        ("figure", "left"),
        ("value", "right"),
        ("unit", "left"),
        ("reference", "left"),
        ("ref value", "right"),
        ("ratio", "right"),
        ("target", "left"),
        ("met", "center"),
    ]:
        out.add_column(column, justify=justify)  # type: ignore[arg-type]
    for bench, f in figures:
        met = "-" if f.met is None else ("[green]yes[/]" if f.met else "[red]NO[/]")
        out.add_row(
            bench,
            f.name,
            number(f.value),
            f.unit,
            f.reference,
            number(f.reference_value),
            f"{f.ratio:.2f}x",
            f.target or "-",
            met,
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument(
        "--seconds",
        type=float,
        default=None,
        help=f"seconds per measured figure (default: each benchmark's own; env {SECONDS_ENV})",
    )
    args = parser.parse_args(argv)
    seconds = args.seconds if args.seconds is not None else seconds_from_env()
    configure_logging("console", "warning")  # keep migration chatter out of the table
    available = discover()
    unknown = [n for n in args.names if n not in available]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; available: {sorted(available)}")

    try:
        import uvloop  # the service runs on uvloop (services/cli.py); measure on it too

        loop_factory: Any = uvloop.new_event_loop
        loop_name = "uvloop"
    except ImportError:
        loop_factory, loop_name = None, "asyncio"

    started_at = dt.datetime.now(dt.UTC)
    wall = time.perf_counter()
    with database() as (dsn, db_kind), asyncio.Runner(loop_factory=loop_factory) as runner:
        figures, server, timings = runner.run(run_all(dsn, args.names, seconds))
    wall = time.perf_counter() - wall

    console = Console() if sys.stdout.isatty() else Console(width=150)
    console.print(table(figures))
    console.print(
        f"wall {wall:.1f} s ({', '.join(f'{n} {s:.1f} s' for n, s in timings.items())});"
        f" PostgreSQL {server['postgres_version']} ({db_kind},"
        f" synchronous_commit={server['synchronous_commit']}, fsync={server['fsync']});"
        f" {os.cpu_count()} CPUs; {loop_name}"
    )

    result = {
        "timestamp": started_at.isoformat(),
        "git_commit": git("rev-parse", "HEAD") or None,
        "git_dirty": None if (status := git("status", "--porcelain")) is None else bool(status),
        "wall_seconds": round(wall, 3),
        "seconds_per_figure": seconds,
        "machine": {
            "cpu_count": os.cpu_count(),
            "python_version": platform.python_version(),
            "platform": platform.platform(),
            "event_loop": loop_name,
            "database": db_kind,
            **server,
        },
        "benchmarks": {
            name: {
                "seconds": round(timings[name], 3),
                "figures": [f.as_json() for b, f in figures if b == name],
            }
            for name in timings
        },
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / "latest.json"
    path.write_text(json.dumps(result, indent=2, allow_nan=False, default=str) + "\n")
    console.print(f"results: {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
