"""A case's deadline clocks as they stand at the moment they are read.

The case_files projection keeps each case's clocks as its events left them,
so a rebuild gives the same rows; whether a running clock has run out depends
only on the time of reading, and is said here (`standing` in domain/clocks.py).
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec

from casedesk.domain.clocks import Clock, clocks_as_of
from casedesk.projections.timeline.shapes import CaseView


class ClocksAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """GET /v1/cases/{id}/clocks: every deadline clock of the case, as it stands now."""

    case_id: UUID
    version: int
    clocks: list[Clock]


_decode_view = msgspec.json.Decoder(CaseView).decode
_encode = msgspec.json.Encoder().encode
# Only a running clock can change with time; most views hold none and are sent as stored.
_RUNNING = b'"state":"running"'


def view_as_of(view: bytes, now: datetime) -> bytes:
    """The stored view's bytes, with running clocks past due shown breached."""
    if _RUNNING not in view:
        return view
    case = _decode_view(view)
    case.clocks = clocks_as_of(case.clocks, now)
    for merged in case.merged_cases:  # the clocks a survivor carries for a case merged into it
        merged.clocks = clocks_as_of(merged.clocks, now)
    return _encode(case)


def clocks_of_view(view: bytes, now: datetime) -> ClocksAnswer:
    case = _decode_view(view)
    return ClocksAnswer(case_id=case.case_id, version=case.version, clocks=clocks_as_of(case.clocks, now))
