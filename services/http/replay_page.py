"""The auditor's case replay page: GET /cases/{case_id}.

The page is static HTML (static/replay.html, read once) served without a token,
like the dashboard page: it takes a bearer token from its URL fragment
(`/cases/<id>#token=…`) or asks for one, keeps it in sessionStorage, and reads
`GET /v1/cases/{id}/history?version=N` (auditor, supervisor, admin) and the
timeline with it. The role gate is therefore the JSON API's, not this route's.

Served like the dashboard page, by static_page.
"""

from __future__ import annotations

from aiohttp import web

from casedesk.services.http.commands import path_uuid
from casedesk.services.http.static_page import static_page


async def replay_page(request: web.Request) -> web.StreamResponse:
    path_uuid(request, "case_id")  # 404 problem for an id that cannot be a case
    return static_page("replay.html")
