"""Liveness and readiness."""

from __future__ import annotations

import asyncio

from aiohttp import web

from casedesk.projections.catalogue import all_projections
from casedesk.services.http.app_keys import POOL, SETTINGS


async def healthz(request: web.Request) -> web.Response:
    """The process is up and its event loop answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when the database answers and no projection lags more than the bound."""
    names = [p.name for p in all_projections()]
    try:
        async with asyncio.timeout(2):
            row = await request.app[POOL].fetchrow(
                "SELECT (SELECT coalesce(max(notification_id), 0) FROM case_events) AS head,"
                " (SELECT coalesce(min(coalesce(t.notification_id, 0)), 0) FROM unnest($1::text[]) n"
                "  LEFT JOIN projection_tracking t ON t.application_name = n) AS slowest", names)
    except Exception as error:  # any failure to reach the database means not ready
        return web.json_response({"ready": False, "database": False, "detail": type(error).__name__}, status=503)
    lag = row["head"] - row["slowest"]
    ready = lag <= request.app[SETTINGS].readiness_max_lag
    return web.json_response({"ready": ready, "database": True, "projection_lag": lag},
                             status=200 if ready else 503)
