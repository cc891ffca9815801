"""Liveness and readiness."""

from __future__ import annotations

import asyncio

from aiohttp import web

from casedesk.projections.catalogue import all_projections
from casedesk.services.http.app_keys import POOL, READ_POOL, SETTINGS
from casedesk.services.store.event_store import log_head
from casedesk.services.store.tracking import slowest_position


async def healthz(request: web.Request) -> web.Response:
    """The process is up and its event loop answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when the database answers and no projection lags more than the bound.

    With a standby (DATABASE_READ_URL) the read tables it serves must be
    reachable and within the same bound of the primary's log.
    """
    names = [p.name for p in all_projections()]
    bound = request.app[SETTINGS].readiness_max_lag
    try:
        async with asyncio.timeout(2):
            # The head first: a projection read after it can only look less behind, never more.
            head = await log_head(request.app[POOL])
            slowest = await slowest_position(request.app[POOL], names)
    except Exception as error:  # any failure to reach the database means not ready
        return web.json_response({"ready": False, "database": False, "detail": type(error).__name__}, status=503)
    lag = max(head - slowest, 0)
    answer: dict[str, object] = {"ready": lag <= bound, "database": True, "projection_lag": lag}
    if request.app[READ_POOL] is not request.app[POOL]:
        try:
            async with asyncio.timeout(2):
                standby_lag = max(head - await slowest_position(request.app[READ_POOL], names), 0)
        except Exception as error:  # a standby out of reach leaves reads nowhere to go
            answer.update(ready=False, standby=False, detail=type(error).__name__)
        else:
            answer.update(ready=answer["ready"] and standby_lag <= bound, standby=True, standby_lag=standby_lag)
    return web.json_response(answer, status=200 if answer["ready"] else 503)
