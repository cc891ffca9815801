"""Counting the event loop's turns other tasks get while long work runs (tests of giving way)."""

from __future__ import annotations

import asyncio


class LoopTurns:
    """Counts the event loop's turns that other tasks get while it runs."""

    def __init__(self) -> None:
        self.count = 0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while True:
            self.count += 1
            await asyncio.sleep(0)

    def __enter__(self) -> LoopTurns:
        self._task = asyncio.get_running_loop().create_task(self._tick())
        return self

    def __exit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
