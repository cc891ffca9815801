"""Handlers of merchant intelligence: flag a descriptor, list flags with dispute counts."""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web

from casedesk.projections.merchant_intelligence import flagged_merchants, most_disputed
from casedesk.services.http.app_keys import CASES, READ_POOL
from casedesk.services.http.middleware import PRINCIPAL
from casedesk.services.http.read_your_writes import wait_for_min_position
from casedesk.services.http.request_body import decode
from casedesk.services.merchant_flags import flag

_encode = msgspec.json.Encoder().encode


class FlagMerchant(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    merchant: Annotated[str, msgspec.Meta(min_length=1, max_length=120)]
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=4000)]


async def flag_merchant(request: web.Request) -> web.Response:
    body = await decode(request, FlagMerchant)
    cases = request.app[CASES]
    event, position = await flag(cases.store, cases.mapper, request[PRINCIPAL], body.merchant, body.reason)
    answer = {"merchant": event.merchant, "reason": event.reason, "version": event.originator_version,
              "position": position}
    return web.Response(body=_encode(answer), status=201, content_type="application/json")


async def list_flagged(request: web.Request) -> web.Response:
    await wait_for_min_position(request, "case_files")
    pool = request.app[READ_POOL]
    body = {"items": await flagged_merchants(pool), "most_disputed": await most_disputed(pool)}
    return web.Response(body=_encode(body), content_type="application/json")
