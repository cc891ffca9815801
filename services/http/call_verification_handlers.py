"""POST /v1/call-verifications: the IVR asks whether the issuer called a number (role `ivr` only)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web

from casedesk.services.call_verification import record_checks
from casedesk.services.http.app_keys import CALL_VERIFIER, CASES
from casedesk.services.http.case_requests import Phone, Request
from casedesk.services.http.commands import idempotency_of
from casedesk.services.http.middleware import PRINCIPAL
from casedesk.services.http.request_body import decode

_encode = msgspec.json.Encoder().encode


class VerifyCall(Request, kw_only=True):
    """The calling number, and the six-digit reference our agent gave, if the customer has it."""

    phone: Phone
    code: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{6}$")] | None = None


async def verify_call(request: web.Request) -> web.Response:
    body = await decode(request, VerifyCall)
    first = await idempotency_of(request)
    if isinstance(first, web.Response):
        return first  # the IVR retried: the same answer, not counted again
    principal, cases = request[PRINCIPAL], request.app[CASES]
    answer, checked = await request.app[CALL_VERIFIER].verify(phone=body.phone, code=body.code,
                                                              token=principal.sub, now=cases.clock(),
                                                              idempotency=first)
    await record_checks(cases, principal, checked)
    return web.Response(body=_encode(answer), content_type="application/json")
