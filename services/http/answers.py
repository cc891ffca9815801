"""Response bodies, as Structs, for the OpenAPI document (and clients built from it)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec

from casedesk.projections.case_view import CaseView, TimelineAnswer


class EventRef(msgspec.Struct, frozen=True):
    type: str
    version: int


class NewCard(msgspec.Struct, frozen=True):
    card_id: str
    last4: str


class CommandAnswer(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Every command's answer; the route-specific fields appear where they apply."""

    case_id: UUID
    version: int
    position: int | None
    events: list[EventRef]
    contact_id: UUID | None = None
    dispute_id: UUID | None = None
    note_id: UUID | None = None
    text: str | None = None
    callback_id: UUID | None = None
    suspended: list[str] | None = None
    new_card: NewCard | None = None


class Health(msgspec.Struct, frozen=True, kw_only=True):
    status: str | None = None
    ready: bool | None = None
    database: bool | None = None
    detail: str | None = None


CaseViewAnswer = CaseView
__all__ = ["CaseViewAnswer", "CommandAnswer", "Health", "TimelineAnswer"]
Anything = dict[str, Any]
