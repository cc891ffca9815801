"""The OpenAPI 3.1 document, generated from the route table and its msgspec Structs."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from aiohttp import web

from casedesk.services.http.problems import ProblemBody

DOCUMENT = web.AppKey("openapi_document", bytes)
_PARAM = re.compile(r"\{(\w+)\}")

_QUERY: dict[str, dict[str, Any]] = {
    "min_position": {"type": "integer", "minimum": 0},
    "limit": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
    "cursor": {"type": "string"},
    "as_of": {"type": "string", "format": "date-time"},
    "version": {"type": "integer", "minimum": 1},
    "phone": {"type": "string"},
    "name": {"type": "string"},
    "last4": {"type": "string", "pattern": "^[0-9]{4}$"},
    "access_token": {"type": "string"},
}

_ERRORS = {
    "400": "Malformed JSON", "401": "Missing or invalid token", "403": "Role or case not allowed",
    "404": "No such resource", "409": "Refused by a rule of the case (type names the rule)",
    "412": "If-Match does not match the case version", "413": "Body over 64 KiB",
    "415": "Body is not JSON", "422": "Validation failed (errors lists each field)",
    "503": "Not ready, the database is out of reach, or the projection has not reached min_position",
}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemBody"}}}}


def _operation(route: Any, ref: dict[type, dict[str, Any]]) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True,
         "schema": {"type": "string", "format": "uuid"} if name.endswith("_id") and name != "card_id"
         else {"type": "string"}}
        for name in _PARAM.findall(route.path)
    ]
    if route.method == "POST" and route.roles is not None:
        params += [
            {"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string"}},
        ]
        if "{case_id}" in route.path:
            params.append({"name": "If-Match", "in": "header", "required": False, "schema": {"type": "string"}})
    params += [{"name": name, "in": "query", "required": False, "schema": _QUERY[name]} for name in route.query]
    if route.method == "GET" and route.path.endswith("/history"):
        params.append({"name": "X-Access-Reason", "in": "header", "required": False, "schema": {"type": "string"}})
    op: dict[str, Any] = {
        "summary": route.summary,
        "operationId": route.handler.__module__.rsplit(".", 1)[-1] + "_" + route.handler.__name__,
        "parameters": params,
        "responses": {str(route.status): {
            "description": "OK",
            "content": {"text/html": {"schema": {"type": "string"}}} if route.answer == "text/html"
            else {"application/json": {"schema": ref.get(route.answer, {"type": "object"})}},
        }},
    }
    if route.body is not None:
        op["requestBody"] = {"required": True,
                             "content": {"application/json": {"schema": ref[route.body]}}}
    elif route.upload:
        op["requestBody"] = {"required": True,
                             "content": {media: {"schema": {"type": "string"}} for media in route.upload}}
    if route.roles is not None:
        op["security"] = [{"bearer": []}]
        codes = ["401", "403", "503"] if route.method == "GET" else list(_ERRORS)
        if "{" in route.path:
            codes.append("404")
        op["responses"].update({c: _problem(_ERRORS[c]) for c in sorted(set(codes))})
    return op


def build_document(routes: list[Any]) -> dict[str, Any]:
    kinds = sorted({t for r in routes for t in (r.body, r.answer) if isinstance(t, type)
                    and issubclass(t, msgspec.Struct)} | {ProblemBody}, key=lambda t: t.__name__)
    schemas, components = msgspec.json.schema_components(kinds, ref_template="#/components/schemas/{name}")
    ref = dict(zip(kinds, schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, ref)
    return {
        "openapi": "3.1.0",
        "info": {"title": "casedesk", "version": "1.0.0",
                 "description": "Fraud-case backend for a card issuer's call center (CONTRACT.md)."},
        "paths": paths,
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
    }


async def serve(request: web.Request) -> web.Response:
    return web.Response(body=request.app[DOCUMENT], content_type="application/json")
