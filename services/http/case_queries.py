"""Handlers of the case reads: the case view and the handoff timeline."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
from aiohttp import web

from casedesk.projections.timeline.reading import CaseRead
from casedesk.services.access_log import REASON_HEADER, reason_of, record_access
from casedesk.services.case_access import check_may_change, check_may_read_parts
from casedesk.services.case_clocks import clocks_of_view, view_as_of
from casedesk.services.http.app_keys import (
    CASE_READER,
    CASES,
    CUSTOMER_KEYS,
    POOL,
)
from casedesk.services.http.commands import path_uuid
from casedesk.services.http.middleware import PRINCIPAL
from casedesk.services.http.problems import FieldError, validation_problem
from casedesk.services.http.read_your_writes import wait_for_min_position
from casedesk.services.personal_data import dialable
from casedesk.services.privacy.customer_keys import ERASED


async def _read(request: web.Request, *, timeline: bool) -> CaseRead:
    waited = await wait_for_min_position(request, "case_files")
    # Once the standby has passed the caller's min_position it holds every event the caller
    # wrote, so the tail may come from it too; otherwise from the primary (see timeline/reading).
    read = await request.app[CASE_READER].read(path_uuid(request, "case_id"), timeline=timeline, waited=waited)
    check_may_read_parts(request[PRINCIPAL], read.departments, read.assignee)
    return read


_encode = msgspec.json.Encoder().encode


def _answer(body: bytes, version: int) -> web.Response:
    return web.Response(body=body, content_type="application/json", headers={"ETag": f'"{version}"'})


async def get_case(request: web.Request) -> web.Response:
    read = await _read(request, timeline=False)
    now = datetime.now(UTC)
    return _answer(with_ages(view_as_of(read.view, now), now), read.version)


def with_ages(view: bytes, now: datetime) -> bytes:
    """The view with `age_seconds` on each handoff item waiting `since` (processor instructions).

    Ages move with the clock, so they cannot be prepared by the projection; only
    a view that has such items (a key, so never inside escaped text) is decoded.
    """
    if b'"since":' not in view:
        return view
    document = msgspec.json.decode(view)
    for item in document["handoff"]["pending"]:
        if "since" in item:
            waited = now - datetime.fromisoformat(item["since"])
            item["age_seconds"] = max(0, int(waited.total_seconds()))
    return _encode(document)


async def get_clocks(request: web.Request) -> web.Response:
    """The case's deadline clocks as they stand now (the same as the case view carries)."""
    read = await _read(request, timeline=False)
    return _answer(_encode(clocks_of_view(read.view, datetime.now(UTC))), read.version)


async def get_timeline(request: web.Request) -> web.Response:
    read = await _read(request, timeline=True)
    return _answer(await request.app[CASE_READER].timeline(read), read.version)


async def get_contact_details(request: web.Request) -> web.Response:
    """The unmasked follow-up phone, for the agent who must dial it; every read is logged."""
    case_id = path_uuid(request, "case_id")
    case = await request.app[CASES].load(case_id)
    check_may_change(request[PRINCIPAL], case)  # those who work the case, not auditors
    if not (request.headers.get(REASON_HEADER) or "").strip():  # PCI DSS 10.2: every such read says why
        raise validation_problem([FieldError(REASON_HEADER, "say why you need the unmasked phone; it is logged")])
    phone = case.daytime_phone
    await record_access(request.app[POOL], request[PRINCIPAL], case_id, "contact details (daytime phone)",
                        reason_of(request.headers.get(REASON_HEADER)))
    number = (await request.app[CUSTOMER_KEYS].open_text(phone.number)
              if phone is not None and phone.number else None)
    body = {"case_id": str(case_id), "version": case.version,
            "daytime_phone": dialable(number) if number and number != ERASED else number}
    return web.Response(body=_encode(body), content_type="application/json",
                        headers={"ETag": f'"{case.version}"', "Cache-Control": "no-store"})
