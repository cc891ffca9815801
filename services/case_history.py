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

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, tzinfo
from functools import cache
from itertools import takewhile
from typing import Any, TypeVar
from uuid import UUID

import msgspec

from casedesk.domain.clock_policies import DEFAULT_POLICY, ClockPolicy
from casedesk.domain.clocks import clocks_as_of
from casedesk.domain.events import CaseEvent
from casedesk.domain.values import Actor, Customer, PhoneNumber
from casedesk.projections.case_file import CaseFile, apply
from casedesk.projections.case_view import CaseView
from casedesk.projections.handoff import refresh_handoff
from casedesk.services.case_reading import CASE_OPENED_TOPIC
from casedesk.services.case_service import CaseNotFoundError
from casedesk.services.event_mapper import CaseEventMapper
from casedesk.services.event_store import AuditedEvent, EventStore

HISTORY_TURN = 200  # events handled per event-loop turn, whatever the case's length
_encode = msgspec.json.Encoder().encode
_Item = TypeVar("_Item")
_Done = TypeVar("_Done")

_ENVELOPE = frozenset({"originator_id", "originator_version", "timestamp", "actor", "contact_id"})
# Digests and clear values that an audit payload never shows.
_HIDDEN: dict[type, frozenset[str]] = {PhoneNumber: frozenset({"key", "number", "former_keys"}),
                                      Customer: frozenset({"name_key"})}


class HistoryEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One stored event as an auditor reads it."""

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


def _masked(value: Any) -> Any:
    if isinstance(value, msgspec.Struct):
        return {f: _masked(getattr(value, f)) for f in _shown(type(value))}
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    return value


def history_event(event: CaseEvent, position: int, chain_hash: bytes | None) -> HistoryEvent:
    """One event as history shows it, masked (webhooks send the same)."""
    return HistoryEvent(
        type=type(event).__name__,
        version=event.originator_version,
        position=position,
        recorded_at=event.timestamp,
        actor=event.actor,
        contact_id=event.contact_id,
        payload=_masked(event),
        hash=chain_hash.hex() if chain_hash is not None else None,
    )


class VersionNotWrittenError(LookupError):
    """History was asked as of a version the case has not reached."""

    def __init__(self, asked: int, current: int) -> None:
        super().__init__(f"the case is at version {current}; version {asked} was never written")
        self.current = current


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
    audited = await store.read_stream_audited(case_id, lte=version)
    if not audited or audited[0].stored.topic != CASE_OPENED_TOPIC:
        raise CaseNotFoundError(str(case_id))
    if version is not None and audited[-1].stored.originator_version < version:
        # Answering the whole case would pass it off as the asked version.
        raise VersionNotWrittenError(version, audited[-1].stored.originator_version)
    return await history_of(audited, mapper, case_id, zone, version=version, as_of=as_of, policy=policy, now=now)


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
    events: list[CaseEvent] = await in_turns(audited, lambda a: mapper.to_domain_event(a.stored), turn)
    if as_of is not None:
        events = list(takewhile(lambda e: e.timestamp <= as_of, events))
    file: CaseFile | None = None
    for start in range(0, len(events), turn):
        for event in events[start:start + turn]:  # the answer holds the view, not the timeline
            file = apply(file, event, zone, timeline=False, policy=policy)
        await asyncio.sleep(0)
    if file is not None:
        refresh_handoff(file.view)
        then = as_of or (events[-1].timestamp if version is not None else now or datetime.now(UTC))
        file.view.clocks = clocks_as_of(file.view.clocks, then)
    shown = await in_turns(list(zip(audited, events, strict=False)),
                           lambda pair: history_event(pair[1], pair[0].position, pair[0].hash), turn)
    return HistoryAnswer(case_id=case_id, events=shown, state=file.view if file is not None else None)


async def in_turns(items: Sequence[_Item], work: Callable[[_Item], _Done], turn: int = HISTORY_TURN) -> list[_Done]:
    """`work` on every item, handing the event loop back after each `turn` of them."""
    done: list[_Done] = []
    for start in range(0, len(items), turn):
        done.extend(work(item) for item in items[start:start + turn])
        await asyncio.sleep(0)
    return done


async def encoded_history(answer: HistoryAnswer, turn: int = HISTORY_TURN) -> bytes:
    """The same bytes as encoding `answer` in one go, encoded `turn` events per event-loop turn."""
    parts = [b'{"case_id":', _encode(answer.case_id), b',"events":[']
    for start in range(0, len(answer.events), turn):
        if start:
            parts.append(b",")
        parts.append(_encode(answer.events[start:start + turn])[1:-1])  # the items, without the list's brackets
        await asyncio.sleep(0)
    parts += [b'],"state":', _encode(answer.state), b"}"]
    return b"".join(parts)
