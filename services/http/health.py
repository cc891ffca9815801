"""Liveness and readiness."""

from __future__ import annotations

import asyncio

from aiohttp import web
from casedesk.services.http.app_keys import POOL


async def healthz(request: web.Request) -> web.Response:
    """The process is up and its event loop answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when the database answers (projection lag joins with the read side)."""
    try:
        async with asyncio.timeout(2):
            await request.app[POOL].fetchval("SELECT 1")
    except (OSError, TimeoutError, Exception) as error:  # any failure means not ready
        return web.json_response(
            {"ready": False, "database": False, "detail": type(error).__name__}, status=503
        )
    return web.json_response({"ready": True, "database": True})
