"""Audit history: every stored event of a case up to a time or version, and the case then.

One query reads the events with their notification ids and chain hashes; the
same fold the case_files projection uses gives the state, so what an agent saw
and what an auditor replays cannot disagree. Payloads show personal data only
masked: phone digests and numbers, and the customer's name digest, are left out.

A long case (5,000 events, some 3 MB of JSON) is decoded, folded, masked and
encoded HISTORY_TURN events at a time, handing the event loop back in between,
so other clients' requests are served while an auditor reads it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from functools import cache, lru_cache
from operator import attrgetter
from typing import Any, cast
from uuid import UUID

import msgspec
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from casedesk.domain.clock_policies import DEFAULT_POLICY, ClockPolicy
from casedesk.domain.clocks import clocks_as_of
from casedesk.domain.errors import CaseNotFoundError
from casedesk.domain.events import CaseEvent, CaseOpened
from casedesk.domain.values import Actor, Customer, PhoneNumber
from casedesk.projections.timeline.fold import CaseFile, apply
from casedesk.projections.timeline.handoff import refresh_handoff
from casedesk.projections.timeline.shapes import CaseView
from casedesk.services.store.event_mapper import CaseEventMapper
from casedesk.services.store.event_store import AuditedEvent, EventStore
from casedesk.services.turn_taking import give_way

CASE_OPENED_TOPIC = get_topic(CaseOpened)

HISTORY_TURN = 25  # events handled per event-loop turn (about half a millisecond), whatever the case's length
# Stored events read lately, decoded and masked. An auditor replays a case again and again (the
# replay page steps through its versions) and decoding and masking were 40 % of a replay. Keyed by
# the row's bytes themselves, so a changed row is read afresh: what is shown is always what is stored.
READ_LATELY = 10_000
_encode = msgspec.json.Encoder().encode

_ENVELOPE = frozenset({"originator_id", "originator_version", "timestamp", "actor", "contact_id"})
# Digests and clear values that an audit payload never shows.
_HIDDEN: dict[type, frozenset[str]] = {PhoneNumber: frozenset({"key", "number", "former_keys"}),
                                      Customer: frozenset({"name_key"})}


class HistoryEvent(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One stored event as an auditor reads it (immutable, no cycles: not the garbage collector's)."""

    type: str
    version: int
    position: int
    recorded_at: datetime
    actor: Actor
    contact_id: UUID | None
    payload: dict[str, Any]
    hash: str | None


class HistoryAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """GET /v1/cases/{id}/history: the events to that point and the case view as it stood then."""

    case_id: UUID
    events: list[HistoryEvent]
    state: CaseView | None


@cache
def _shown(kind: type[msgspec.Struct]) -> tuple[str, ...]:
    """The fields of a Struct an audit payload shows."""
    hidden = _HIDDEN.get(kind, frozenset()) | (_ENVELOPE if issubclass(kind, CaseEvent) else frozenset())
    return tuple(f for f in kind.__struct_fields__ if f not in hidden)


# Values shown as they are. Most of a payload's fields are these: checking the type inline, not
# calling _masked for each, halves the masking of a replay (~1 µs an event of ~2).
_PLAIN = frozenset({str, int, float, bool, type(None), datetime, date, UUID, Decimal})


@cache
def _picked(kind: type[msgspec.Struct]) -> tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]]]:
    """The shown fields of a Struct and one getter for all their values."""
    fields = _shown(kind)
    if not fields:
        return fields, lambda _: ()
    if len(fields) == 1:
        one = attrgetter(fields[0])
        return fields, lambda value: (one(value),)
    return fields, attrgetter(*fields)


def _masked(value: Any) -> Any:
    if type(value) in _PLAIN:
        return value
    if isinstance(value, msgspec.Struct):
        fields, values = _picked(type(value))
        return {f: v if type(v) in _PLAIN else _masked(v) for f, v in zip(fields, values(value), strict=True)}
    if isinstance(value, list | tuple):
        return [v if type(v) in _PLAIN else _masked(v) for v in value]
    return value


def history_event(event: CaseEvent, position: int, chain_hash: bytes | None,
                  payload: dict[str, Any] | None = None) -> HistoryEvent:
    """One event as history shows it, masked (webhooks send the same)."""
    return HistoryEvent(
        type=type(event).__name__,
        version=event.originator_version,
        position=position,
        recorded_at=event.timestamp,
        actor=event.actor,
        contact_id=event.contact_id,
        payload=_masked(event) if payload is None else payload,
        hash=chain_hash.hex() if chain_hash is not None else None,
    )


@lru_cache(maxsize=READ_LATELY)
def read_stored(mapper: CaseEventMapper, originator_id: UUID, version: int, topic: str,
                state: bytes) -> tuple[Any, dict[str, Any]]:
    """A stored row's event and its masked payload, from the rows read lately when it is one of them
    (shared by every answer and webhook delivery that shows it: never changed by a reader).

    The payload is kept encoded (msgspec.Raw, the same bytes as encoding the dict): 10,000 masked
    dicts were the bulk of what every full garbage collection walked, 30 ms at a time, and each
    answer encoded them again."""
    event: Any = mapper.to_domain_event(StoredEvent(originator_id=originator_id, originator_version=version,
                                                          topic=topic, state=state))
    return event, cast(dict[str, Any], msgspec.Raw(_encode(_masked(event))))


def forget_rows_read_lately() -> None:
    """Empty the memory of rows read lately (a benchmark's first read; a test's clean start)."""
    read_stored.cache_clear()


