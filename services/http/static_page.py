"""Serving casedesk's self-contained HTML pages (the dashboard and the case replay).

Each page is one file in static/, read once. A strict content security policy
admits only the page's own inline script and style (by hash) and lets it talk
to this origin only; the pages need no token, the JSON API they call does.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).parent / "static"


@functools.cache
def _page(name: str) -> tuple[bytes, str]:
    html = (STATIC / name).read_bytes()

    def hashes(tag: bytes) -> str:
        found = re.findall(rb"<%s>(.*?)</%s>" % (tag, tag), html, flags=re.DOTALL)
        return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(b).digest()).decode()}'" for b in found)

    policy = (f"default-src 'none'; script-src {hashes(b'script')}; style-src {hashes(b'style')}; "
              "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; "
              "frame-ancestors 'none'")
    return html, policy


def static_page(name: str) -> web.Response:
    """The page `static/<name>` with its content security policy."""
    body, policy = _page(name)
    return web.Response(body=body, content_type="text/html", charset="utf-8", headers={
        "Content-Security-Policy": policy,
        "Cache-Control": "no-cache",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    })
