"""Requests aiohttp refuses before any middleware sees them, answered as problem+json too.

A request line or header over aiohttp's limit (8190 bytes), a malformed one,
a bad method: the parser refuses it and aiohttp's own `handle_error` answers
in text/plain, echoing the offending line (a card number sent in a header
came back, and went into the log). aiohttp offers no hook for these answers,
so the composition root replaces that one method, once per process: the
answer is a problem with a fixed detail, and the log names the error's kind,
never its text.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import structlog
from aiohttp import web, web_protocol

from casedesk.services.http.problems import CONTENT_TYPE, Problem, as_json

log = structlog.get_logger("casedesk.http")

_DETAIL = {
    400: "the request line or a header is malformed, or longer than 8190 bytes",
    413: "the request is too large",
}


def _problem_answer(
    handler: web_protocol.RequestHandler, request: Any, status: int = 500,
    exc: BaseException | None = None, message: str | None = None,
) -> web.StreamResponse:
    if request.writer.output_size > 0:  # as aiohttp's own: an answer had begun, the connection is lost
        raise ConnectionError("Response is sent already, cannot send another response with the error message")
    log.warning("request_refused_by_parser", status=status, error=type(exc).__name__ if exc else None)
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    kind = "bad-request" if status < 500 else "internal"
    problem = Problem(status, kind, title, _DETAIL.get(status, "see the server log" if status >= 500 else ""))
    response = web.Response(status=status, body=as_json(problem.body), content_type=CONTENT_TYPE)
    response.force_close()
    return response


def answer_protocol_errors_as_problems() -> None:
    """Make every aiohttp server in this process answer parser refusals as problem+json (idempotent)."""
    web_protocol.RequestHandler.handle_error = _problem_answer  # type: ignore[method-assign, assignment]
