"""RFC 9457 problem details: every refusal casedesk gives, in one shape.

A handler raises `Problem`; the middleware in errors.py turns it (and
aiohttp's own HTTP errors) into `application/problem+json`.
"""

from __future__ import annotations

from typing import Any

import msgspec

from casedesk.services.case_service import CaseChange

PROBLEM_BASE = "https://casedesk.dev/problems/"
RULE_BASE = "https://casedesk.dev/rules/"
CONTENT_TYPE = "application/problem+json"


class FieldError(msgspec.Struct, frozen=True):
    """One invalid field of a request."""

    field: str
    message: str


class ProblemBody(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The body of every error response."""

    type: str
    title: str
    status: int
    detail: str = ""
    errors: list[FieldError] | None = None
    current_version: int | None = None
    merged_into: str | None = None  # a command on a merged-away case (409 case-merged): the survivor
    # 412 version-mismatch: each event written since the If-Match version, with who wrote it.
    changed_by: list[CaseChange] | None = None


class Problem(Exception):
    """Raise to answer with a problem; `kind` becomes the type URI's last part."""

    def __init__(
        self,
        status: int,
        kind: str,
        title: str,
        detail: str = "",
        *,
        errors: list[FieldError] | None = None,
        current_version: int | None = None,
        changed_by: list[CaseChange] | None = None,
        rule: bool = False,
        merged_into: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.body = ProblemBody(
            type=(RULE_BASE if rule else PROBLEM_BASE) + kind,
            title=title,
            status=status,
            detail=detail,
            errors=errors,
            current_version=current_version,
            merged_into=merged_into,
            changed_by=changed_by,
        )
        self.headers = headers or {}

    @property
    def status(self) -> int:
        return self.body.status


def validation_problem(errors: list[FieldError]) -> Problem:
    return Problem(422, "validation", "The request is not valid", errors=errors,
                   detail="; ".join(f"{e.field}: {e.message}" for e in errors))


def not_found(what: str) -> Problem:
    return Problem(404, "not-found", "Not found", f"{what} does not exist")


def as_json(body: Any) -> bytes:
    return msgspec.json.encode(body)
