"""Customer lookup for a returning caller: by phone, name + phone, or name + last 4 digits."""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

import msgspec
from aiohttp import web

from casedesk.projections.customer_lookup import find_customers, recent_outbound
from casedesk.projections.timeline.rows import reach_of
from casedesk.services.case_access import may_see
from casedesk.services.http.app_keys import PERSONAL_DATA, READ_POOL
from casedesk.services.http.case_requests import PHONE_PATTERN
from casedesk.services.http.middleware import PRINCIPAL
from casedesk.services.http.problems import FieldError, validation_problem
from casedesk.services.http.read_your_writes import wait_for_min_position
from casedesk.services.tokens import Principal

_encode = msgspec.json.Encoder().encode
_LAST4 = re.compile(r"[0-9]{4}")
_PHONE = re.compile(PHONE_PATTERN)


async def lookup(request: web.Request) -> web.Response:
    q, pii = request.query, request.app[PERSONAL_DATA]
    # `phone` and `last4`, given even empty, must be what they say (the document's patterns); an empty
    # `name` is no name.
    name, phone, last4 = q.get("name") or None, q.get("phone"), q.get("last4")
    if last4 is not None and not _LAST4.fullmatch(last4):  # given, even empty, it is four digits
        raise validation_problem([FieldError("last4", "must be four digits")])
    # An unescaped '+' arrives as a space; a phone without digits matches nobody and was answered 200 as if searched.
    # lstrip only: a phone the document's pattern takes may end in a space ("173 "), and must be taken.
    if phone is not None and not _PHONE.fullmatch(phone.lstrip()):
        raise validation_problem([FieldError("phone", "must be a phone number, e.g. +81 90 1234 5678")])
    if not (phone or (name and last4)):
        raise validation_problem([FieldError("query", "give phone, name + phone, or name + last4")])
    await wait_for_min_position(request, "case_files")
    pool = request.app[READ_POOL]
    phone_keys = pii.phone_keys(phone) if phone else None
    rows = await find_customers(pool, name_key=pii.name_key(name) if name else None, phone_keys=phone_keys,
                                last4=last4)
    keys_found = {r["phone_key"] for r in rows}
    attempts = await recent_outbound(pool, sorted(keys_found | set(phone_keys or ())))
    named = {r["case_id"] for r in rows} | {a["case_id"] for a in attempts}
    visible = await _visible_cases(pool, request[PRINCIPAL], named)
    customers: dict[str, dict[str, object]] = {}
    for r in rows:
        entry = customers.setdefault(r["customer_id"], {"customer_id": r["customer_id"], "name": r["name_masked"],
                                                        "open_cases": [], "phone_key": r["phone_key"]})
        if r["status"] == "open" and r["case_id"] in visible:
            entry["open_cases"].append(  # type: ignore[attr-defined]
                {"case_id": r["case_id"], "reason": r["reason"], "opened_at": r["opened_at"]})
    for c in customers.values():
        del c["phone_key"]
    body = {
        "customers": list(customers.values()),
        # A call about a case the caller may not see still tells a returning caller who rang and when,
        # but neither the case's id nor the agent's words about it.
        "recent_outbound": [{"at": a["at"], "department": a["department"],
                             "purpose": a["purpose"] if a["case_id"] in visible else None,
                             "agent_name": a["agent_name"],
                             "case_id": a["case_id"] if a["case_id"] in visible else None} for a in attempts],
    }
    return web.Response(body=_encode(body), content_type="application/json")


async def _visible_cases(pool: Any, principal: Principal, case_ids: set[UUID]) -> set[UUID]:
    """Of these cases, those the caller may see: an agent learns no id of another department's case."""
    if principal.role in ("supervisor", "admin", "auditor"):
        return case_ids
    return {case_id for case_id, departments, assignee in await reach_of(pool, case_ids)
            if may_see(principal, departments, assignee)}
