"""A large answer (an auditor's 3 MB history) sent a piece at a time, so agents' reads go on between.

aiohttp hands a bytes body to the transport in one `write`: on loopback or a fast link the
kernel can take megabytes in that one send, and the event loop serves nobody until it returns
(aiohttp warns about the same for a bytes payload over 1 MB). Here the body goes out in
PIECE-sized writes with a turn of the loop between, and waits for the socket to drain when the
client reads slower than we write: an agent's read waits behind at most one piece. The
`open_sealed` middleware sends every answer longer than a piece this way.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.abc import AbstractStreamWriter
from aiohttp.payload import Payload

PIECE = 256 * 1024


class PiecewiseBody(Payload):
    """Bytes for `web.Response(body=...)`, written PIECE at a time (Content-Length still set)."""

    _value: bytes
    _autoclose = True  # bytes in memory: nothing to close

    def __init__(self, value: bytes, **kwargs: Any) -> None:
        super().__init__(value, **kwargs)
        self._size = len(value)

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return self._value.decode(encoding, errors)

    async def as_bytes(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self._value

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(self, writer: AbstractStreamWriter, content_length: int | None) -> None:
        view = memoryview(self._value)
        if content_length is not None:
            view = view[:content_length]
        for start in range(0, len(view), PIECE):
            if start:
                await asyncio.sleep(0)  # a turn for others even when the kernel took the last piece at once
            await writer.write(view[start:start + PIECE])  # waits for the socket when its buffer is full
