"""The projection worker process that `casedesk serve` keeps beside itself.

Projections fold every event into the read tables. Run inside the API's event
loop they compete with requests for the one core a Python process uses: on a
2-core machine that cost a third of the command throughput and put projection
lag p99 over 100 ms (tests/bench/bench_http.py measures both layouts). So by
default (CASEDESK_PROJECTIONS=process) serve starts `casedesk project` as a
child process on the same database, restarts it if it dies, and stops it when
serve stops. The child stops by itself if serve is killed outright (it watches
its parent), and the projections' advisory locks keep a second worker, from
another serve or a restart, idle until the first one's lock is free.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Mapping

import structlog

PARENT_ENV = "CASEDESK_PARENT_PID"  # the child stops when its parent is gone
STOP_GRACE_SECONDS = 10.0
RESTART_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0)  # after successive quick deaths
HEALTHY_AFTER_SECONDS = 30.0  # a worker that lived this long starts the delays over

log = structlog.get_logger("casedesk.projection_worker")


class WorkerProcess:
    """One supervised `casedesk project` child."""

    not_started_retry_seconds = RESTART_DELAYS[-1]

    def __init__(self, environ: Mapping[str, str], command: tuple[str, ...] | None = None) -> None:
        self._environ = dict(environ)
        if command is not None:  # another casedesk command supervised the same way (the processor's)
            self.command = command
        self._process: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def start(self) -> None:
        await self._spawn()
        self._supervisor = asyncio.create_task(self._supervise(), name="casedesk-projection-worker")

    def no_more_restarts(self) -> None:
        """Serve is shutting down: a child that exits from now on (systemd signals the whole
        control group) stays down."""
        self._stopping = True

    async def stop(self) -> None:
        """SIGTERM (the worker finishes its batch), then SIGKILL after STOP_GRACE_SECONDS."""
        self._stopping = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        process = self._process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_GRACE_SECONDS)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    command = (sys.executable, "-m", "casedesk.services.cli", "project")

    async def _spawn(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            *self.command, env={**self._environ, PARENT_ENV: str(os.getpid())}, stdin=asyncio.subprocess.DEVNULL,
        )
        self.starts += 1
        log.info("projection_worker_started", pid=self._process.pid, command=self.command[3:])

    async def _supervise(self) -> None:
        quick_deaths = 0
        loop = asyncio.get_running_loop()
        while not self._stopping:
            assert self._process is not None
            started = loop.time()
            code = await self._process.wait()
            if self._stopping:  # stopped on purpose (stop, or the shutdown signal reached it too)
                return
            quick_deaths = 0 if loop.time() - started > HEALTHY_AFTER_SECONDS else quick_deaths + 1
            delay = RESTART_DELAYS[min(quick_deaths, len(RESTART_DELAYS) - 1)]
            log.warning("projection_worker_exited", code=code, restart_in_s=delay, command=self.command[3:])
            await self._respawn(delay)

    async def _respawn(self, delay: float) -> None:
        """Start a new child after `delay`; if that fails (fork, exec, file descriptors), keep trying."""
        while not self._stopping:
            await asyncio.sleep(delay)
            if self._stopping:
                return
            try:
                await self._spawn()
                return
            except OSError as error:  # never give up quietly: projections would stop for good
                delay = self.not_started_retry_seconds
                log.error("projection_worker_not_started", error=str(error), retry_in_s=delay)


@contextlib.asynccontextmanager
async def projection_worker(
    database_url: str, environ: Mapping[str, str] | None = None
) -> AsyncIterator[WorkerProcess]:
    """A supervised worker on `database_url` (the primary, directly: it takes session locks)."""
    env = dict(os.environ if environ is None else environ)
    env.update(DATABASE_URL=database_url, DATABASE_DIRECT_URL=database_url)
    env.pop("DATABASE_READ_URL", None)  # the worker writes; it never reads a standby
    worker = WorkerProcess(env)
    await worker.start()
    try:
        yield worker
    finally:
        await worker.stop()


async def exit_when_orphaned(_app: object) -> AsyncIterator[None]:
    """An aiohttp cleanup context: SIGTERM to this process once its parent is gone."""
    stop = asyncio.Event()
    watch = asyncio.create_task(stop_when_orphaned(stop))
    exit_on_stop = asyncio.create_task(_terminate_after(stop))
    yield
    watch.cancel()
    exit_on_stop.cancel()


async def _terminate_after(stop: asyncio.Event) -> None:
    await stop.wait()
    os.kill(os.getpid(), signal.SIGTERM)  # aiohttp's run_app shuts down cleanly on it


async def stop_when_orphaned(stop: asyncio.Event, every: float = 1.0) -> None:
    """Set `stop` once the process that started this one is gone (kill -9 of serve)."""
    parent = os.environ.get(PARENT_ENV)
    if not parent:
        return
    while not stop.is_set():
        if os.getppid() != int(parent):
            # Stop first: the warning goes to a stderr that may have gone with the parent, and a
            # BrokenPipeError raised here ended this task and left the process running for ever.
            stop.set()
            with contextlib.suppress(OSError):
                log.warning("projection_worker_orphaned", parent=parent)
            return
        await asyncio.sleep(every)
