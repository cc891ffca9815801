"""Handlers of the case reads: the case view and the handoff timeline."""

from __future__ import annotations

import heapq
from datetime import UTC, datetime
from uuid import UUID

import msgspec
from aiohttp import web

from casedesk.projections.case_view import TimelineAnswer, TimelineEntry
from casedesk.services.access_log import REASON_HEADER, reason_of, record_access
from casedesk.services.case_access import check_may_change, check_may_read_parts
from casedesk.services.case_clocks import clocks_of_view, view_as_of
from casedesk.services.case_reading import CaseRead, read_case
from casedesk.services.http.app_keys import CASES, CLOCK_POLICY, POOL, READ_POOL, READ_STORE, ZONE
from casedesk.services.http.commands import path_uuid
from casedesk.services.http.middleware import PRINCIPAL
from casedesk.services.http.problems import FieldError, validation_problem
from casedesk.services.http.read_your_writes import wait_for_min_position
from casedesk.services.personal_data import dialable


async def _read(request: web.Request, *, timeline: bool) -> CaseRead:
    waited = await wait_for_min_position(request, "case_files")
    app, cases = request.app, request.app[CASES]
    # Once the standby has passed the caller's min_position it holds every event the caller
    # wrote, so the tail may come from it too; otherwise from the primary (see case_reading).
    store = app[READ_STORE] if waited else cases.store
    read = await read_case(store, cases.mapper, path_uuid(request, "case_id"), app[ZONE], files=app[READ_POOL],
                           timeline=timeline, policy=app[CLOCK_POLICY])
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
    assert read.timeline is not None
    merged = merged_case_ids(read.view)
    if not merged:
        return _answer(read.timeline, read.version)
    app, cases = request.app, request.app[CASES]
    others = [await read_case(cases.store, cases.mapper, case_id, app[ZONE], files=app[READ_POOL], timeline=True,
                              policy=app[CLOCK_POLICY]) for case_id in merged]
    return _answer(interleaved(read.timeline, [o.timeline for o in others if o.timeline is not None]), read.version)


class _MergedCase(msgspec.Struct):
    case_id: UUID


class _MergedCases(msgspec.Struct):
    merged_cases: list[_MergedCase] = []


_decode_merged = msgspec.json.Decoder(_MergedCases).decode
_decode_timeline = msgspec.json.Decoder(TimelineAnswer).decode


def merged_case_ids(view: bytes) -> list[UUID]:
    """The cases merged into this one, from its view (decoded only when there are any)."""
    if b'"merged_cases":[]' in view:
        return []
    return [m.case_id for m in _decode_merged(view).merged_cases]


def _marked(answer: TimelineAnswer) -> tuple[list[TimelineEntry], list[TimelineEntry]]:
    """(the pinned note's entry, if shown first; every entry in order), each marked with its case."""
    entries = [msgspec.structs.replace(e, from_case_id=answer.case_id) for e in answer.entries]
    if answer.pinned_note is not None and len(entries) > 1 and entries[0].version in {e.version for e in entries[1:]}:
        return entries[:1], entries[1:]
    return [], entries


def interleaved(timeline: bytes, merged: list[bytes]) -> bytes:
    """The survivor's timeline with the merged cases' entries in time order, each marked `from_case_id`.

    Composed when read, from each case's own timeline: no stored entry is ever
    rewritten, and an unmerge needs nothing undone (the entries simply stop
    being composed). Ties in time keep the survivor's entries first.
    """
    survivor = _decode_timeline(timeline)
    pinned, own = _marked(survivor)
    theirs = [_marked(_decode_timeline(t))[1] for t in merged]
    entries = list(heapq.merge(own, *theirs, key=lambda e: e.at))
    return _encode(TimelineAnswer(case_id=survivor.case_id, version=survivor.version,
                                  pinned_note=survivor.pinned_note, entries=pinned + entries))


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
    body = {"case_id": str(case_id), "version": case.version,
            "daytime_phone": dialable(phone.number) if phone is not None and phone.number else None}
    return web.Response(body=_encode(body), content_type="application/json",
                        headers={"ETag": f'"{case.version}"', "Cache-Control": "no-store"})
