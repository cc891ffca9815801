"""The OpenAPI 3.1 document, generated from the route table and its msgspec Structs."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from aiohttp import web

from casedesk.services.http.case_requests import DEPARTMENT_PATTERN, PHONE_PATTERN
from casedesk.services.http.commands import IF_MATCH
from casedesk.services.http.operation_texts import (
    DESCRIPTIONS,
    EXAMPLES,
    QUERY_TEXTS,
    TAGS,
    operation_id,
    tag_of,
)
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
    "state": {"type": "string", "enum": ["pending", "approved", "rejected", "expired"]},
}

_PATH: dict[str, dict[str, Any]] = {
    **{name: {"type": "string", "format": "uuid"} for name in ("case_id", "contact_id", "dispute_id", "callback_id",
                                                                "credit_id", "webhook_id", "approval_id")},
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


# One server-sent event, as readers of a stream (and schemathesis, event by event) meet it: `event` names
# it (`presence`, `case-event`, the dashboard's `dashboard`...), `data` is one JSON document, `retry` the
# reconnection delay in ms; comment lines (`: ping`) keep the connection open and are no event.
_SERVER_SENT_EVENT = {
    "type": "object",
    "properties": {"event": {"type": "string"}, "data": {"type": "string", "contentMediaType": "application/json"},
                   "id": {"type": "string"}, "retry": {"type": "integer", "minimum": 0}},
}


def _content(answer: Any, ref: dict[type, dict[str, Any]]) -> dict[str, Any]:
    if answer == "text/event-stream":
        return {answer: {"schema": _SERVER_SENT_EVENT}}
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


_CASE = "/v1/cases/{case_id}"
_FROM_ANSWER = "$response.body#/"
# What an answer names that later calls take in their path: each producer's ids, as OpenAPI runtime
# expressions, and which of them it is the source of (the links of its answer lead to the routes that need one).
_PRODUCERS: dict[tuple[str, str], tuple[dict[str, str], set[str]]] = {
    ("POST", "/v1/cases"): ({"case_id": _FROM_ANSWER + "case_id", "card_id": "$request.body#/cards/0/card_id"},
                            {"case_id", "card_id"}),
    ("POST", "/v1/queues/{queue}/claim"): ({"case_id": _FROM_ANSWER + "case_id"}, {"case_id"}),
    **{("POST", f"{_CASE}/{what}"): ({"case_id": _FROM_ANSWER + "case_id", name: _FROM_ANSWER + name}, {name})
       for what, name in (("contacts", "contact_id"), ("disputes", "dispute_id"), ("callbacks", "callback_id"),
                          ("provisional-credits", "credit_id"))},
    ("POST", f"{_CASE}/escalations"): ({"case_id": _FROM_ANSWER + "case_id",
                                        "department": "$request.body#/to_department"}, {"department"}),
    ("POST", "/v1/breaches"): ({"breach_id": _FROM_ANSWER + "breach_id"}, {"breach_id"}),
    ("POST", "/v1/webhooks"): ({"webhook_id": _FROM_ANSWER + "webhook_id"}, {"webhook_id"}),
}


def _links(route: Any, routes: list[Any]) -> dict[str, Any]:
    """OpenAPI links from a creating answer to every API route that takes what it created (a case's id feeds
    the case routes): what generated clients and stateful testers follow."""
    produced = _PRODUCERS.get((route.method, route.path))
    if produced is None:
        return {}
    expressions, sources = produced
    links: dict[str, Any] = {}
    for target in routes:
        needs = set(_PARAM.findall(target.path))
        if target.roles is None or not needs or not needs <= set(expressions) or not needs & sources:
            continue
        links[operation_id(target.handler.__name__)] = {
            "operationId": operation_id(target.handler.__name__),
            "parameters": {name: expressions[name] for name in sorted(needs)},
            "description": f"{target.method} {target.path} with what this answer names",
        }
    return links


def _answers(route: Any, ref: dict[type, dict[str, Any]], routes: list[Any]) -> dict[str, Any]:
    answers: dict[str, Any] = {str(route.status): {"description": "No content"} if route.answer is None
                               else {"description": "OK", "content": _content(route.answer, ref)}}
    if headers := _answer_headers(route):
        answers[str(route.status)]["headers"] = headers
    if links := _links(route, routes):
        answers[str(route.status)]["links"] = links
    for status, answer in route.also:
        answers[str(status)] = ({"description": "No content"} if answer is None
                                else {"description": "See the summary", "content": _content(answer, ref)})
    answers.update({code: _problem(code) for code in _refusals(route) if code not in answers})
    return answers


def _who_may(route: Any) -> str:
    """The role table's line for this operation, as generated clients and readers of the document see it."""
    if route.roles is None:
        return "\n\nPublic: no token."
    text = f"\n\nRoles: {', '.join(route.roles)}."
    if "{case_id}" in route.path and "agent" in route.roles:
        text += (" Agents only on cases of their departments or assigned to them; any other case answers 404"
                 " exactly as an unknown id does.")
    return text


