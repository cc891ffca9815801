"""Middlewares: request id and access log, problem details, bearer auth."""

from __future__ import annotations

import itertools
import re
import time
import uuid
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from casedesk.domain.card_data import contains_card_data, redact_card_numbers
from casedesk.domain.errors import CaseMergedError, FieldRefused, RuleViolation
from casedesk.services.call_verification import TooManyChecksError
from casedesk.services.case_access import AccessDeniedError, CaseHiddenError
from casedesk.services.case_service import CaseNotFoundError, VersionMismatchError
from casedesk.services.http import large_answers
from casedesk.services.http.app_keys import CUSTOMER_KEYS, SETTINGS, TURNS
from casedesk.services.http.large_answers import PiecewiseBody
from casedesk.services.http.problems import CONTENT_TYPE, FieldError, Problem, as_json, validation_problem
from casedesk.services.phone_numbers import PhoneNumberRefused
from casedesk.services.store.database import database_unreachable
from casedesk.services.store.event_store import IdempotencyRaceError, StreamConflictError
from casedesk.services.tokens import InvalidTokenError, Principal, SignedWithAnotherSecretError, key_id, read_token
from casedesk.services.turn_taking import quick_request

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
log = structlog.get_logger("casedesk.http")

PRINCIPAL = web.RequestKey("principal", Principal)
# On an answer whose sealed tokens were opened where it was made (the history process): not again.
OPENED = web.ResponseKey("casedesk_opened", bool)
# Which roles may call a route, keyed by (method, canonical path); None = public.
ALLOWED_ROLES = web.AppKey("allowed_roles", dict)


def problem_response(problem: Problem) -> web.Response:
    return web.Response(
        body=as_json(problem.body),
        status=problem.status,
        content_type=CONTENT_TYPE,
        headers=problem.headers,
    )


def unknown_case(case_id: str) -> Problem:
    """The one answer for a case id that does not exist, or not for the caller."""
    return Problem(404, "not-found", "No such case", f"case {case_id} does not exist")


def _case_in_path(request: web.Request) -> str:
    raw = request.match_info.get("case_id", "")
    try:
        return str(uuid.UUID(raw))  # as an unknown id is named: the same answer, to the letter
    except ValueError:
        return raw


def service_problem(error: Exception) -> Problem:
    """The answer for each refusal of the application service."""
    if isinstance(error, AccessDeniedError):
        return Problem(403, "forbidden", "Not allowed", str(error))
    if isinstance(error, CaseNotFoundError):
        return unknown_case(str(error))
    if isinstance(error, VersionMismatchError):
        return Problem(412, "version-mismatch", "The case has changed", str(error),
                       current_version=error.current, changed_by=error.changed_by)
    if isinstance(error, IdempotencyRaceError):
        return Problem(409, "idempotency-key-in-use", "A request with this key is in flight",
                       "retry later to get its answer")
    return Problem(409, "concurrent-change", "The case kept changing", "retry the command")


DATABASE_UNREACHABLE = Problem(
    503, "database-unreachable", "The database is out of reach",
    "retry shortly; a command sent again with the same Idempotency-Key is done at most once",
    headers={"Retry-After": "1"},
)

REQUEST_ID = re.compile(r"[!-~]{1,200}")
_HTTP_KINDS = {
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    413: ("payload-too-large", "Request body is larger than 64 KiB"),
}


