"""Handlers about a customer rather than one case: erasure of their personal data (issue 21)."""

from __future__ import annotations

import msgspec
from aiohttp import web

from casedesk.services.case_service import actor_of
from casedesk.services.http.app_keys import CASES, CUSTOMER_KEYS
from casedesk.services.http.case_requests import Text
from casedesk.services.http.commands import idempotency_key_of
from casedesk.services.http.middleware import PRINCIPAL
from casedesk.services.http.problems import Problem
from casedesk.services.http.request_body import decode
from casedesk.services.privacy.customer_erasure import PRIVACY_DEPARTMENT, UnknownCustomerError, erase_customer

_encode = msgspec.json.Encoder().encode


class EraseCustomer(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    reason: Text


async def erase_customer_data(request: web.Request) -> web.Response:
    """Admins: erase the customer's personal data on all their cases by destroying their key."""
    # Any text may name a customer: one never recorded (a card number included: never stored) is a 404.
    customer_id = request.match_info["customer_id"]
    # Erasure is idempotent by nature (a repeat answers the first erasure's time), so the key is
    # only checked like any command's, not kept.
    idempotency_key_of(request)
    body = await decode(request, EraseCustomer)
    principal = request[PRINCIPAL]
    try:
        erasure = await erase_customer(request.app[CASES], request.app[CUSTOMER_KEYS],
                                       actor_of(principal, PRIVACY_DEPARTMENT), customer_id, body.reason)
    except UnknownCustomerError:
        raise Problem(404, "unknown-customer", "No such customer",
                      "no case and no data key was ever recorded for this customer id") from None
    return web.Response(body=_encode(erasure), content_type="application/json")
