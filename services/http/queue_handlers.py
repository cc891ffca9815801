"""Handlers of the work queues: list them, page through one, claim the next case."""

from __future__ import annotations

import base64
import re
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from aiohttp import web

from casedesk.projections.timeline.reading import CaseRead
from casedesk.projections.work_queues import department_of, queue_depths, queue_exists, queue_page
from casedesk.services.case_access import may_see
from casedesk.services.http.app_keys import CASE_READER, CASES, POOL, READ_POOL
from casedesk.services.http.case_requests import DEPARTMENT_PATTERN
from casedesk.services.http.commands import command_body, idempotency_of
from casedesk.services.http.middleware import PRINCIPAL
from casedesk.services.http.problems import FieldError, Problem, not_found, validation_problem
from casedesk.services.http.query_numbers import whole_number
from casedesk.services.http.read_your_writes import wait_for_min_position
from casedesk.services.queue_claims import claim_next
from casedesk.services.tokens import Principal

_encode = msgspec.json.Encoder().encode
_QUEUE_NAME = re.compile(DEPARTMENT_PATTERN)


def _works(principal: Principal, queue: str) -> bool:
    return principal.role in ("supervisor", "admin", "auditor") or department_of(queue) in principal.departments


async def _queue(request: web.Request) -> str:
    queue = request.match_info["queue"]
    # Not a queue name: no text to hand PostgreSQL (a NUL is a 500). A department's own queue
    # exists for its agents before its first case; any other, once it has held one.
    if not _QUEUE_NAME.fullmatch(queue) or (
            queue not in request[PRINCIPAL].departments and not await queue_exists(request.app[READ_POOL], queue)):
        raise not_found(f"queue {queue!r}")
    if not _works(request[PRINCIPAL], queue):
        raise Problem(403, "forbidden", "Not your queue", f"{queue} is worked by {department_of(queue)}")
    return queue


def _limit(request: web.Request) -> int:
    limit = whole_number(request.query.get("limit", "50"), 1, 500)
    if limit is None:
        raise validation_problem([FieldError("limit", "must be a whole number from 1 to 500")])
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
    limit, after = _limit(request), _cursor_in(request)
    await wait_for_min_position(request, "case_files")  # first: a department's first case may be what it waits for
    queue = await _queue(request)
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
    queue, cases = await _queue(request), request.app[CASES]
    first = await idempotency_of(request)
    if isinstance(first, web.Response):  # this key claimed before: that case again, as it stands now
        claimed = msgspec.json.decode(first.body)
        return await _claimed(request, UUID(claimed["case_id"]), claimed["position"])
    claim = await claim_next(request.app[POOL], cases, request[PRINCIPAL], queue, idempotency=first,
                             answer=lambda o: (200, _encode(command_body(o, None))))
    if claim is None:
        return web.Response(status=204)
    outcome = claim.outcome
    if claim.complete:  # the case file as the claim read it, with the assignment folded in: no read
        read = request.app[CASE_READER].with_events(claim.case_file, claim.events, outcome.case.id)
        return await _answer(request, outcome.case.id, outcome.position or 0, read)
    return await _claimed(request, outcome.case.id, outcome.position or 0)


async def _claimed(request: web.Request, case_id: UUID, position: int) -> web.Response:
    read = await request.app[CASE_READER].read(case_id, primary=True)
    # A replayed claim answers the case as it is now: only while the caller may still see it (else 404).
    if not may_see(request[PRINCIPAL], read.departments, read.assignee):
        raise not_found("for you, the case this Idempotency-Key claimed")
    return await _answer(request, case_id, position, read)


async def _answer(request: web.Request, case_id: UUID, position: int, read: CaseRead) -> web.Response:
    # A survivor's timeline shows the cases merged into it too, as GET .../timeline does.
    timeline = await request.app[CASE_READER].timeline(read, primary=True)
    body = b'{"case_id":"%s","version":%d,"position":%d,"case":%s,"timeline":%s}' % (
        str(case_id).encode(), read.version, position, read.view, timeline)
    return web.Response(body=body, content_type="application/json", headers={"ETag": f'"{read.version}"'})
