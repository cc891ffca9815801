"""Which fields of which events hold the customer's personal data.

These are the strings sealed under the customer's data key when an event is
stored (services/privacy), and so the ones that read "[erased]" once the key is
destroyed: names (masked names still show initials), phone numbers and their
masked forms (the last four digits), daytime phones, contact summaries, note
texts and the free-text notes of other events. Everything else (types, times,
actors, amounts, card last4, decisions, reasons given by staff) is the record
the issuer keeps.

`with_personal(event, change)` returns the event with each personal string
passed through `change` (None and "" stay as they are): pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from . import events as ev

_PHONE = ("masked", "number")

# Event type -> paths of its personal strings; a path through a struct is dotted.
PERSONAL_FIELDS: dict[type[ev.CaseEvent], tuple[str, ...]] = {
    ev.CaseOpened: ("customer.name_masked", "customer.phone.masked", "customer.phone.number", "summary"),
    ev.ContactStarted: tuple(f"phone.{p}" for p in _PHONE),
    ev.ContactEnded: ("summary",),
    ev.DisputeResolved: ("note",),
    ev.DisputeStageRecorded: ("note",),
    ev.CustomerLiabilityWaived: ("note",),
    ev.CompromiseSuspected: ("detail",),
    ev.ContactDetailsRecorded: tuple(f"daytime_phone.{p}" for p in _PHONE),
    ev.HandoffNoteAdded: ("text",),
    ev.CallbackScheduled: tuple(f"phone.{p}" for p in _PHONE),
    ev.CallbackCompleted: ("note",),
    ev.CallbackMissed: ("note",),
    ev.CallbackRescheduled: ("note",),
    ev.CaseReleased: ("note",),
    ev.CaseResolved: ("summary",),
    ev.CustomerNotified: ("summary",),
    # Four eyes: the waiver's note as asked (a credit asked for has none), the decisions' notes.
    ev.ApprovalRequested: ("command.note",),
    ev.ApprovalGranted: ("note",),
    ev.ApprovalRejected: ("note",),
}

_S = TypeVar("_S", bound=msgspec.Struct)


def _changed(value: _S, path: list[str], change: Callable[[str], str]) -> _S:
    head, rest = path[0], path[1:]
    inner: Any = getattr(value, head, None)  # None too where a union's other member has no such field
    if inner is None:
        return value
    if rest:
        new = _changed(inner, rest, change)
    elif isinstance(inner, str) and inner:
        new = change(inner)
    else:
        return value
    return value if new is inner else msgspec.structs.replace(value, **{head: new})


_E = TypeVar("_E", bound=ev.CaseEvent)


# The same paths split once (a command's events are sealed on every request).
_SPLIT: dict[type[ev.CaseEvent], tuple[list[str], ...]] = {
    kind: tuple(path.split(".") for path in paths) for kind, paths in PERSONAL_FIELDS.items()}


def with_personal(event: _E, change: Callable[[str], str]) -> _E:
    """The event with every personal string passed through `change`."""
    for path in _SPLIT.get(type(event), ()):
        event = _changed(event, path, change)
    return event


def has_personal_fields(event: ev.CaseEvent) -> bool:
    return type(event) in PERSONAL_FIELDS
