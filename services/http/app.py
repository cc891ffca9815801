"""The composition root: create_app(settings) builds everything casedesk runs.

Resources (pool, event store, services, background workers) are made in
cleanup contexts, so they open when the app starts and close, in reverse
order, when it stops; nothing connects at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from zoneinfo import ZoneInfo

from aiohttp import web

from casedesk.domain.approval_policy import approval_limits
from casedesk.domain.clock_policies import policy_named
from casedesk.projections.catalogue import running_projections
from casedesk.projections.runner import BuildParts, ProjectionRunner
from casedesk.projections.timeline.reading import CaseReader
from casedesk.services.approvals import sweep_forever
from casedesk.services.breaches import Breaches
from casedesk.services.call_codes import CallCodes
from casedesk.services.call_verification import CallVerifier
from casedesk.services.case_service import CaseService
from casedesk.services.effects.processor_children import processor_effects
from casedesk.services.effects.webhook_children import webhook_sender
from casedesk.services.history_process import HistoryProcess
from casedesk.services.http.app_keys import (
    APPROVAL_LIMITS,
    BREACHES,
    CALL_CODES,
    CALL_VERIFIER,
    CASE_READER,
    CASES,
    CLOCK_POLICY,
    CUSTOMER_KEYS,
    DIRECT_POOL,
    DIRECT_URL,
    HISTORY_PROCESS,
    MERCHANT_FLAGS,
    PERSONAL_DATA,
    POOL,
    READ_POOL,
    READ_STORE,
    RUNNER,
    SETTINGS,
    STORE,
    TURNS,
    ZONE,
)
from casedesk.services.http.case_stream import case_feed, close_case_streams
from casedesk.services.http.dashboard import close_streams, dashboard_feed
from casedesk.services.http.metrics import METRICS, Metrics, measure
from casedesk.services.http.middleware import ALLOWED_ROLES, bearer_auth, open_sealed, request_context
from casedesk.services.http.protocol_errors import answer_protocol_errors_as_problems
from casedesk.services.http.routes import add_routes
from casedesk.services.merchant_flags import MerchantFlags
from casedesk.services.personal_data import PersonalData
from casedesk.services.privacy.customer_keys import CustomerKeys
from casedesk.services.projection_worker import WorkerProcess, projection_worker
from casedesk.services.settings import Settings
from casedesk.services.store.database import Pools, database_url, migrate_directly
from casedesk.services.store.event_mapper import CaseEventMapper
from casedesk.services.store.event_store import EventStore
from casedesk.services.turn_taking import TurnTaking

MAX_BODY = 64 * 1024


async def _no_more_restarts(worker: WorkerProcess) -> None:
    worker.no_more_restarts()


def create_app(settings: Settings, *, dsn: str | None = None) -> web.Application:
    """Build the aiohttp application; `dsn` overrides where the database is (tests)."""
    answer_protocol_errors_as_problems()
    app = web.Application(middlewares=[measure, request_context, open_sealed, bearer_auth], client_max_size=MAX_BODY)
    app[METRICS] = Metrics()
    app[TURNS] = TurnTaking()
    app[SETTINGS] = settings
    app[ALLOWED_ROLES] = {}
    app[PERSONAL_DATA] = PersonalData(settings.pii_key, settings.phone_region)
    app[ZONE] = ZoneInfo(settings.timezone)
    app[CLOCK_POLICY] = policy_named(settings.clock_policy)
    app[APPROVAL_LIMITS] = approval_limits(settings.approval_limit)
    add_routes(app)

    async def database(app: web.Application) -> AsyncIterator[None]:
        primary = dsn or database_url(settings)
        direct = settings.database_direct_url or primary
        await migrate_directly(direct)
        pools = Pools(settings)
        app[POOL] = await pools.open(primary, statement_cache=settings.statement_cache)
        app[READ_POOL] = (await pools.open(settings.database_read_url, statement_cache=settings.statement_cache)
                          if settings.database_read_url else app[POOL])
        # The direct pool holds LISTEN connections for its whole life: start empty, open on demand. It is a
        # pool of its own even at the primary's address: what holds connections for good (LISTEN, projection
        # workers on their locks) must never take the ones requests need (a pool of 4 with two projections
        # in-process, their LISTEN and the dashboard's left requests none).
        app[DIRECT_POOL] = await pools.open(direct, min_size=0)
        app[DIRECT_URL] = direct
        if settings.history == "process":
            app[HISTORY_PROCESS] = HistoryProcess(primary, settings.timezone, settings.clock_policy,
                                                  settings.master_key_or_derived,
                                                  sealing=settings.seal_personal_data,
                                                  statement_cache=settings.statement_cache,
                                                  nice=settings.history_nice)
        yield
        if HISTORY_PROCESS in app:
            app[HISTORY_PROCESS].close()
        await pools.close()

    async def event_store(app: web.Application) -> AsyncIterator[None]:
        store = EventStore(app[POOL])
        app[STORE] = store
        # Reading only: nothing is ever appended through it (appends go to the primary).
        app[READ_STORE] = store if app[READ_POOL] is app[POOL] else EventStore(app[READ_POOL])
        app[CASES] = CaseService(store, CaseEventMapper())
        app[CASE_READER] = CaseReader(store, app[CASES].mapper, app[ZONE], app[CLOCK_POLICY], files=app[READ_POOL],
                                      standby=app[READ_STORE])
        app[CUSTOMER_KEYS] = app[CASES].privacy = CustomerKeys(app[POOL], settings.master_key_or_derived,
                                                               sealing=settings.seal_personal_data)
        app[BREACHES] = Breaches(store, app[CASES].mapper, app[PERSONAL_DATA], app[CUSTOMER_KEYS],
                                 share=settings.bulk_share)
        app[MERCHANT_FLAGS] = MerchantFlags(store, app[CASES].mapper)
        app[CALL_CODES] = CallCodes(app[POOL], app[PERSONAL_DATA])
        app[CALL_VERIFIER] = CallVerifier(app[POOL], app[PERSONAL_DATA], app[CALL_CODES],
                                          settings.ivr_token_rate)
        listener = app[CUSTOMER_KEYS].start_listening(app[DIRECT_URL])
        yield
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        await store.close()

    async def projections(app: web.Application) -> AsyncIterator[None]:
        runner = ProjectionRunner(app[STORE], app[DIRECT_POOL], running_projections(settings),
                                  build_parts=BuildParts(app[DIRECT_URL], settings.build_workers))
        app[RUNNER] = runner
        if settings.projections == "process":
            async with projection_worker(app[DIRECT_URL]) as worker:
                app.on_shutdown.append(lambda _: _no_more_restarts(worker))
                yield
            return
        if settings.projections == "in-process":
            await runner.start()
        yield
        await runner.stop()

    async def processor(app: web.Application) -> AsyncIterator[None]:
        async with processor_effects(settings, app[DIRECT_URL], app[DIRECT_POOL], app[CASES]) as children:
            for child in children:
                app.on_shutdown.append(lambda _, child=child: _no_more_restarts(child))  # type: ignore[misc]
            yield

    async def webhooks(app: web.Application) -> AsyncIterator[None]:
        async with webhook_sender(settings, app[DIRECT_URL], app[DIRECT_POOL]) as child:
            if child is not None:
                app.on_shutdown.append(lambda _: _no_more_restarts(child))
            yield

    async def approval_expiry(app: web.Application) -> AsyncIterator[None]:
        # Pending approvals past their 72 h expire by themselves (every process sweeps; a second
        # expiry of one approval records nothing).
        sweep = asyncio.create_task(sweep_forever(app[CASES], app[POOL]), name="approval-expiry")
        yield
        sweep.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweep

    app.cleanup_ctx.extend([database, event_store, projections, processor, webhooks, dashboard_feed, case_feed,
                            approval_expiry])
    # Open dashboard streams would otherwise hold shutdown for its whole timeout.
    app.on_shutdown.append(close_streams)
    app.on_shutdown.append(close_case_streams)
    return app
