"""casedesk served on a port of its own, its event loop in a thread of its own.

Schemathesis calls the API with a blocking HTTP client (requests), so the app
cannot share the test's event loop: it runs in a background thread, on a
fresh migrated schema that only the fuzzer writes to, so every stream in it is
one the fuzzer can account for.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from aiohttp import web

from casedesk.services.http.app import create_app
from casedesk.services.settings import Settings
from tests.api.conftest import SECRET, with_schema
from tests.conftest import new_schema

T = TypeVar("T")


class ServedCasedesk:
    """Start with `start()` (returns the base URL), end with `stop()`."""

    def __init__(self, dsn: str, data_dir: Path) -> None:
        self.dsn = dsn
        self.schema = ""
        self._data_dir = data_dir
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="casedesk-served", daemon=True)
        self._runner: web.AppRunner | None = None

    def _run(self, work: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(timeout)

    def start(self) -> str:
        self._thread.start()
        return self._run(self._serve())

    async def _serve(self) -> str:
        self.schema = await new_schema(self.dsn)
        settings = Settings(token_secret=SECRET, pii_key="test-pii-key", data_dir=self._data_dir,
                            pool_min=1, pool_max=8)
        self._runner = web.AppRunner(create_app(settings, dsn=with_schema(self.dsn, self.schema)),
                                     shutdown_timeout=2.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()  # port 0: the system picks a free one
        host, port = self._runner.addresses[0][:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        try:
            if self._runner is not None:
                self._run(self._runner.cleanup())
            if self.schema:
                self._run(self._drop_schema())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    async def _drop_schema(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(f"DROP SCHEMA {self.schema} CASCADE")
        finally:
            await conn.close()
