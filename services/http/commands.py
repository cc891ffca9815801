"""The one path every case command takes over HTTP.

Parse the case id and If-Match, replay an Idempotency-Key already answered,
hand the decision to the application service, and answer with the command
response CONTRACT.md describes (`case_id`, `version`, `position`, `events`)
and the case's ETag.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from uuid import UUID

import msgspec
import structlog
from aiohttp import web

from casedesk.domain.card_data import holds_card_data
from casedesk.services.case_service import (
    CaseNotFoundError,
    Decision,
    Idempotency,
    Opening,
    Outcome,
    PairDecision,
)
from casedesk.services.http.app_keys import CASES, PERSONAL_DATA, POOL
from casedesk.services.http.middleware import PRINCIPAL
from casedesk.services.http.problems import FieldError, Problem, validation_problem
from casedesk.services.store.event_store import IdempotencyRaceError, StreamConflictError, stream_head
from casedesk.services.store.idempotency_keys import kept_answer

Extra = Callable[[Outcome], dict[str, Any]]
Status = int | Callable[[Outcome], int]
# A case version as an entity tag ("7", W/"7") or bare (7); "*" is any version. Eighteen
# digits at most: every version fits PostgreSQL's bigint.
IF_MATCH = re.compile(r'(?:W/)?"([0-9]{1,18})"|([0-9]{1,18})')
_encoder = msgspec.json.Encoder()


def path_uuid(request: web.Request, name: str) -> UUID:
    try:
        value = UUID(request.match_info[name])
        if name == "case_id":
            structlog.contextvars.bind_contextvars(case_id=str(value))
        return value
    except ValueError:
        raise Problem(404, "not-found", "Not found", f"{name} {request.match_info[name]!r} is not a known id") from None


def card_in_path(request: web.Request) -> str:
    """The card id in the path; a full card number there is refused like in a body."""
    card_id = request.match_info["card_id"]
    if holds_card_data("card_id", card_id):
        raise validation_problem([FieldError("card_id", "card numbers and security codes are never accepted here")])
    return card_id


def if_match(request: web.Request) -> int | None:
    header = request.headers.get("If-Match")
    if header is None or header.strip() == "*":
        return None
    # Digits only, as IF_MATCH documents it (int() would take "+7", "7_0" and other scripts' digits).
    match = IF_MATCH.fullmatch(header.strip())
    if match is None:
        raise validation_problem([FieldError("If-Match", 'must be a case version like "7"')])
    return int(match.group(1) or match.group(2))


def command_body(outcome: Outcome, extra: Extra | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "case_id": str(outcome.case.id),
        "version": outcome.version,
        "position": outcome.position,
        "events": [{"type": type(e).__name__, "version": e.originator_version} for e in outcome.events],
    }
    if extra is not None:
        body.update(extra(outcome))
    return body


def _json(status: int, body: bytes, version: int | None) -> web.Response:
    headers = {"ETag": f'"{version}"'} if version is not None else {}
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)


def idempotency_key_of(request: web.Request) -> str | None:
    """The request's Idempotency-Key as sent, refused (422) when it is not 1 to 200 characters."""
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= 200:
        raise validation_problem([FieldError("Idempotency-Key", "must be 1 to 200 characters")])
    return key


async def idempotency_of(request: web.Request) -> Idempotency | web.Response | None:
    """The request's Idempotency-Key; or the first answer, if this key was answered."""
    key = idempotency_key_of(request)
    if key is None:
        return None
    principal = request[PRINCIPAL].sub
    personal = request.app[PERSONAL_DATA]
    key = personal.idempotency_key(key)  # kept only as a keyed digest: the header may hold a card number
    digest = personal.request_digest(request.method.encode() + request.path.encode() + await request.read())
    kept = await kept_answer(request.app[POOL], principal, key)
    if kept is None:
        return Idempotency(principal, key, digest)
    if kept.request_hash != digest:
        raise validation_problem([FieldError("Idempotency-Key", "was already used with another request")])
    first = msgspec.json.decode(kept.response)
    replay = _json(kept.status, kept.response, first.get("version"))
    if request.path == "/v1/cases" and kept.status == 201:
        replay.headers["Location"] = f"/v1/cases/{first['case_id']}"
    elif request.path == "/v1/breaches" and kept.status == 201:
        replay.headers["Location"] = f"/v1/breaches/{first['breach_id']}"
    return replay


