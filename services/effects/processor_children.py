"""What `casedesk serve` runs beside itself for the card processor.

By default (CASEDESK_PROCESSOR_INSTRUCTIONS=process) the sender is a child
process of its own, `casedesk processor-instructions`, supervised like the
projection worker (restarted when it dies, stopped with serve, stopping by
itself when serve is killed). Its own process, not the projection worker's,
because the two must not wait on each other: a projection batch folds for
tens of milliseconds (a catch-up for seconds) without yielding, which would
hold every instruction back, and a processor that is slow or down must never
slow the read models; it can also be killed and restarted alone.

With no CASEDESK_PROCESSOR_URL, serve also starts the simulator
(`casedesk processor-sim`, tables of its own on the same PostgreSQL) on a
free local port, with credentials made up for this run, and points the
sender at it: a fresh machine shows the whole flow with `make serve`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import sys
from collections.abc import AsyncIterator

import asyncpg

from casedesk.services.case_service import CaseService
from casedesk.services.effects.processor_client import ProcessorClient
from casedesk.services.effects.processor_instructions import ProcessorInstructions
from casedesk.services.projection_worker import WorkerProcess
from casedesk.services.settings import Settings

CLI = (sys.executable, "-m", "casedesk.services.cli")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def processor_effects(settings: Settings, database_url: str, pool: asyncpg.Pool,
                            cases: CaseService) -> AsyncIterator[list[WorkerProcess]]:
    """Start the sender (and the simulator when no processor is named); yield the supervised children."""
    children: list[WorkerProcess] = []
    if settings.processor_instructions == "off":
        yield children
        return
    env = {**os.environ, "DATABASE_URL": database_url, "DATABASE_DIRECT_URL": database_url}
    env.pop("DATABASE_READ_URL", None)
    url, user, password = settings.processor_url, settings.processor_user, settings.processor_password
    async with contextlib.AsyncExitStack() as stack:
        if url is None:
            port, password = _free_port(), password or secrets.token_urlsafe(24)
            env.update(CASEDESK_PROCESSOR_USER=user, CASEDESK_PROCESSOR_PASSWORD=password)
            children.append(await _supervised(stack, env, "processor-sim", "--port", str(port)))
            url = f"http://127.0.0.1:{port}"
        env.update(CASEDESK_PROCESSOR_URL=url, CASEDESK_PROCESSOR_USER=user, CASEDESK_PROCESSOR_PASSWORD=password)
        if settings.processor_instructions == "process":
            children.append(await _supervised(stack, env, "processor-instructions"))
        else:
            client = ProcessorClient(url, user, password, settings.processor_timeout)
            instructions = ProcessorInstructions(pool, cases, client, retry_max=settings.processor_retry_max)
            await instructions.start()
            stack.push_async_callback(instructions.stop)
        yield children


async def _supervised(stack: contextlib.AsyncExitStack, env: dict[str, str], *command: str) -> WorkerProcess:
    child = WorkerProcess(env, command=(*CLI, *command))
    await child.start()
    stack.push_async_callback(child.stop)
    return child
