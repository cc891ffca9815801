"""Handlers of the case reads: the case view and the handoff timeline."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from casedesk.projections.case_view import CaseFile, TimelineEntry
from casedesk.services.case_access import check_may_read_parts
from casedesk.services.case_reading import read_case_file
from casedesk.services.http.app_keys import CASES, ZONE
from casedesk.services.http.commands import path_uuid
from casedesk.services.http.middleware import PRINCIPAL

_encoder = msgspec.json.Encoder()


async def _file(request: web.Request) -> CaseFile:
    cases = request.app[CASES]
    file = await read_case_file(cases.store, cases.mapper, path_uuid(request, "case_id"), request.app[ZONE])
    assignee = file.view.assignee.id if file.view.assignee else None
    check_may_read_parts(request[PRINCIPAL], file.view.departments, assignee)
    return file


def _answer(body: Any, version: int) -> web.Response:
    return web.Response(body=_encoder.encode(body), content_type="application/json",
                        headers={"ETag": f'"{version}"'})


async def get_case(request: web.Request) -> web.Response:
    file = await _file(request)
    return _answer(file.view, file.view.version)


def timeline_body(file: CaseFile) -> dict[str, Any]:
    entries: list[TimelineEntry] = list(file.timeline)
    note = file.view.pinned_note
    pinned = next((e for e in entries if note and e.kind == "handoff_note_added"
                   and e.at == note.at and e.actor.id == note.by.id), None)
    return {
        "case_id": file.view.case_id,
        "version": file.view.version,
        "pinned_note": file.view.pinned_note,
        "entries": ([pinned] if pinned else []) + entries,
    }


async def get_timeline(request: web.Request) -> web.Response:
    file = await _file(request)
    return _answer(timeline_body(file), file.view.version)
