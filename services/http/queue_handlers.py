"""Handlers of the work queues: list them, page through one, claim the next case."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from aiohttp import web

from casedesk.projections.work_queues import department_of, queue_depths, queue_page
from casedesk.services.case_reading import read_case
from casedesk.services.http.app_keys import CASES, POOL, READ_POOL, ZONE
from casedesk.services.http.middleware import PRINCIPAL
from casedesk.services.http.problems import FieldError, Problem, validation_problem
from casedesk.services.http.read_your_writes import wait_for_min_position
from casedesk.services.queue_claims import claim_next
from casedesk.services.tokens import Principal

_encode = msgspec.json.Encoder().encode


def _works(principal: Principal, queue: str) -> bool:
    return principal.role in ("supervisor", "admin", "auditor") or department_of(queue) in principal.departments


def _queue(request: web.Request) -> str:
    queue = request.match_info["queue"]
    if not _works(request[PRINCIPAL], queue):
        raise Problem(403, "forbidden", "Not your queue", f"{queue} is worked by {department_of(queue)}")
    return queue


def _limit(request: web.Request) -> int:
    try:
        limit = int(request.query.get("limit", "50"))
    except ValueError:
        raise validation_problem([FieldError("limit", "must be a whole number")]) from None
    if not 1 <= limit <= 500:
        raise validation_problem([FieldError("limit", "must be between 1 and 500")])
    return limit


def _cursor_out(row: Any) -> str:
    raw = msgspec.json.encode([row["priority"], row["due_at"], row["enqueued_at"], row["case_id"]])
    return base64.urlsafe_b64encode(raw).decode()


def _cursor_in(request: web.Request) -> tuple[Any, ...] | None:
    token = request.query.get("cursor")
    if not token:
        return None
    try:
        p, due, enq, case_id = msgspec.json.decode(base64.urlsafe_b64decode(token.encode()))
        return (int(p), datetime.fromisoformat(due) if due else None, datetime.fromisoformat(enq), UUID(case_id))
    except (ValueError, TypeError, msgspec.DecodeError):
        raise validation_problem([FieldError("cursor", "is not a cursor this API gave out")]) from None


async def list_queues(request: web.Request) -> web.Response:
    await wait_for_min_position(request, "case_files")
    principal = request[PRINCIPAL]
    depths = await queue_depths(request.app[READ_POOL])
    items = [q for q in depths if _works(principal, q["queue"])]
    return web.Response(body=_encode({"items": items}), content_type="application/json")


async def list_items(request: web.Request) -> web.Response:
    queue, limit, after = _queue(request), _limit(request), _cursor_in(request)
    await wait_for_min_position(request, "case_files")
    rows = await queue_page(request.app[READ_POOL], queue, limit + 1, after)
    items = [
        {"case_id": r["case_id"], "priority": r["priority"], "reason": r["reason"], "due_at": r["due_at"],
         "enqueued_at": r["enqueued_at"],
         "amount_at_risk": msgspec.json.decode(r["amount_at_risk"]) if r["amount_at_risk"] else None}
        for r in rows[:limit]
    ]
    next_cursor = _cursor_out(rows[limit - 1]) if len(rows) > limit else None
    return web.Response(body=_encode({"items": items, "next_cursor": next_cursor}), content_type="application/json")


async def claim(request: web.Request) -> web.StreamResponse:
    queue = _queue(request)
    cases = request.app[CASES]
    outcome = await claim_next(request.app[POOL], cases, request[PRINCIPAL], queue)
    if outcome is None:
        return web.Response(status=204)
    read = await read_case(cases.store, cases.mapper, outcome.case.id, request.app[ZONE])
    body = b'{"case_id":"%s","version":%d,"position":%d,"case":%s,"timeline":%s}' % (
        str(outcome.case.id).encode(), read.version, outcome.position or 0, read.view, read.timeline)
    return web.Response(body=body, content_type="application/json", headers={"ETag": f'"{read.version}"'})
