"""Handlers of breach response: record a breach, take in its list of affected cards, read it back."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec
import structlog
from aiohttp import web

from casedesk.domain.breaches import BreachRecorded
from casedesk.domain.values import DataExposed, FeeBearer
from casedesk.services.breach_intake import ListFormat, UnreadableListError
from casedesk.services.breaches import BreachRecord
from casedesk.services.http.app_keys import BREACHES
from casedesk.services.http.case_requests import Short
from casedesk.services.http.commands import idempotency_of, path_uuid
from casedesk.services.http.middleware import PRINCIPAL
from casedesk.services.http.problems import FieldError, Problem, validation_problem
from casedesk.services.http.request_body import decode

_encode = msgspec.json.Encoder().encode
log = structlog.get_logger("casedesk.breaches")

# The media types a breach list may come as.
LIST_TYPES: dict[str, ListFormat] = {
    "application/x-ndjson": "ndjson", "application/ndjson": "ndjson", "application/jsonl": "ndjson",
    "text/csv": "csv",
}
READ_SIZE = 64 * 1024


class RecordBreach(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    merchant: Short
    window_start: Annotated[datetime, msgspec.Meta(tz=True)]
    window_end: Annotated[datetime, msgspec.Meta(tz=True)]
    data_exposed: Annotated[list[DataExposed], msgspec.Meta(min_length=1, max_length=8)]
    reissue_fee_bearer: FeeBearer


class BreachAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """A breach record as recorded."""

    breach_id: UUID
    merchant: str
    window_start: datetime
    window_end: datetime
    data_exposed: list[str]
    reissue_fee_bearer: str
    recorded_at: datetime
    recorded_by: str
    position: int | None = None


class RejectedLineAnswer(msgspec.Struct, frozen=True, kw_only=True):
    line: int
    reason: str


class IntakeAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """What one upload of affected cards did; `accepted` = `cases_opened` + `already_known`.

    `rejected` lists at most 10,000 lines; `rejected_total` counts them all.
    """

    accepted: int
    cases_opened: int
    already_known: int
    rejected: list[RejectedLineAnswer]
    rejected_total: int
    lines: int
    position: int | None


def _answer(event: BreachRecorded, position: int | None) -> BreachAnswer:
    return BreachAnswer(
        breach_id=event.originator_id, merchant=event.merchant, window_start=event.window_start,
        window_end=event.window_end, data_exposed=list(event.data_exposed),
        reissue_fee_bearer=event.reissue_fee_bearer, recorded_at=event.timestamp, recorded_by=event.actor.name,
        position=position,
    )


def _recorded(record: BreachRecord) -> tuple[int, bytes]:
    return 201, _encode(_answer(record.event, record.position))


async def record_breach(request: web.Request) -> web.Response:
    body = await decode(request, RecordBreach)
    idempotency = await idempotency_of(request)
    if isinstance(idempotency, web.Response):
        return idempotency
    record = await request.app[BREACHES].record(
        request[PRINCIPAL], merchant=body.merchant, window_start=body.window_start, window_end=body.window_end,
        data_exposed=tuple(body.data_exposed), reissue_fee_bearer=body.reissue_fee_bearer,
        idempotency=idempotency, answer=_recorded,
    )
    status, answer = _recorded(record)
    return web.Response(body=answer, status=status, content_type="application/json",
                        headers={"Location": f"/v1/breaches/{record.event.originator_id}"})


async def _breach(request: web.Request) -> BreachRecorded:
    breach_id = path_uuid(request, "breach_id")
    breach = await request.app[BREACHES].find(breach_id)
    if breach is None:
        raise Problem(404, "not-found", "No such breach", f"breach {breach_id} does not exist")
    return breach


async def get_breach(request: web.Request) -> web.Response:
    return web.Response(body=_encode(_answer(await _breach(request), None)), content_type="application/json")


async def take_affected_cards(request: web.Request) -> web.Response:
    """Stream the list in; each chunk's cases commit as they are read, so a retry finishes a cut-off upload."""
    breach = await _breach(request)
    form = LIST_TYPES.get(request.content_type)
    if form is None:
        raise Problem(415, "unsupported-media-type", "Unsupported media type",
                      "send the list as application/x-ndjson or text/csv, not " + request.content_type)
    intake = request.app[BREACHES].intake(breach, request[PRINCIPAL])
    try:
        report = await intake.take(request.content.iter_chunked(READ_SIZE), form)
    except UnreadableListError as error:
        raise validation_problem([FieldError("body", str(error))]) from None
    log.info("breach_list_taken", breach_id=str(breach.originator_id), **{
        k: v for k, v in report.as_answer().items() if k != "rejected"})
    return web.Response(body=_encode(report.as_answer()), status=202, content_type="application/json")
