"""Golden JSON of every stored event type: write the missing ones.

    .venv/bin/python -m tests.domain.golden_events

Each fixture is one stored event (topic and msgspec state) with every field
filled, written once and then never changed: `test_golden_events` decodes them
all with today's code, so a renamed, moved or retyped event (STYLE habit 3)
fails a test instead of failing on production rows. Date-times are written as
NOW, which the test fills from the clock: a literal one (an approval's
`expires_at`, a callback's `due_at`) would one day be a date the code finds past.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.utils import get_topic

from casedesk.domain.breaches import BreachRecorded
from casedesk.domain.events import EVENT_TYPES, RecordedEvent
from casedesk.domain.merchants import MerchantFlagged

FOLDER = Path(__file__).parent / "golden"
STORED_TYPES: tuple[type[RecordedEvent], ...] = (*EVENT_TYPES, BreachRecorded, MerchantFlagged)
AT = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)  # any date-time: written as NOW
NOW = "<now>"
# Fields whose values the domain checks on construction.
BY_NAME: dict[str, Any] = {"last4": "4242", "new_last4": "0007", "amount": "1500", "currency": "JPY"}


def sample(info: msgspec.inspect.Type, name: str = "") -> Any:
    """A value of the type with every optional part present."""
    t = msgspec.inspect
    if isinstance(info, t.StrType) and name in BY_NAME:
        return BY_NAME[name]
    simple: dict[type, Any] = {
        t.StrType: "x",
        t.IntType: 1,
        t.BoolType: True,
        t.FloatType: 1.5,
        t.DateTimeType: AT,
        t.DateType: date(2025, 1, 2),
        t.UUIDType: UUID(int=7),
        t.DecimalType: Decimal("1.5"),
    }
    if type(info) in simple:
        return simple[type(info)]
    if isinstance(info, t.LiteralType):
        return info.values[0]
    if isinstance(info, t.StructType):
        return info.cls(**{f.name: sample(f.type, f.name) for f in info.fields})
    if isinstance(info, t.UnionType):
        return sample(next(option for option in info.types if not isinstance(option, t.NoneType)), name)
    if isinstance(info, t.TupleType):
        return tuple(sample(item) for item in info.item_types)
    if isinstance(info, (t.VarTupleType, t.ListType, t.FrozenSetType, t.SetType)):
        return (sample(info.item_type),)
    if isinstance(info, t.DictType):
        return {sample(info.key_type): sample(info.value_type)}
    raise TypeError(f"no sample for {info!r}: teach golden_events this type")


def fixture_path(event_type: type) -> Path:
    return FOLDER / f"{event_type.__name__}.json"


def write_missing() -> list[Path]:
    written = []
    for event_type in STORED_TYPES:
        path = fixture_path(event_type)
        if path.exists():
            continue
        event = sample(msgspec.inspect.type_info(event_type))
        state = json.loads(msgspec.json.encode(event).replace(msgspec.json.encode(AT), f'"{NOW}"'.encode()))
        path.write_text(
            json.dumps({"topic": get_topic(event_type), "state": state}, indent=1, ensure_ascii=False) + "\n"
        )
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_missing():
        print(f"wrote {path}")
