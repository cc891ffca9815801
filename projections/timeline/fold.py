"""Folding a case's events into its case file: the view plus the timeline.

The same fold serves the live projection (which stores the result per case)
and audit history (which folds a prefix of the stream), so what an agent saw
and what an auditor replays cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, tzinfo

import msgspec

from casedesk.domain import events as ev
from casedesk.domain.clock_policies import DEFAULT_POLICY, ClockPolicy
from casedesk.domain.clocks import advance
from casedesk.projections.timeline.handoff import refresh_handoff
from casedesk.projections.timeline.sentences import KIND, call_check_text, sentence
from casedesk.projections.timeline.shapes import (
    CallCheckView,
    CardView,
    CaseFile,
    CaseView,
    CustomerView,
    FileRest,
    TimelineAnswer,
    TimelineEntry,
    person,
)
from casedesk.projections.timeline.view_changes import change_view


def open_file(event: ev.CaseOpened) -> CaseFile:
    c = event.customer
    view = CaseView(
        case_id=event.originator_id,
        version=event.originator_version,
        status="open",
        reason=event.reason,
        opened_at=event.timestamp,
        summary=event.summary,
        customer=CustomerView(
            customer_id=c.customer_id, name=c.name_masked, registered_phone=c.phone.masked
        ),
        cards=[
            CardView(card_id=k.card_id, last4=k.last4, network=k.network, kind=k.kind,
                     primary_card_id=k.primary_card_id, product=k.product)
            for k in event.cards
        ],
        amount_at_risk=event.amount_at_risk,
        departments=["fraud"],
    )
    return CaseFile(view=view)


# change_view's function for each event type, found once: singledispatch looks every call up in a
# WeakKeyDictionary, in Python; a 1,000-event fold took 2.05 ms with it and 1.46 ms with this.
_CHANGES: dict[type[ev.CaseEvent], Callable[[ev.CaseEvent, CaseFile], None]] = {}


def apply(file: CaseFile | None, event: ev.CaseEvent, zone: tzinfo = UTC, *, timeline: bool = True,
          policy: ClockPolicy = DEFAULT_POLICY) -> CaseFile:
    """Fold one event into the case file (in place) and return it.

    The handoff summary is derived once per fold, not per event: call
    `refresh_handoff(file.view)` (fold does) before the file is read or stored.
    Without `timeline` only the view is kept (audit history sends no timeline,
    and its sentences were a seventh of a 1,000-event replay). `policy` gives
    the deadline clocks' rules.
    """
    if file is None:
        if not isinstance(event, ev.CaseOpened):
            raise ValueError(f"case {event.originator_id} does not start with CaseOpened")
        file = open_file(event)
    else:
        kind = type(event)
        change = _CHANGES.get(kind) or _CHANGES.setdefault(kind, change_view.dispatch(kind))
        change(event, file)
    if isinstance(event, ev.ContactStarted):
        file.started[str(event.contact_id)] = event
    elif isinstance(event, ev.CallVerified):  # here, not in change_view: its text needs the zone
        file.view.call_checks.append(CallCheckView(
            at=event.timestamp, contact_id=event.contact_id, call_at=event.call_at, channel=event.channel,
            code=event.code, text=call_check_text(event, file.started, zone)))
    book = advance(file.clock_book, event, policy)
    if book is not file.clock_book:
        if book.clocks is not file.clock_book.clocks:
            file.view.clocks, file.clocks_moved = list(book.clocks), True
        file.clock_book = book
    file.view.version = event.originator_version
    file.view.updated_at = event.timestamp
    if not timeline:
        return file
    entry = TimelineEntry(
        at=event.timestamp,
        kind=KIND[type(event)],
        actor=person(event.actor),
        contact_id=event.contact_id,
        text=sentence(event, file.started, zone),
        version=event.originator_version,
    )
    file.timeline.append(entry)
    if isinstance(event, ev.HandoffNoteAdded) and event.pinned:
        file.pinned_entry = entry
    return file


def fold(
    events: Iterable[ev.CaseEvent], file: CaseFile | None = None, zone: tzinfo = UTC, *, timeline: bool = True,
    policy: ClockPolicy = DEFAULT_POLICY,
) -> CaseFile | None:
    """Fold events into a case file and derive its handoff summary (`timeline`, `policy`: see apply)."""
    for event in events:
        file = apply(file, event, zone, timeline=timeline, policy=policy)
    if file is not None:
        refresh_handoff(file.view)
    return file


def timeline_of(file: CaseFile) -> TimelineAnswer:
    """The timeline answer of a file folded from the first event: the pinned note's entry first, then all."""
    return TimelineAnswer(case_id=file.view.case_id, version=file.view.version, pinned_note=file.view.pinned_note,
                          entries=pinned_entries(file) + file.timeline)


def pinned_entries(file: CaseFile) -> list[TimelineEntry]:
    return [file.pinned_entry] if file.view.pinned_note is not None and file.pinned_entry is not None else []


_decode_view = msgspec.json.Decoder(CaseView).decode
_decode_rest = msgspec.json.Decoder(FileRest).decode
_encode = msgspec.json.Encoder().encode


def stored_file(view: bytes, rest: bytes) -> CaseFile:
    """A case file from its case_files columns (view, file), to fold further; its
    stored timeline entries stay in timeline_parts, so `timeline` starts empty."""
    stored, case_view = _decode_rest(rest), _decode_view(view)
    book = msgspec.structs.replace(stored.clock_book, clocks=tuple(case_view.clocks))
    return CaseFile(view=case_view, started=stored.started, pinned_entry=stored.pinned_entry, clock_book=book)


def file_rest(file: CaseFile) -> bytes:
    """The `file` column: only what view and timeline entries do not already store."""
    # The clocks themselves are in the view already; the rest of the book is what they are derived from.
    book = msgspec.structs.replace(file.clock_book, clocks=())
    return _encode(FileRest(started=file.started, pinned_entry=file.pinned_entry, clock_book=book))
