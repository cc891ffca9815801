"""Handlers of four-eyes approvals: list them, approve or reject one; and the 202 of a command that asked.

A waiver or credit above CASEDESK_APPROVAL_LIMIT answers 202 with its
`approval_id` (`accepted_if_asked`, `approval_asked`). Supervisors list the
approvals (from the case_approvals read model) and decide one: the decision
runs on the approval's case like any case command (Idempotency-Key, the
service's clock), and a decision that comes after 72 h records the expiry
before it is refused.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any
from uuid import UUID

import msgspec
from aiohttp import web

from casedesk.domain import decisions as d
from casedesk.domain.events import ApprovalRequested
from casedesk.projections.approvals import STATES, ApprovalsAnswer, list_approvals
from casedesk.services.approvals import ApprovalsBehindError, case_of, expiry_recorded
from casedesk.services.case_service import Decision, Outcome
from casedesk.services.http.app_keys import CASES, POOL, READ_POOL
from casedesk.services.http.case_requests import NO_NUL
from casedesk.services.http.commands import path_uuid, run
from casedesk.services.http.problems import FieldError, Problem, not_found, validation_problem
from casedesk.services.http.query_numbers import whole_number
from casedesk.services.http.read_your_writes import wait_for_min_position
from casedesk.services.http.request_body import decode

_encode = msgspec.json.Encoder().encode


class DecideApproval(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Approve or reject: the supervisor's note (why), shown to the next agent."""

    note: Annotated[str, msgspec.Meta(max_length=4000, pattern=NO_NUL)] = ""


def accepted_if_asked(outcome: Outcome) -> int:
    """202 when the command became a request for approval, 200 when it was done."""
    return 202 if any(isinstance(e, ApprovalRequested) for e in outcome.events) else 200


def approval_asked(outcome: Outcome) -> dict[str, Any]:
    """`approval_id` of the request the command became ({} when it was done at once)."""
    asked = [e.approval_id for e in outcome.events if isinstance(e, ApprovalRequested)]
    return {"approval_id": str(asked[0])} if asked else {}


async def get_approvals(request: web.Request) -> web.Response:
    await wait_for_min_position(request, "case_files")  # whose batches write case_approvals
    state = request.query.get("state")
    if state is not None and state not in STATES:
        raise validation_problem([FieldError("state", f"must be one of {', '.join(STATES)}")])
    limit = whole_number(request.query.get("limit", "50"), 1, 500)
    if limit is None:
        raise validation_problem([FieldError("limit", "must be a whole number from 1 to 500")])
    items = await list_approvals(request.app[READ_POOL], state, limit)
    return web.Response(body=_encode(ApprovalsAnswer(items=items)), content_type="application/json")


async def grant_approval(request: web.Request) -> web.Response:
    body = await decode(request, DecideApproval)
    return await _decide(request, "approved", partial(d.approve, note=body.note))


async def reject_approval(request: web.Request) -> web.Response:
    body = await decode(request, DecideApproval)
    return await _decide(request, "rejected", partial(d.reject_approval, note=body.note))


async def _decide(request: web.Request, state: str, decide: partial[Any]) -> web.Response:
    approval_id = path_uuid(request, "approval_id")
    case_id = await _case_of(request, approval_id)
    decision: Decision = partial(decide, approval_id=approval_id)
    async with expiry_recorded(request.app[CASES], case_id, approval_id):
        return await run(request, case_id, decision,
                         extra=lambda _: {"approval_id": str(approval_id), "state": state})


async def _case_of(request: web.Request, approval_id: UUID) -> UUID:
    """The approval's case: 404 for none, 503 while the read model is still behind the log."""
    try:
        case_id = await case_of(request.app[POOL], approval_id)
    except ApprovalsBehindError as behind:
        raise Problem(503, "projection-behind", "Not caught up yet", str(behind),
                      headers={"Retry-After": "1"}) from None
    if case_id is None:
        raise not_found(f"approval {approval_id}")
    return case_id
