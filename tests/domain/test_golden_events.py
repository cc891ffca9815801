"""Stored events of every type keep decoding (STYLE habit 3).

The fixtures in golden/ were written once by `python -m tests.domain.golden_events`
and are never edited: an event may only gain fields with defaults, so every
old fixture must still decode, through the same mapper the event store uses.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import msgspec
import pytest
from eventsourcing.persistence import StoredEvent

from casedesk.services.store.event_mapper import CaseEventMapper

from .golden_events import FOLDER, NOW, STORED_TYPES, fixture_path

FIXTURES = sorted(FOLDER.glob("*.json"))


def test_every_stored_event_type_has_a_golden_fixture() -> None:
    missing = [t.__name__ for t in STORED_TYPES if not fixture_path(t).exists()]
    assert missing == [], f"run `python -m tests.domain.golden_events` and commit: {missing}"


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_golden_event_still_decodes(path: Path) -> None:
    # Date-times are filled from the clock (a day ahead: a deadline not yet passed).
    tomorrow = msgspec.json.encode(datetime.now(UTC) + timedelta(days=1)).decode()  # as the mapper writes it
    fixture = json.loads(path.read_text().replace(f'"{NOW}"', tomorrow))
    state = fixture["state"]
    stored = StoredEvent(
        originator_id=UUID(state["originator_id"]),
        originator_version=state["originator_version"],
        topic=fixture["topic"],
        state=json.dumps(state).encode(),
    )
    event = CaseEventMapper().to_domain_event(stored)
    assert type(event).__name__ == path.stem
    # Nothing in the old row was dropped or reinterpreted on the way in (fields added
    # since, with their defaults, may appear beside it).
    assert _keeps(state, json.loads(msgspec.json.encode(event)))


def _keeps(old: object, new: object) -> bool:
    """`new` holds everything `old` holds, with the same values, at every depth."""
    if isinstance(old, dict) and isinstance(new, dict):
        return all(k in new and _keeps(v, new[k]) for k, v in old.items())
    if isinstance(old, list) and isinstance(new, list):
        return len(old) == len(new) and all(_keeps(a, b) for a, b in zip(old, new, strict=True))
    return old == new
