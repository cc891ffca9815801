"""The auditor's case replay page: GET /cases/{case_id}.

The page is static HTML (static/replay.html, read once) served without a token,
like the dashboard page: it takes a bearer token from its URL fragment
(`/cases/<id>#token=…`) or asks for one, keeps it in sessionStorage, and reads
`GET /v1/cases/{id}/history?version=N` (auditor, supervisor, admin) and the
timeline with it. The role gate is therefore the JSON API's, not this route's.

A strict content security policy admits only the page's own inline script and
style (by hash), and lets it talk to this origin only.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from pathlib import Path

from aiohttp import web

from casedesk.services.http.commands import path_uuid

PAGE = Path(__file__).parent / "static" / "replay.html"


async def replay_page(request: web.Request) -> web.StreamResponse:
    path_uuid(request, "case_id")  # 404 problem for an id that cannot be a case
    body, policy = _page()
    return web.Response(body=body, content_type="text/html", charset="utf-8", headers={
        "Content-Security-Policy": policy,
        "Cache-Control": "no-cache",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    })


@functools.cache
def _page() -> tuple[bytes, str]:
    """The page and a content security policy admitting only its own inline script and style."""
    html = PAGE.read_bytes()

    def hashes(tag: bytes) -> str:
        found = re.findall(rb"<%s>(.*?)</%s>" % (tag, tag), html, flags=re.DOTALL)
        return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(b).digest()).decode()}'" for b in found)

    policy = (f"default-src 'none'; script-src {hashes(b'script')}; style-src {hashes(b'style')}; "
              "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; "
              "frame-ancestors 'none'")
    return html, policy
