"""Where `casedesk serve` runs the webhook sender (CASEDESK_WEBHOOKS).

`process` (the environment's default): a `casedesk webhooks` child, supervised
like the projection worker (restarted if it dies, stopped with serve, stopping
by itself if serve is killed). `in-process`: a task on serve's own event loop.
`off`: none here (run `casedesk webhooks` elsewhere).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator

import asyncpg

from casedesk.services.effects.webhook_sender import run_sender
from casedesk.services.projection_worker import WorkerProcess
from casedesk.services.settings import Settings


class WebhookSenderProcess(WorkerProcess):
    """One supervised `casedesk webhooks` child."""

    command = (sys.executable, "-m", "casedesk.services.cli", "webhooks")


@contextlib.asynccontextmanager
async def webhook_sender(
    settings: Settings, direct_url: str, direct_pool: asyncpg.Pool
) -> AsyncIterator[WorkerProcess | None]:
    """The sender, where the settings put it, for as long as the context lasts (its child, if one)."""
    if settings.webhooks == "process":
        env = {**os.environ, "DATABASE_URL": direct_url, "DATABASE_DIRECT_URL": direct_url}
        env.pop("DATABASE_READ_URL", None)
        child = WebhookSenderProcess(env)
        await child.start()
        try:
            yield child
        finally:
            await child.stop()
        return
    if settings.webhooks == "off":
        yield None
        return
    stop = asyncio.Event()
    task = asyncio.create_task(run_sender(direct_pool, settings, stop), name="casedesk-webhook-sender")
    try:
        yield None
    finally:
        stop.set()
        await asyncio.gather(task, return_exceptions=True)
