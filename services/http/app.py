"""The composition root: create_app(settings) builds everything casedesk runs.

Resources (pool, event store, services, background workers) are made in
cleanup contexts, so they open when the app starts and close, in reverse
order, when it stops; nothing connects at import time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from zoneinfo import ZoneInfo

from aiohttp import web

from casedesk.projections.catalogue import all_projections
from casedesk.projections.runner import ProjectionRunner
from casedesk.services.case_service import CaseService
from casedesk.services.database import create_pool, database_url
from casedesk.services.event_mapper import CaseEventMapper
from casedesk.services.event_store import EventStore
from casedesk.services.http.app_keys import CASES, PERSONAL_DATA, POOL, RUNNER, SETTINGS, STORE, ZONE
from casedesk.services.http.dashboard import close_streams, dashboard_feed
from casedesk.services.http.metrics import METRICS, Metrics, measure
from casedesk.services.http.middleware import ALLOWED_ROLES, bearer_auth, request_context
from casedesk.services.http.routes import add_routes
from casedesk.services.migrations import migrate
from casedesk.services.personal_data import PersonalData
from casedesk.services.settings import Settings

MAX_BODY = 64 * 1024


def create_app(settings: Settings, *, dsn: str | None = None) -> web.Application:
    """Build the aiohttp application; `dsn` overrides where the database is (tests)."""
    app = web.Application(middlewares=[measure, request_context, bearer_auth], client_max_size=MAX_BODY)
    app[METRICS] = Metrics()
    app[SETTINGS] = settings
    app[ALLOWED_ROLES] = {}
    app[PERSONAL_DATA] = PersonalData(settings.pii_key)
    app[ZONE] = ZoneInfo(settings.timezone)
    add_routes(app)

    async def database(app: web.Application) -> AsyncIterator[None]:
        pool = await create_pool(
            dsn or database_url(settings),
            min_size=settings.pool_min,
            max_size=settings.pool_max,
            statement_cache=settings.statement_cache,
        )
        async with pool.acquire() as conn:
            await migrate(conn)
        app[POOL] = pool
        yield
        await pool.close()

    async def event_store(app: web.Application) -> AsyncIterator[None]:
        store = EventStore(app[POOL])
        app[STORE] = store
        app[CASES] = CaseService(store, CaseEventMapper())
        yield
        await store.close()

    async def projections(app: web.Application) -> AsyncIterator[None]:
        runner = ProjectionRunner(app[STORE], app[POOL], all_projections(app[ZONE]))
        app[RUNNER] = runner
        if settings.projections:
            await runner.start()
        yield
        await runner.stop()

    app.cleanup_ctx.extend([database, event_store, projections, dashboard_feed])
    # Open dashboard streams would otherwise hold shutdown for its whole timeout.
    app.on_shutdown.append(close_streams)
    return app
