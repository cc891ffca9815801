"""Clients that stall: a deadline for each request head, an idle limit on bodies, a cap per address.

aiohttp closes a connection that sends nothing, but any byte restarts its
clock: headers dribbled a byte at a time, a chunked body never finished or a
`Content-Length` never reached held a connection (and its handler) forever.
Each connection's protocol is wrapped here:

- its request head (request line and headers) must be complete within
  `header_timeout` seconds of the connection opening or of the head's first byte;
- while a handler waits for a body, `body_idle_timeout` seconds without a byte end it;
- one address holds at most `max_connections_per_ip` connections at once.

A stalled request is answered 408 (problem+json) and closed; a connection over
the cap is closed at once. `casedesk serve` runs its app through `run_guarded`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from typing import Any, cast

import msgspec
import structlog
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = structlog.get_logger("casedesk.http")


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """How long a client may stall, and how many connections one address may hold."""

    header_timeout: float = 10.0
    body_idle_timeout: float = 30.0
    max_connections_per_ip: int = 256


_TIMED_OUT = msgspec.json.encode({
    "type": "https://casedesk.example/problems/request-timeout", "title": "Request timed out", "status": 408,
    "detail": "the request was not sent in time; send it again on a new connection"})
_408 = (b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/problem+json\r\nConnection: close\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(_TIMED_OUT), _TIMED_OUT))


class _GuardedConnection(asyncio.Protocol):
    """One connection: forwards everything to aiohttp's handler, and watches the clock."""

    def __init__(self, handler: RequestHandler, guard: GuardedServer) -> None:
        self._handler, self._guard = handler, guard
        self._transport: asyncio.Transport | None = None
        self._peer: str | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._waiting_for: str | None = None  # "head" or "body": what the armed timer waits for
        self._heads_when_armed = 0
        self._admitted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio.Transport subclasses
        peer = transport.get_extra_info("peername")
        self._peer = peer[0] if isinstance(peer, tuple) else None
        if not self._guard.admit(self._peer):
            log.warning("connection_refused", reason="too many connections from one address", peer=self._peer)
            self._transport.close()
            return
        self._admitted = True
        self._handler.connection_made(self._transport)
        self._arm("head", self._guard.limits.header_timeout)

    def data_received(self, data: bytes) -> None:
        if not self._admitted:
            return
        heads_before = self._handler._request_count
        self._handler.data_received(data)
        if self._handler._request_count != heads_before or self._handler._current_request is not None:
            # A head arrived, or body bytes: whatever body follows must keep coming.
            self._arm("body", self._guard.limits.body_idle_timeout)
        elif self._waiting_for != "head":
            self._arm("head", self._guard.limits.header_timeout)  # the first bytes of a next head

    def eof_received(self) -> bool | None:
        return self._handler.eof_received() if self._admitted else None

    def pause_writing(self) -> None:
        if self._admitted:
            self._handler.pause_writing()

    def resume_writing(self) -> None:
        if self._admitted:
            self._handler.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._admitted:
            self._admitted = False
            self._guard.release(self._peer)
            self._handler.connection_lost(exc)

    def _arm(self, waiting_for: str, seconds: float) -> None:
        self._disarm()
        self._waiting_for = waiting_for
        self._heads_when_armed = self._handler._request_count
        self._timer = asyncio.get_running_loop().call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._waiting_for = None

    def _expired(self) -> None:
        waiting_for, self._timer, self._waiting_for = self._waiting_for, None, None
        request = self._handler._current_request
        if waiting_for == "head" and self._handler._request_count != self._heads_when_armed:
            return  # the head came after all
        if waiting_for == "body" and (request is None or request.content.is_eof()):
            return  # answered already, or the body is all here and the handler is at work
        log.warning("slow_client", peer=self._peer, waiting_for=waiting_for)
        if self._transport is not None and not self._transport.is_closing():
            with contextlib.suppress(Exception):
                self._transport.write(_408)
            self._transport.close()


class GuardedServer:
    """aiohttp's `Server` (the protocol factory), each connection wrapped in a guard."""

    def __init__(self, server: web.Server, limits: Limits) -> None:
        self._server, self.limits = server, limits
        self._per_address: Counter[str | None] = Counter()

    def __call__(self) -> _GuardedConnection:
        return _GuardedConnection(self._server(), self)

    def __getattr__(self, name: str) -> Any:  # shutdown, connections...: the server's own
        return getattr(self._server, name)

    def admit(self, peer: str | None) -> bool:
        if peer is not None and self._per_address[peer] >= self.limits.max_connections_per_ip:
            return False
        self._per_address[peer] += 1
        return True

    def release(self, peer: str | None) -> None:
        self._per_address[peer] -= 1
        if self._per_address[peer] <= 0:
            del self._per_address[peer]


class GuardedRunner(web.AppRunner):
    """An AppRunner whose server guards every connection."""

    def __init__(self, app: web.Application, limits: Limits, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._limits = limits

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return GuardedServer(server, self._limits)  # type: ignore[return-value]  # it stands in for one


def run_guarded(app: web.Application, *, host: str, port: int, limits: Limits, shutdown_timeout: float) -> None:
    """What `web.run_app` does (serve until SIGINT/SIGTERM, then shut down gracefully), guarded."""

    async def serve() -> None:
        runner = GuardedRunner(app, limits, shutdown_timeout=shutdown_timeout, handle_signals=True)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
            await asyncio.Event().wait()  # until a signal raises GracefulExit out of the loop
        finally:
            await runner.cleanup()

    loop = asyncio.new_event_loop()
    main = loop.create_task(serve())
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        main.cancel()
        with contextlib.suppress(asyncio.CancelledError, web.GracefulExit):
            loop.run_until_complete(main)  # the finally above: a graceful cleanup of the app
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
