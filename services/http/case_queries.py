"""Handlers of the case reads: the case view and the handoff timeline."""

from __future__ import annotations

from aiohttp import web

from casedesk.services.case_access import check_may_read_parts
from casedesk.services.case_reading import CaseRead, read_case
from casedesk.services.http.app_keys import CASES, ZONE
from casedesk.services.http.commands import path_uuid
from casedesk.services.http.middleware import PRINCIPAL
from casedesk.services.http.read_your_writes import wait_for_min_position


async def _read(request: web.Request) -> CaseRead:
    await wait_for_min_position(request, "case_files")
    cases = request.app[CASES]
    read = await read_case(cases.store, cases.mapper, path_uuid(request, "case_id"), request.app[ZONE])
    check_may_read_parts(request[PRINCIPAL], read.departments, read.assignee)
    return read


def _answer(body: bytes, version: int) -> web.Response:
    return web.Response(body=body, content_type="application/json", headers={"ETag": f'"{version}"'})


async def get_case(request: web.Request) -> web.Response:
    read = await _read(request)
    return _answer(read.view, read.version)


async def get_timeline(request: web.Request) -> web.Response:
    read = await _read(request)
    return _answer(read.timeline, read.version)
