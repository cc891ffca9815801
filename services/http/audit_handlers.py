"""Handlers of the auditors' reads: case history, hash-chain verification, the access log."""

from __future__ import annotations

import base64
import re
from datetime import datetime
from typing import Any

import msgspec
from aiohttp import web

from casedesk.projections.timeline.history import VersionNotWrittenError
from casedesk.services.access_log import REASON_HEADER, AccessLogPage, access_page, reason_of, record_access
from casedesk.services.case_service import CaseNotFoundError
from casedesk.services.http.app_keys import CASE_READER, HISTORY_PROCESS, POOL
from casedesk.services.http.commands import path_uuid
from casedesk.services.http.middleware import OPENED, PRINCIPAL
from casedesk.services.http.problems import FieldError, Problem, validation_problem
from casedesk.services.http.query_numbers import BIGINT, whole_number
from casedesk.services.store.audit_chain import check_stream

_encode = msgspec.json.Encoder().encode
# A '+' offset sent unescaped in a query string arrives as a space.
_SPACED_OFFSET = re.compile(r" (\d{2}:?\d{2})$")


def _json(body: Any) -> web.Response:
    return web.Response(body=_encode(body), content_type="application/json")


def _as_of(request: web.Request) -> datetime | None:
    text = request.query.get("as_of")
    if text is None:
        return None
    try:
        moment = msgspec.convert(_SPACED_OFFSET.sub(r"+\1", text), datetime)
    except msgspec.ValidationError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise validation_problem([FieldError("as_of", "must be an RFC 3339 time with an offset")])
    return moment


def _version(request: web.Request) -> int | None:
    text = request.query.get("version")
    if text is None:
        return None
    version = whole_number(text, 1, BIGINT)
    if version is None:
        raise validation_problem([FieldError("version", "must be a case version, a whole number from 1")])
    return version


def _point(request: web.Request) -> tuple[int | None, datetime | None]:
    version, as_of = _version(request), _as_of(request)
    if version is not None and as_of is not None:
        raise validation_problem([FieldError("as_of", "give as_of or version, not both")])
    return version, as_of


async def get_history(request: web.Request) -> web.Response:
    case_id, (version, as_of) = path_uuid(request, "case_id"), _point(request)
    process = request.app.get(HISTORY_PROCESS)
    try:
        # In the history process, opened there (services/history_process.py); else here, a turn of
        # events at a time: a 3 MB answer in one go would hold every other request back.
        document = (await process.document(case_id, version, as_of) if process is not None
                    else await request.app[CASE_READER].history(case_id, version=version, as_of=as_of))
    except VersionNotWrittenError as error:
        raise Problem(404, "version-not-found", "No such version of the case", str(error),
                      current_version=error.current) from error
    what = "history" + (f" version={version}" if version else "") + (f" as_of={as_of.isoformat()}" if as_of else "")
    await record_access(request.app[POOL], request[PRINCIPAL], case_id, what,
                        reason_of(request.headers.get(REASON_HEADER)))
    answer = web.Response(body=document, content_type="application/json")  # sent in pieces (open_sealed)
    if process is not None:
        answer[OPENED] = True  # its tokens are opened; a note's text shaped like one must stay as it is
    return answer


async def verify_case(request: web.Request) -> web.Response:
    case_id = path_uuid(request, "case_id")
    check = await check_stream(request.app[POOL], case_id)
    if check is None:
        raise CaseNotFoundError(str(case_id))
    return _json(check)


def _limit(request: web.Request) -> int:
    limit = whole_number(request.query.get("limit", "50"), 1, 500)
    if limit is None:
        raise validation_problem([FieldError("limit", "must be a whole number from 1 to 500")])
    return limit


def _cursor(request: web.Request) -> int | None:
    token = request.query.get("cursor")
    if not token:
        return None
    try:
        before = int(base64.urlsafe_b64decode(token.encode()).decode())
    except ValueError:
        before = 0
    if not 0 < before < 2**62:
        raise validation_problem([FieldError("cursor", "is not a cursor this API gave out")])
    return before


async def get_access_log(request: web.Request) -> web.Response:
    case_id, limit, before = path_uuid(request, "case_id"), _limit(request), _cursor(request)
    if not await request.app[CASE_READER].exists(case_id):
        raise CaseNotFoundError(str(case_id))
    rows = await access_page(request.app[POOL], case_id, limit + 1, before)
    more = len(rows) > limit
    next_cursor = base64.urlsafe_b64encode(str(rows[limit - 1].id).encode()).decode() if more else None
    return _json(AccessLogPage(items=rows[:limit], next_cursor=next_cursor))
