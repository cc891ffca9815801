"""Turning a request body into a request Struct, or a clear 4xx.

400 for malformed JSON (duplicate keys and nesting deeper than MAX_DEPTH
included), 415 for a body that is not JSON or not UTF-8, 422 with one entry
per field for unknown, missing, mistyped or card-data-bearing fields, and for
any text holding a NUL character.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from casedesk.domain.card_data import holds_card_data
from casedesk.services.http.problems import FieldError, Problem, validation_problem

T = TypeVar("T", bound=msgspec.Struct)

# Free text is redacted by the domain; every other string is a structured field,
# where a full card number is refused outright.
FREE_TEXT = frozenset(
    {"summary", "text", "note", "reason", "detail", "resolution", "purpose", "notes"}
)
SECURITY_CODE_NAMES = re.compile(r"(cvv|cvc|cvv2|cid|security_?code)", re.IGNORECASE)
_PATH = re.compile(r"`\$((?:\.[A-Za-z_0-9]+|\[\d+\])*)`")
# No request is nested half this deep; the checks below walk bodies recursively.
MAX_DEPTH = 32
_UTF8 = frozenset({"utf-8", "utf8"})


def _malformed(detail: str) -> Problem:
    return Problem(400, "malformed-json", "Malformed JSON", detail)


def _depth(value: Any) -> int:
    """How deeply objects and arrays nest (iterative: a deep body must not exhaust the stack)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, level = todo.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            return deepest
        todo.extend((child, level + 1) for child in children)
    return deepest


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"duplicate key {key!r}")
        seen[key] = value
    return seen


def parse_json(raw: bytes) -> Any:
    """Parse a JSON document, refusing what a lenient parser would guess at.

    A duplicate key would silently lose one of its values (the last wins), so
    it is malformed here; so is nesting past MAX_DEPTH.
    """
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError as error:
        raise _malformed(str(error)) from error
    except RecursionError:
        raise _malformed(f"nested deeper than {MAX_DEPTH} levels") from None
    if _depth(value) > MAX_DEPTH:
        raise _malformed(f"nested deeper than {MAX_DEPTH} levels")
    try:
        # The stdlib parser is the one that shows each key as written; the body is small and shallow now.
        json.loads(raw, object_pairs_hook=_refuse_duplicate_keys)
    except ValueError as error:
        raise _malformed(str(error)) from error
    return value


async def read_json(request: web.Request) -> Any:
    if not request.body_exists:
        return {}  # then every required field is reported missing, by name
    if request.content_type != "application/json":
        raise Problem(415, "unsupported-media-type", "Unsupported media type",
                      f"send application/json, not {request.content_type}")
    if request.charset is not None and request.charset.lower() not in _UTF8:
        raise Problem(415, "unsupported-media-type", "Unsupported media type",
                      f"JSON is read as UTF-8; charset={request.charset} is not accepted")
    return parse_json(await request.read())


def _field_problems(value: Any, kind: type[msgspec.Struct], prefix: str) -> list[FieldError]:
    """Unknown and missing fields, all at once (msgspec stops at the first)."""
    if not isinstance(value, dict):
        return [FieldError(prefix or "body", "must be a JSON object")]
    info = _struct_info(kind)
    names = {f.encode_name: f for f in info.fields}
    errors = [FieldError(f"{prefix}{k}", "unknown field") for k in value if k not in names]
    errors += [
        FieldError(f"{prefix}{f.encode_name}", "is required")
        for f in info.fields
        if f.required and f.encode_name not in value
    ]
    for name, item in value.items():
        field = names.get(name)
        if field is None:
            continue
        nested = _struct_of(field.type)
        if nested is not None and isinstance(item, dict):
            errors += _field_problems(item, nested, f"{prefix}{name}.")
        elif nested is not None and isinstance(item, list):
            for n, element in enumerate(item):
                errors += _field_problems(element, nested, f"{prefix}{name}[{n}].")
    return errors


@cache
def _struct_info(kind: type[msgspec.Struct]) -> msgspec.inspect.StructType:
    info = msgspec.inspect.type_info(kind)  # costly; request types are few and fixed
    assert isinstance(info, msgspec.inspect.StructType)
    return info


def _struct_of(t: msgspec.inspect.Type) -> type[msgspec.Struct] | None:
    if isinstance(t, msgspec.inspect.StructType):
        return t.cls
    if isinstance(t, (msgspec.inspect.ListType, msgspec.inspect.VarTupleType)):
        return _struct_of(t.item_type)
    if isinstance(t, msgspec.inspect.UnionType):
        for option in t.types:
            found = _struct_of(option)
            if found is not None:
                return found
    return None


def _card_data_problems(value: Any, path: str, name: str = "") -> list[FieldError]:
    """A card number or a security code in a structured field is refused.

    Every request Struct of the API is decoded through `convert`, so this is the
    one structured check at the edge: every string not named free text, at any
    depth, however its digits are written (see `holds_card_data`).
    """
    if isinstance(value, dict):
        found: list[FieldError] = []
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            if SECURITY_CODE_NAMES.fullmatch(str(key)):
                found.append(FieldError(child, "security codes are never accepted"))
            elif key not in FREE_TEXT:
                found += _card_data_problems(item, child, str(key))
        return found
    if isinstance(value, list):
        return [e for n, item in enumerate(value) for e in _card_data_problems(item, f"{path}[{n}]", name)]
    if isinstance(value, str) and holds_card_data(name, value):
        return [FieldError(path or "body", "card numbers and security codes are never accepted here")]
    return []


def _nul_problems(value: Any, path: str) -> list[FieldError]:
    """A NUL character anywhere: PostgreSQL's text cannot hold one, so a read model could never store it."""
    if isinstance(value, dict):
        return [e for key, item in value.items() for e in _nul_problems(item, f"{path}.{key}" if path else str(key))]
    if isinstance(value, list):
        return [e for n, item in enumerate(value) for e in _nul_problems(item, f"{path}[{n}]")]
    if isinstance(value, str) and "\x00" in value:
        return [FieldError(path or "body", "must not contain the NUL character")]
    return []


def _whole_numbers_as_integers(value: Any) -> Any:
    """`2.0` as `2`: JSON Schema (and so the document) counts a number with no fraction as an integer."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _whole_numbers_as_integers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_numbers_as_integers(item) for item in value]
    return value


def convert(value: Any, kind: type[T]) -> T:
    """Check and convert an already parsed JSON value into a request Struct."""
    errors = _nul_problems(value, "") + _card_data_problems(value, "") + _field_problems(value, kind, "")
    if errors:
        raise validation_problem(errors)
    try:
        return msgspec.convert(_whole_numbers_as_integers(value), kind)
    except msgspec.ValidationError as error:
        message = str(error)
        match = _PATH.search(message)
        field = match.group(1).lstrip(".") if match else "body"
        text = _PATH.sub("", message).replace(" - at ", "").strip(" -") or "is not valid"
        raise validation_problem([FieldError(field or "body", text)]) from error


async def decode(request: web.Request, kind: type[T]) -> T:
    """Read, parse, check and convert a JSON body into a request Struct."""
    return convert(await read_json(request), kind)
