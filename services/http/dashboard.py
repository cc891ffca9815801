"""The supervisor dashboard: JSON, a server-sent event stream, and the page."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web


async def get_dashboard(request: web.Request) -> web.Response:
    raise web.HTTPNotImplemented()


async def dashboard_stream(request: web.Request) -> web.StreamResponse:
    raise web.HTTPNotImplemented()


async def dashboard_page(request: web.Request) -> web.StreamResponse:
    raise web.HTTPNotImplemented()


async def dashboard_feed(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: LISTEN for read-model changes and fan them out to streams."""
    yield
