"""The OpenAPI 3.1 document, generated from the route table and its msgspec Structs."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from aiohttp import web

from casedesk.services.http.case_requests import DEPARTMENT_PATTERN, PHONE_PATTERN
from casedesk.services.http.commands import IF_MATCH
from casedesk.services.http.operation_texts import DESCRIPTIONS, TAGS, operation_id, tag_of
from casedesk.services.http.problems import ProblemBody
from casedesk.services.http.query_numbers import BIGINT

DOCUMENT = web.AppKey("openapi_document", bytes)
_PARAM = re.compile(r"\{(\w+)\}")

_QUERY: dict[str, dict[str, Any]] = {
    "min_position": {"type": "integer", "minimum": 0, "maximum": BIGINT},
    "limit": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
    "cursor": {"type": "string"},
    "as_of": {"type": "string", "format": "date-time"},
    "version": {"type": "integer", "minimum": 1, "maximum": BIGINT},
    "phone": {"type": "string", "pattern": PHONE_PATTERN},
    "name": {"type": "string"},
    "last4": {"type": "string", "pattern": "^[0-9]{4}$"},
    "access_token": {"type": "string"},
}

_PATH: dict[str, dict[str, Any]] = {
    **{name: {"type": "string", "format": "uuid"} for name in ("case_id", "contact_id", "dispute_id", "callback_id",
                                                                "credit_id", "webhook_id")},
    "queue": {"type": "string", "pattern": DEPARTMENT_PATTERN},
    "department": {"type": "string", "pattern": DEPARTMENT_PATTERN},
}
_ERRORS = {
    "400": "Malformed JSON (also: a key twice in one object, nesting deeper than 32 levels)",
    "401": "Missing or invalid token",
    "403": "Role or case not allowed",
    "404": "No such resource (a case, an id, a queue, or a history version the case has not reached)",
    "409": "Refused by a rule of the case (type names the rule)",
    "412": "If-Match does not match the case version; `changed_by` names who changed the case since (each"
           " event after the If-Match version: agent, name, time, event type, version; the newest 20)",
    "413": "Body over 64 KiB",
    "415": "Body is not JSON, or not UTF-8 (charset)",
    "422": "Validation failed (errors lists each field); min_position past the last position written"
           " (type position-not-written)",
    "429": "Rate limited: try again after Retry-After seconds",
    "503": "Not ready, the database is out of reach, or the projection has not reached min_position",
}
_HEADERS = {
    "401": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    "503": {"Retry-After": {"required": True, "schema": {"type": "string", "pattern": "^[0-9]+$"}}},
    "429": {"Retry-After": {"required": True, "schema": {"type": "string", "pattern": "^[0-9]+$"}}},
}


def _problem(code: str) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": _ERRORS[code],
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemBody"}}}}
    if code in _HEADERS:
        answer["headers"] = _HEADERS[code]
    return answer


def _reason_required(route: Any) -> bool:
    """The unmasked personal-data reads: refused (422) without an X-Access-Reason."""
    return route.method == "GET" and route.path.endswith("/contact-details")


def _refusals(route: Any) -> list[str]:
    """The problem statuses a route can answer, from what it takes: no more, no fewer."""
    ids = [name for name in _PARAM.findall(route.path) if name.endswith("_id")]
    codes = {"404"} if ids or "{queue}" in route.path else set()  # an id or name that is not (or cannot be) one
    if route.roles is not None:
        codes |= {"401", "403"}
    if route.body is not None:
        codes |= {"400", "413", "415", "422"}
    if route.upload:
        codes |= {"415", "422"}  # not a list's media type; a CSV header without the columns
    if route.roles is not None:
        codes.add("503")  # the database out of reach (Retry-After), as for min_position
    if route.rate_limited:
        codes.add("429")
    if set(route.query) - {"access_token"} or "card_id" in ids or _reason_required(route):
        codes.add("422")  # a query value out of range; a full card number in the path
    if route.method == "POST" and route.roles is not None:
        codes |= {"409", "422"}  # a rule of the case, or a change that kept racing; a bad Idempotency-Key
        if _takes_if_match(route):
            codes.add("412")
        if route.path.endswith("/presence"):
            codes.discard("409")  # a heartbeat is no command: no rule, no race
    return sorted(codes)


def _takes_if_match(route: Any) -> bool:
    """Case commands; not a presence heartbeat, which changes no case."""
    return "{case_id}" in route.path and not route.path.endswith("/presence")


def _content(answer: Any, ref: dict[type, dict[str, Any]]) -> dict[str, Any]:
    if isinstance(answer, str):  # a media type: a page or plain text
        return {answer: {"schema": {"type": "string"}}}
    return {"application/json": {"schema": ref.get(answer, {"type": "object"})}}


_ETAG = {"ETag": {"description": "The case's version, for If-Match", "schema": {"type": "string"}}}
_LOCATION = {"Location": {"description": "Where the new resource is read", "schema": {"type": "string"}}}


def _answer_headers(route: Any) -> dict[str, Any]:
    """ETag on every answer about one case; Location on what a POST creates at a readable URL."""
    headers: dict[str, Any] = {}
    if route.path.startswith("/v1/cases/{case_id}") and route.path.rsplit("/", 1)[-1] not in (
            "history", "verify", "access-log", "presence", "stream"):
        headers |= _ETAG
    if route.path.endswith("/claim"):
        headers |= _ETAG
    if route.method == "POST" and route.path in ("/v1/cases", "/v1/breaches"):
        headers |= _ETAG if route.path == "/v1/cases" else {}
        headers |= _LOCATION
    return headers


def _answers(route: Any, ref: dict[type, dict[str, Any]]) -> dict[str, Any]:
    answers: dict[str, Any] = {str(route.status): {"description": "No content"} if route.answer is None
                               else {"description": "OK", "content": _content(route.answer, ref)}}
    if headers := _answer_headers(route):
        answers[str(route.status)]["headers"] = headers
    for status, answer in route.also:
        answers[str(status)] = ({"description": "No content"} if answer is None
                                else {"description": "See the summary", "content": _content(answer, ref)})
    answers.update({code: _problem(code) for code in _refusals(route) if code not in answers})
    return answers


def _operation(route: Any, ref: dict[type, dict[str, Any]]) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": _PATH.get(name, {"type": "string"})}
        for name in _PARAM.findall(route.path)
    ]
    if route.method == "POST" and route.roles is not None and not route.path.endswith("/presence"):
        params += [
            {"name": "Idempotency-Key", "in": "header", "required": False,
             "schema": {"type": "string", "minLength": 1, "maxLength": 200}},
        ]
        if _takes_if_match(route):
            params.append({"name": "If-Match", "in": "header", "required": False,
                           "schema": {"type": "string", "pattern": f"^(\\*|{IF_MATCH.pattern})$"}})
    params += [{"name": name, "in": "query", "required": False, "schema": _QUERY[name]} for name in route.query]
    if route.method == "GET" and route.path.endswith("/history"):
        params.append({"name": "X-Access-Reason", "in": "header", "required": False, "schema": {"type": "string"}})
    if _reason_required(route):
        params.append({"name": "X-Access-Reason", "in": "header", "required": True,
                       "schema": {"type": "string", "minLength": 1, "pattern": r"\S"}})
    op: dict[str, Any] = {
        "summary": route.summary,
        "description": DESCRIPTIONS.get((route.method, route.path), route.summary),
        "tags": [tag_of(route.path)],
        "operationId": operation_id(route.handler.__name__),
        "parameters": params,
        "responses": _answers(route, ref),
    }
    if route.body is not None:
        op["requestBody"] = {"required": True,
                             "content": {"application/json": {"schema": ref[route.body]}}}
    elif route.upload:
        # Text, one line per item: NDJSON objects, or CSV rows under a header naming the fields. Not a JSON
        # array: a client that sent one would have every line refused. Each line's fields are the line schema's.
        fields = ", ".join(f.name for f in msgspec.structs.fields(route.line)) if route.line else ""
        lines = {"type": "string", "description": f"One item per line: {fields}"}
        op["requestBody"] = {"required": True, "content": {media: {"schema": lines} for media in route.upload}}
    # Public routes say so: no security requirement at all, not an inherited one.
    op["security"] = [{"bearer": []}] if route.roles is not None else []
    return op


def _inside_request_bodies(routes: list[Any]) -> set[type]:
    """Every Struct a request body is made of, at any depth."""
    found: set[type] = set()

    def walk(t: msgspec.inspect.Type) -> None:
        if isinstance(t, msgspec.inspect.StructType) and t.cls not in found:
            found.add(t.cls)
            for f in t.fields:
                walk(f.type)
        elif isinstance(t, (msgspec.inspect.ListType, msgspec.inspect.VarTupleType)):
            walk(t.item_type)
        elif isinstance(t, msgspec.inspect.UnionType):
            for option in t.types:
                walk(option)

    for route in routes:
        if route.body is not None:
            walk(msgspec.inspect.type_info(route.body))
    return found


def build_document(routes: list[Any]) -> dict[str, Any]:
    kinds = sorted({t for r in routes for t in (r.body, r.answer, *(a for _, a in r.also))
                    if isinstance(t, type) and issubclass(t, msgspec.Struct)} | {ProblemBody}, key=lambda t: t.__name__)
    schemas, components = msgspec.json.schema_components(kinds, ref_template="#/components/schemas/{name}")
    ref = dict(zip(kinds, schemas, strict=True))
    for kind in _inside_request_bodies(routes):  # request_body refuses their unknown fields too
        components[kind.__name__]["additionalProperties"] = False
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, ref)
    ids = [op["operationId"] for ops in paths.values() for op in ops.values()]
    assert len(ids) == len(set(ids)), "two routes' handlers share a name: operation ids must be unique"
    return {
        "openapi": "3.1.0",
        "info": {"title": "casedesk", "version": "1.0.0",
                 "description": "Fraud-case backend for a card issuer's call center (CONTRACT.md).",
                 "contact": {"name": "casedesk engineering"},
                 "license": {"name": "Proprietary", "identifier": "LicenseRef-Proprietary"}},
        "servers": [{"url": "http://127.0.0.1:8080", "description": "`casedesk serve` on its default address"}],
        "tags": TAGS,
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
    }


async def serve(request: web.Request) -> web.Response:
    return web.Response(body=request.app[DOCUMENT], content_type="application/json")