async def run(
    request: web.Request,
    case_id: UUID | None,
    decide: Decision | Opening,
    *,
    status: Status = 200,
    extra: Extra | None = None,
) -> web.Response:
    """Run a command (a new case when case_id is None) and answer it (`status`: fixed, or by what it did)."""
    # Headers are checked first: a malformed If-Match is refused even when the key replays an answer.
    expected_version = if_match(request) if case_id is not None else None
    idempotency = await idempotency_of(request)
    if isinstance(idempotency, web.Response):
        return idempotency

    def answer(outcome: Outcome) -> tuple[int, bytes]:
        code = status(outcome) if callable(status) else status
        return code, _encoder.encode(command_body(outcome, extra))

    cases = request.app[CASES]
    principal = request[PRINCIPAL]
    try:
        if case_id is None:
            outcome = await cases.open(principal, decide, idempotency, answer)  # type: ignore[arg-type]
        else:
            outcome = await cases.change(principal, case_id, decide, expected_version=expected_version,  # type: ignore[arg-type]
                                         idempotency=idempotency, answer=answer)
    except IdempotencyRaceError:
        replay = await idempotency_of(request)
        if isinstance(replay, web.Response):
            return replay
        raise
    structlog.contextvars.bind_contextvars(case_id=str(outcome.case.id))
    # From the events as decided: the note an agent just sent is answered in the clear, with no
    # token to open (the answer kept for an Idempotency-Key was made from the sealed events).
    status_code, body = answer(outcome.as_decided())
    if b"{{cd1." in body:  # a text shaped like a sealed token: answer as a replay would, token opened
        status_code, body = answer(outcome)
    response = _json(status_code, body, outcome.version)
    if case_id is None:
        response.headers["Location"] = f"/v1/cases/{outcome.case.id}"
    return response


async def run_pair(
    request: web.Request,
    case_id: UUID,
    other_id: UUID,
    other_field: str,
    decide: PairDecision,
    extra: Extra,
) -> web.Response:
    """Run a command on two cases (the path's and `other_id`, named by body field `other_field`).

    An `other_id` that does not exist, or that the caller may not see, is bad input in
    that field (422), one answer for both so it tells nothing of hidden cases.
    """
    expected_version = if_match(request)
    idempotency = await idempotency_of(request)
    if isinstance(idempotency, web.Response):
        return idempotency

    def answer(outcome: Outcome) -> tuple[int, bytes]:
        return 200, _encoder.encode(command_body(outcome, extra))

    try:
        outcome = await request.app[CASES].change_pair(
            request[PRINCIPAL], case_id, other_id, decide, expected_version=expected_version,
            idempotency=idempotency, answer=answer)
    except IdempotencyRaceError:
        replay = await idempotency_of(request)
        if isinstance(replay, web.Response):
            return replay
        raise
    except LookupError as error:
        if isinstance(error, CaseNotFoundError) and str(error) == str(case_id):
            raise
        raise validation_problem([FieldError(other_field, f"{other_id} names no case you may work")]) from None
    return _json(*answer(outcome), outcome.version)


async def _already_open(request: web.Request, case_id: UUID) -> web.Response | None:
    """200 with the case `case_id` as it stands, if it was opened; None if it was not."""
    row = await stream_head(request.app[POOL], case_id)
    if row is None:
        return None
    body = {"case_id": str(case_id), "version": row[0], "position": row[1], "events": [], "already_open": True}
    response = _json(200, _encoder.encode(body), row[0])
    response.headers["Location"] = f"/v1/cases/{case_id}"
    return response


async def open_once(
    request: web.Request, case_id: UUID, decide: Opening, *, extra: Extra | None = None
) -> web.Response:
    """Open case `case_id` (201), unless it is open already: then 200 with it, and nothing written.

    A fraud engine's alert names its case (alert_case_id), so two opens of one alert, even at
    the same instant, write the stream's first version once: the loser's append conflicts.
    """
    existing = await _already_open(request, case_id)
    if existing is not None:
        return existing
    try:
        return await run(request, None, decide, status=201, extra=extra)
    except StreamConflictError:
        existing = await _already_open(request, case_id)
        if existing is None:
            raise
        return existing
