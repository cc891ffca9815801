"""Folding a case's events into its case file: the view plus the timeline.

The same fold serves the live projection (which stores the result per case)
and audit history (which folds a prefix of the stream), so what an agent saw
and what an auditor replays cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, tzinfo

import msgspec

from casedesk.domain import events as ev
from casedesk.projections.case_view import (
    CardView,
    CaseFile,
    CaseView,
    CustomerView,
    FileRest,
    TimelineAnswer,
    TimelineEntry,
    person,
)
from casedesk.projections.case_view_changes import change_view
from casedesk.projections.handoff import refresh_handoff
from casedesk.projections.timeline_text import KIND, sentence


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
                     primary_card_id=k.primary_card_id)
            for k in event.cards
        ],
        amount_at_risk=event.amount_at_risk,
        departments=["fraud"],
    )
    return CaseFile(view=view)


def apply(file: CaseFile | None, event: ev.CaseEvent, zone: tzinfo = UTC) -> CaseFile:
    """Fold one event into the case file (in place) and return it.

    The handoff summary is derived once per fold, not per event: call
    `refresh_handoff(file.view)` (fold does) before the file is read or stored.
    """
    if file is None:
        if not isinstance(event, ev.CaseOpened):
            raise ValueError(f"case {event.originator_id} does not start with CaseOpened")
        file = open_file(event)
    else:
        change_view(event, file)
    if isinstance(event, ev.ContactStarted):
        file.started[str(event.contact_id)] = event
    file.view.version = event.originator_version
    file.view.updated_at = event.timestamp
    file.timeline.append(
        TimelineEntry(
            at=event.timestamp,
            kind=KIND[type(event)],
            actor=person(event.actor),
            contact_id=event.contact_id,
            text=sentence(event, file.started, zone),
            version=event.originator_version,
        )
    )
    return file


def fold(
    events: Iterable[ev.CaseEvent], file: CaseFile | None = None, zone: tzinfo = UTC
) -> CaseFile | None:
    """Fold events into a case file and derive its handoff summary."""
    for event in events:
        file = apply(file, event, zone)
    if file is not None:
        refresh_handoff(file.view)
    return file


def timeline_of(file: CaseFile) -> TimelineAnswer:
    """The timeline answer: the pinned handoff note's entry first, then all in order."""
    note = file.view.pinned_note
    pinned = [e for e in file.timeline if note is not None and e.kind == "handoff_note_added"
              and e.at == note.at and e.actor.id == note.by.id][-1:]
    return TimelineAnswer(case_id=file.view.case_id, version=file.view.version,
                          pinned_note=note, entries=pinned + file.timeline)


_decode_view = msgspec.json.Decoder(CaseView).decode
_decode_timeline = msgspec.json.Decoder(TimelineAnswer).decode
_decode_rest = msgspec.json.Decoder(FileRest).decode
_encode = msgspec.json.Encoder().encode


def stored_file(view: bytes, timeline: bytes, rest: bytes) -> CaseFile:
    """A case file from its case_files columns (view, timeline, file), to fold further.

    The timeline answer holds one entry per event after the pinned copy (if any),
    so the file's own timeline is its last `version` entries.
    """
    case_view = _decode_view(view)
    entries = _decode_timeline(timeline).entries
    return CaseFile(view=case_view, timeline=entries[len(entries) - case_view.version:],
                    started=_decode_rest(rest).started)


def file_rest(file: CaseFile) -> bytes:
    """The `file` column: only what view and timeline do not already store."""
    return _encode(FileRest(started=file.started))