class VersionNotWrittenError(LookupError):
    """History was asked as of a version the case has not reached."""

    def __init__(self, asked: int, current: int) -> None:
        super().__init__(f"the case is at version {current}; version {asked} was never written")
        self.asked, self.current = asked, current

    def __reduce__(self) -> tuple[type[VersionNotWrittenError], tuple[int, int]]:
        return VersionNotWrittenError, (self.asked, self.current)  # raised in the history process too


async def case_history(
    store: EventStore,
    mapper: CaseEventMapper,
    case_id: UUID,
    zone: tzinfo,
    *,
    version: int | None = None,
    as_of: datetime | None = None,
    policy: ClockPolicy = DEFAULT_POLICY,
    now: datetime | None = None,
) -> HistoryAnswer:
    """The case as of a version or a time (the last event at or before it); all of it by default.

    Its clocks stand as they did then: at `as_of`, at the chosen version's event, else at `now`.
    """
    audited = await _audited(store, case_id, version)
    return await history_of(audited, mapper, case_id, zone, version=version, as_of=as_of, policy=policy, now=now)


async def case_history_document(
    store: EventStore,
    mapper: CaseEventMapper,
    case_id: UUID,
    zone: tzinfo,
    *,
    version: int | None = None,
    as_of: datetime | None = None,
    policy: ClockPolicy = DEFAULT_POLICY,
) -> bytes:
    """case_history's answer as JSON, the same bytes as encoding it, made a turn of events at a time."""
    audited = await _audited(store, case_id, version)
    return await history_document(audited, mapper, case_id, zone, version=version, as_of=as_of, policy=policy)


async def _audited(store: EventStore, case_id: UUID, version: int | None) -> list[AuditedEvent]:
    audited = await store.read_stream_audited(case_id, lte=version)
    if not audited or audited[0].topic != CASE_OPENED_TOPIC:
        raise CaseNotFoundError(str(case_id))
    if version is not None and audited[-1].originator_version < version:
        # Answering the whole case would pass it off as the asked version.
        raise VersionNotWrittenError(version, audited[-1].originator_version)
    return audited


async def history_of(
    audited: Sequence[AuditedEvent],
    mapper: CaseEventMapper,
    case_id: UUID,
    zone: tzinfo,
    *,
    version: int | None = None,
    as_of: datetime | None = None,
    policy: ClockPolicy = DEFAULT_POLICY,
    now: datetime | None = None,
    turn: int = HISTORY_TURN,
) -> HistoryAnswer:
    """The history answer from a case's stored events, yielding to the event loop every `turn` events."""
    shown: list[HistoryEvent] = []
    state = await _replayed(audited, mapper, zone, shown.extend, version=version, as_of=as_of, policy=policy,
                            now=now, turn=turn)
    return HistoryAnswer(case_id=case_id, events=shown, state=state)


async def history_document(
    audited: Sequence[AuditedEvent],
    mapper: CaseEventMapper,
    case_id: UUID,
    zone: tzinfo,
    *,
    version: int | None = None,
    as_of: datetime | None = None,
    policy: ClockPolicy = DEFAULT_POLICY,
    now: datetime | None = None,
    turn: int = HISTORY_TURN,
) -> bytes:
    """history_of's answer encoded, byte for byte, but each turn's events encoded and let go at once:
    a 5,000-event case never lives as objects whole, so the garbage collector has little to walk."""
    items: list[bytes] = []

    def encode(shown: list[HistoryEvent]) -> None:
        if shown:
            items.append(_encode(shown)[1:-1])  # the events without the list's brackets

    state = await _replayed(audited, mapper, zone, encode, version=version, as_of=as_of, policy=policy, now=now,
                            turn=turn)
    events = b",".join(items)  # (a 5,000-event case: 3 MB copied, then again below; a turn each)
    await give_way()
    return b"".join([b'{"case_id":', _encode(case_id), b',"events":[', events, b'],"state":', _encode(state), b"}"])


async def _replayed(
    audited: Sequence[AuditedEvent],
    mapper: CaseEventMapper,
    zone: tzinfo,
    take: Callable[[list[HistoryEvent]], None],
    *,
    version: int | None,
    as_of: datetime | None,
    policy: ClockPolicy,
    now: datetime | None,
    turn: int,
) -> CaseView | None:
    """Decode, fold and mask `turn` events at a time, handing each turn's events to `take` and the
    event loop back after it; the case view as it stood then. Stops at the first event after `as_of`."""
    file: CaseFile | None = None
    last: CaseEvent | None = None
    for start in range(0, len(audited), turn):
        shown: list[HistoryEvent] = []
        for row in audited[start:start + turn]:
            event, payload = read_stored(mapper, row.originator_id, row.originator_version, row.topic, row.state)
            if as_of is not None and event.timestamp > as_of:
                break
            file = apply(file, event, zone, timeline=False, policy=policy)  # the answer holds the view only
            shown.append(history_event(event, row.position, row.hash, payload))
            last = event
        take(shown)
        await give_way()
        if len(shown) < turn:
            break  # past as_of, or the last turn
    if file is None or last is None:
        return None
    await give_way()  # the view of a long case is large: its handoff, clocks and encoding get a turn of their own
    refresh_handoff(file.view)
    then = as_of or (last.timestamp if version is not None else now or datetime.now(UTC))
    file.view.clocks = clocks_as_of(file.view.clocks, then)
    return file.view
