"""Handlers of merchant intelligence: flag a descriptor, list flags with dispute counts."""

from __future__ import annotations

import msgspec
from aiohttp import web

from casedesk.projections.merchant_intelligence import flagged_merchants, most_disputed
from casedesk.services.http.app_keys import MERCHANT_FLAGS, READ_POOL
from casedesk.services.http.case_requests import Short, Text
from casedesk.services.http.commands import idempotency_of
from casedesk.services.http.middleware import PRINCIPAL
from casedesk.services.http.read_your_writes import wait_for_min_position
from casedesk.services.http.request_body import decode
from casedesk.services.merchant_flags import MerchantFlag

_encode = msgspec.json.Encoder().encode


class FlagMerchant(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    merchant: Short
    reason: Text


def _flagged(flagged: MerchantFlag) -> tuple[int, bytes]:
    event = flagged.event
    return 201, _encode({"merchant": event.merchant, "reason": event.reason, "version": event.originator_version,
                         "position": flagged.position})


async def flag_merchant(request: web.Request) -> web.Response:
    body = await decode(request, FlagMerchant)
    first = await idempotency_of(request)
    if isinstance(first, web.Response):  # this key flagged before: its answer again, no second flag
        return first
    flagged = await request.app[MERCHANT_FLAGS].flag(request[PRINCIPAL], body.merchant, body.reason,
                                                     idempotency=first, answer=_flagged)
    status, answer = _flagged(flagged)
    return web.Response(body=answer, status=status, content_type="application/json")


async def list_flagged(request: web.Request) -> web.Response:
    await wait_for_min_position(request, "case_files")
    pool = request.app[READ_POOL]
    body = {"items": await flagged_merchants(pool), "most_disputed": await most_disputed(pool)}
    return web.Response(body=_encode(body), content_type="application/json")
