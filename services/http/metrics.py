"""Prometheus metrics: requests, commands, projections, the database pool, processor instructions.

One registry per application (not the process-global one), so several apps in
one test process do not collide.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from casedesk.projections.catalogue import all_projections
from casedesk.projections.deadline_clocks import clock_risks
from casedesk.services.effects.instruction_calls import instructions_in_flight
from casedesk.services.http.app_keys import POOL
from casedesk.services.store.event_store import log_head
from casedesk.services.store.tracking import positions_of

_PARAM = re.compile(r"\{[^}]+\}")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Metrics:
    """The instruments casedesk exposes at /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("casedesk_http_requests", "HTTP requests", ["route", "method", "status"],
                                registry=self.registry)
        self.latency = Histogram("casedesk_http_request_seconds", "HTTP request latency", ["route", "method"],
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
                                 registry=self.registry)
        self.commands = Counter("casedesk_commands", "Case commands by type and outcome", ["command", "outcome"],
                                registry=self.registry)
        self.position = Gauge("casedesk_projection_position", "Last notification id applied", ["projection"],
                              registry=self.registry)
        self.lag = Gauge("casedesk_projection_lag_events", "Events the projection is behind", ["projection"],
                         registry=self.registry)
        self.pool_size = Gauge("casedesk_db_pool_size", "Connections in the pool", registry=self.registry)
        self.clocks = Gauge("casedesk_clocks", "Deadline clocks per rule: at_risk (due within 48 h),"
                            " breached (running past due), met_late", ["rule", "standing"], registry=self.registry)
        self.pool_idle = Gauge("casedesk_db_pool_idle", "Idle connections in the pool", registry=self.registry)
        self.instructions = Gauge("casedesk_processor_instructions_in_flight",
                                  "Card-processor instructions not yet answered", registry=self.registry)
        self.instruction_age = Gauge("casedesk_processor_instruction_oldest_age_seconds",
                                     "Age of the oldest unanswered card-processor instruction", registry=self.registry)


METRICS = web.AppKey("metrics", Metrics)


@web.middleware
async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    response = await handler(request)
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    metrics = request.app[METRICS]
    metrics.requests.labels(route, request.method, str(response.status)).inc()
    metrics.latency.labels(route, request.method).observe(time.perf_counter() - started)
    if request.method == "POST" and route.startswith("/v1/cases"):
        command = _PARAM.sub("", route.removeprefix("/v1/cases")).strip("/").replace("//", "/") or "open_case"
        outcome = "ok" if response.status < 400 else "refused" if response.status < 500 else "failed"
        metrics.commands.labels(command, outcome).inc()
    return response


async def serve_metrics(request: web.Request) -> web.Response:
    app, metrics = request.app, request.app[METRICS]
    pool = app[POOL]
    metrics.pool_size.set(pool.get_size())
    metrics.pool_idle.set(pool.get_idle_size())
    # From the tracking table, not this process's runner: the projections may run in a worker
    # process. Every projection is reported, one with no tracking row yet (just rebuilt) at 0.
    head = await log_head(pool)
    for name, position in (await positions_of(pool, [p.name for p in all_projections()])).items():
        metrics.position.labels(name).set(position)
        metrics.lag.labels(name).set(max(head - position, 0))
    in_flight = await instructions_in_flight(pool)
    metrics.instructions.set(in_flight["in_flight"])
    metrics.instruction_age.set(in_flight["oldest_age_seconds"])
    for risk in await clock_risks(pool):
        for standing in ("at_risk", "breached", "met_late"):
            metrics.clocks.labels(risk.rule, standing).set(getattr(risk, standing))
    body = generate_latest(metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