# A case, contact or approval id as casedesk writes them: a UUID with at least one letter (one all in
# digits could be a card number grouped 8-4-4-4-12, so it is read like any other text).
_ID_WITH_A_LETTER = re.compile(
    r"(?=[0-9-]*[a-f])[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


def loggable_path(request: web.Request) -> str:
    """The path as the log may hold it: card numbers masked.

    A path that matched a route whose every variable part is an id is the
    route's own text plus ids, which hold no card data: it is logged as it came
    without scanning it (a tenth of a note's own CPU time went to that scan).
    """
    info = request.match_info
    if info.route.resource is not None and all(_ID_WITH_A_LETTER.fullmatch(v) for v in info.values()):
        return request.path
    return redact_card_numbers(request.path)


# Our request ids: this process's random prefix and a counter (unique across processes without a
# system call for randomness per request, as uuid4 makes).
_OUR_REQUEST_IDS = (f"{uuid.uuid4().hex[:16]}{n:016x}" for n in itertools.count(1))


def request_id_of(request: web.Request) -> str:
    """The caller's X-Request-Id, or a new one in place of one unfit for the log.

    The id is logged with every line of the request and echoed back, so one that
    holds a card number or a security code (or is not short printable ASCII) is
    replaced, not refused: the caller still gets its answer, under our id.
    """
    given = request.headers.get("X-Request-Id", "")
    if REQUEST_ID.fullmatch(given) and not contains_card_data(given):
        return given
    return next(_OUR_REQUEST_IDS)


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind a request id, answer every error as problem+json, log one line per request."""
    request_id = request_id_of(request)
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    try:
        with quick_request(request.app[TURNS]):  # long work gives way while it runs (turn_taking.py)
            response = await handler(request)
    except Problem as problem:
        response = problem_response(problem)
    except FieldRefused as refused:  # card data, an impossible amount: bad input in one field
        response = problem_response(validation_problem([FieldError(refused.field, refused.detail)]))
    except CaseHiddenError:
        response = problem_response(unknown_case(_case_in_path(request)))
    except TooManyChecksError as busy:
        response = problem_response(Problem(429, "too-many-call-verifications", "Too many call verifications",
                                            f"{busy}; try again later",
                                            headers={"Retry-After": str(busy.retry_after)}))
    except PhoneNumberRefused as refused:
        response = problem_response(validation_problem([FieldError(refused.field, refused.detail)]))
    except RuleViolation as violation:
        merged_into = violation.merged_into if isinstance(violation, CaseMergedError) else None
        response = problem_response(
            Problem(409, violation.rule, "Refused by a rule of the case", violation.detail, rule=True,
                    merged_into=None if merged_into is None else str(merged_into))
        )
    except (AccessDeniedError, CaseNotFoundError, VersionMismatchError, StreamConflictError,
            IdempotencyRaceError) as error:
        response = problem_response(service_problem(error))
    except web.HTTPException as http:
        if http.status < 400:
            raise
        kind, title = _HTTP_KINDS.get(http.status, ("http-error", http.reason))
        allow = {"Allow": http.headers["Allow"]} if "Allow" in http.headers else {}  # a 405 must name them
        response = problem_response(Problem(http.status, kind, title, http.text or "", headers=allow))
    except Exception as error:
        if database_unreachable(error):
            # Not a fault of the request nor a bug: say "try again" (503), and a
            # command retried with its Idempotency-Key cannot be done twice.
            log.warning("database_unreachable", path=redact_card_numbers(request.path), error=repr(error))
            response = problem_response(DATABASE_UNREACHABLE)
        else:
            log.exception("unhandled_error", path=redact_card_numbers(request.path))
            response = problem_response(Problem(500, "internal", "Internal error", "see the server log"))
    response.headers["X-Request-Id"] = request_id
    log.info(
        "request",
        method=request.method,
        path=loggable_path(request),
        status=response.status,
        ms=round((time.perf_counter() - started) * 1000, 2),
    )
    return response


@web.middleware
async def open_sealed(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Personal data leaves sealed tokens only here: each one in an answer is opened (issue 21);
    and an answer longer than a piece is then sent a piece at a time (large_answers.py, issue 15).

    Everything stored (events, case files, timelines, kept answers) holds tokens;
    an answer gets the clear text, or "[erased]" once the customer's key is gone.
    Streams open their own events (case_stream.py, dashboard.py).
    """
    response = await handler(request)
    body = response.body if isinstance(response, web.Response) else None
    if not isinstance(body, bytes):
        return response
    if not response.get(OPENED) and b"{{cd1." in body and CUSTOMER_KEYS in request.app:
        body = response.body = await request.app[CUSTOMER_KEYS].open_json(body)
    if len(body) > large_answers.PIECE:
        response.body = PiecewiseBody(body)
    return response


def _bearer(request: web.Request, path: str) -> str | None:
    """The bearer token; from `?access_token=` only on the streams (CONTRACT.md).

    A browser's EventSource cannot send headers, so a stream takes the token in
    its URL; anywhere else a token in a URL would end up in proxies' and
    browsers' histories, so it is not taken (and the answer says why).
    """
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[7:].strip()
    if "access_token" in request.query and not path.endswith("/stream"):
        raise Problem(401, "unauthorized", "A bearer token is required",
                      "?access_token= is taken by the streams only; send Authorization: Bearer",
                      headers={"WWW-Authenticate": "Bearer"})
    return request.query.get("access_token")


def _another_secret(secret: str, source: str, error: InvalidTokenError) -> str | None:
    """Which secret the server checks with, and which signed the token (key ids; never a secret, nor a path)."""
    if not isinstance(error, SignedWithAnotherSecretError):
        return None
    where = ("CASEDESK_TOKEN_SECRET" if source == "CASEDESK_TOKEN_SECRET"
             else "the token_secret file of its data directory (CASEDESK_DATA_DIR)")
    signed = f"key {error.signed_with}" if error.signed_with else "a key it does not name"
    return (f"Signature verification failed: this server checks tokens with key {key_id(secret)} (from {where});"
            f" this token was signed with {signed}. Issue it with the server's secret: the same"
            " CASEDESK_TOKEN_SECRET, or `casedesk token` with the same CASEDESK_DATA_DIR.")


@web.middleware
async def bearer_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """401 without a valid token, 403 when the route does not admit the role."""
    route = request.match_info.route
    path = route.resource.canonical if route.resource else ""
    roles = request.app[ALLOWED_ROLES].get((route.method, path))
    if roles is None:
        return await handler(request)
    token = _bearer(request, path)
    if not token:
        raise Problem(401, "unauthorized", "A bearer token is required",
                      "send 'Authorization: Bearer <token>' (`casedesk token` prints one)",
                      headers={"WWW-Authenticate": "Bearer"})
    settings = request.app[SETTINGS]
    try:
        principal = read_token(settings.token_secret, token)
    except InvalidTokenError as error:
        detail = _another_secret(settings.token_secret, settings.token_secret_source, error) or str(error)
        raise Problem(401, "unauthorized", "The bearer token is not valid", detail,
                      headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}) from error
    if principal.role not in roles:
        raise Problem(403, "forbidden", "Your role may not do this",
                      f"role {principal.role} is not allowed here")
    request[PRINCIPAL] = principal
    structlog.contextvars.bind_contextvars(agent=principal.sub)
    return await handler(request)