def _operation(route: Any, ref: dict[type, dict[str, Any]], routes: list[Any]) -> dict[str, Any]:
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
    params += [{"name": name, "in": "query", "required": False, "schema": _QUERY[name],
                "description": QUERY_TEXTS[name]} for name in route.query]
    if route.method == "GET" and route.path.endswith("/history"):
        params.append({"name": "X-Access-Reason", "in": "header", "required": False, "schema": {"type": "string"}})
    if _reason_required(route):
        params.append({"name": "X-Access-Reason", "in": "header", "required": True,
                       "schema": {"type": "string", "minLength": 1, "pattern": r"\S"}})
    op: dict[str, Any] = {
        "summary": route.summary,
        "description": DESCRIPTIONS.get((route.method, route.path), route.summary) + _who_may(route),
        "tags": [tag_of(route.path)],
        "operationId": operation_id(route.handler.__name__),
        "parameters": params,
        "responses": _answers(route, ref, routes),
    }
    if route.body is not None:
        media: dict[str, Any] = {"schema": ref[route.body]}
        if (route.method, route.path) in EXAMPLES:
            media["examples"] = {"first": {"summary": "A typical request",
                                           "value": EXAMPLES[(route.method, route.path)]}}
        op["requestBody"] = {"required": True, "content": {"application/json": media}}
    elif route.upload:
        # Text, one line per item: NDJSON objects, or CSV rows under a header naming the fields. Not a JSON
        # array: a client that sent one would have every line refused. Each line's fields are the line schema's.
        fields = ", ".join(f.name for f in msgspec.structs.fields(route.line)) if route.line else ""
        lines = {"type": "string", "minLength": 1, "description": f"One item per line: {fields}"}
        op["requestBody"] = {"required": True, "content": {media: {"schema": lines} for media in route.upload}}
    op["x-roles"] = list(route.roles or ())
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


def _is_time(t: msgspec.inspect.Type) -> bool:
    return isinstance(t, msgspec.inspect.DateTimeType)


def _times_are_date_times(kinds: list[type], components: dict[str, Any]) -> None:
    """Every time in a body says `format: date-time` (RFC 3339 with offset, as every time here is written).

    msgspec leaves the format out for a datetime that may be naive; casedesk never writes one, and refuses
    one sent (422), so the document says so.
    """
    seen: set[type] = set()

    def walk(t: msgspec.inspect.Type) -> None:
        if isinstance(t, msgspec.inspect.StructType):
            if t.cls in seen:
                return
            seen.add(t.cls)
            properties = components.get(t.cls.__name__, {}).get("properties", {})
            for f in t.fields:
                options = f.type.types if isinstance(f.type, msgspec.inspect.UnionType) else (f.type,)
                if any(_is_time(o) for o in options) and f.encode_name in properties:
                    prop = properties[f.encode_name]
                    for schema in prop.get("anyOf", [prop]):
                        if schema.get("type") == "string":
                            schema["format"] = "date-time"
                walk(f.type)
        elif isinstance(t, (msgspec.inspect.ListType, msgspec.inspect.VarTupleType, msgspec.inspect.SetType)):
            walk(t.item_type)
        elif isinstance(t, msgspec.inspect.DictType):
            walk(t.value_type)
        elif isinstance(t, msgspec.inspect.UnionType):
            for option in t.types:
                walk(option)

    for kind in kinds:
        walk(msgspec.inspect.type_info(kind))


def build_document(routes: list[Any]) -> dict[str, Any]:
    kinds = sorted({t for r in routes for t in (r.body, r.answer, *(a for _, a in r.also))
                    if isinstance(t, type) and issubclass(t, msgspec.Struct)} | {ProblemBody}, key=lambda t: t.__name__)
    schemas, components = msgspec.json.schema_components(kinds, ref_template="#/components/schemas/{name}")
    ref = dict(zip(kinds, schemas, strict=True))
    for kind in _inside_request_bodies(routes):  # request_body refuses their unknown fields too
        components[kind.__name__]["additionalProperties"] = False
    _times_are_date_times(kinds, components)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, ref, routes)
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
