"""What a webhook carries: one case event, masked as audit history shows it.

Body (CONTRACT.md "Effects"): `{"type", "timestamp", "data": {"case_id",
"version", "position", "event"}}`, `event` being history's entry for the event
(projections/timeline/history.py: phone numbers and digests left out, names masked),
so a receiver never gets a card number, an unmasked phone or a customer's name.
Merchant flags and breach records share the log but are not case events: they
are passed over.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any
from uuid import UUID, uuid5

import asyncpg
import msgspec

from casedesk.domain import events as ev
from casedesk.projections.timeline.history import HistoryEvent, history_event, read_stored
from casedesk.services.privacy.customer_keys import CustomerKeys
from casedesk.services.store.event_mapper import CaseEventMapper
from casedesk.services.store.event_store import audited_after

ALL_TYPES = "*"


class WebhookData(msgspec.Struct, frozen=True, kw_only=True):
    case_id: UUID
    version: int
    position: int
    event: HistoryEvent


class WebhookBody(msgspec.Struct, frozen=True, kw_only=True):
    type: str
    timestamp: datetime
    data: WebhookData


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """One event ready to send: its stable id (`webhook-id`), its case, its position, its body."""

    event_id: UUID
    case_id: UUID
    type: str
    position: int
    body: bytes


_encode = msgspec.json.Encoder().encode


def event_id(event: ev.RecordedEvent) -> UUID:
    """An event's id: the same derivation as the processor instructions' token
    (domain/processor_instructions.py), so both name an event alike."""
    return uuid5(event.originator_id, str(event.originator_version))


@cache
def event_types() -> frozenset[str]:
    """The names of every case event (a subscription's `event_types` choose among them)."""
    found: set[str] = set()
    kinds: list[type] = [ev.CaseEvent]
    while kinds:
        kind = kinds.pop()
        found.add(kind.__name__)
        kinds.extend(kind.__subclasses__())
    return frozenset(found - {ev.CaseEvent.__name__})


def wanted(types: Sequence[str], type_name: str) -> bool:
    return ALL_TYPES in types or type_name in types


def delivery(event: ev.CaseEvent, position: int, chain_hash: bytes | None,
             payload: dict[str, Any] | None = None) -> Delivery:
    name = type(event).__name__
    body = WebhookBody(type=name, timestamp=event.timestamp, data=WebhookData(
        case_id=event.originator_id, version=event.originator_version, position=position,
        event=history_event(event, position, chain_hash, payload)))
    return Delivery(event_id=event_id(event), case_id=event.originator_id, type=name, position=position,
                    body=_encode(body))


async def read_after(
    pool: asyncpg.Pool, mapper: CaseEventMapper, position: int, limit: int, types: Sequence[str],
    *, keys: CustomerKeys | None = None,
) -> tuple[list[Delivery], int | None, int]:
    """The case events after `position` a subscription wants, the position of the last row read
    (None when the log has nothing after `position`) and how many rows were read (fewer than
    `limit`: the log's end was reached)."""
    rows = await audited_after(pool, position, limit)
    found: list[Delivery] = []
    for row in rows:
        # Each subscription reads the same rows: decoded and masked once (timeline/history's rows read lately).
        event, payload = read_stored(mapper, row[1], row[2], row[3], bytes(row[4]))
        if isinstance(event, ev.CaseEvent) and wanted(types, type(event).__name__):
            found.append(delivery(event, row[0], None if row[5] is None else bytes(row[5]), payload))
    if keys is not None:  # the receiver gets the clear text, or "[erased]" (issue 21)
        found = [msgspec.structs.replace(d, body=await keys.open_json(d.body)) for d in found]
    return found, (rows[-1][0] if rows else None), len(rows)
