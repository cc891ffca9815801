"""One table of every URL casedesk answers, with the roles each admits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from casedesk.services.http import health
from casedesk.services.http.middleware import ALLOWED_ROLES

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PUBLIC: None = None
AGENTS = ("agent", "supervisor", "admin")
READERS = ("agent", "supervisor", "auditor", "admin")
SUPERVISORS = ("supervisor", "admin")
AUDITORS = ("auditor", "supervisor", "admin")

ROUTES: list[tuple[str, str, Handler, tuple[str, ...] | None]] = [
    ("GET", "/healthz", health.healthz, PUBLIC),
    ("GET", "/readyz", health.readyz, PUBLIC),
]


def add_routes(app: web.Application) -> None:
    for method, path, handler, roles in ROUTES:
        route = app.router.add_route(method, path, handler)
        app[ALLOWED_ROLES][(method, route.resource.canonical)] = roles
