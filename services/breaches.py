"""Recording a merchant's data breach and reading the record back: its own event stream."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from uuid import UUID, uuid4

from casedesk.domain.breaches import BreachRecorded, record_breach
from casedesk.domain.values import DataExposed, FeeBearer
from casedesk.services.case_service import Idempotency, actor_of
from casedesk.services.store.event_mapper import CaseEventMapper
from casedesk.services.store.event_store import EventStore, IdempotencyRecord
from casedesk.services.tokens import Principal

Respond = Callable[[BreachRecorded, int], tuple[int, bytes]]


async def record(
    store: EventStore,
    mapper: CaseEventMapper,
    principal: Principal,
    *,
    merchant: str,
    window_start: datetime,
    window_end: datetime,
    data_exposed: tuple[DataExposed, ...],
    reissue_fee_bearer: FeeBearer,
    idempotency: Idempotency | None = None,
    respond: Respond | None = None,
) -> tuple[BreachRecorded, int]:
    """Record a new breach; with an Idempotency-Key its answer is kept in the same transaction."""
    actor = actor_of(principal, principal.departments[0] if principal.departments else "")
    [event] = record_breach(
        breach_id=uuid4(), actor=actor, at=datetime.now(UTC), merchant=merchant, window_start=window_start,
        window_end=window_end, data_exposed=data_exposed, reissue_fee_bearer=reissue_fee_bearer,
    )
    kept = None
    if idempotency is not None and respond is not None:
        answer = respond
        kept = IdempotencyRecord(idempotency.principal, idempotency.key, idempotency.request_hash,
                                 lambda positions: answer(event, positions[0]))
    [position] = await store.append([mapper.to_stored_event(event)], kept)
    return event, position


async def find_breach(store: EventStore, mapper: CaseEventMapper, breach_id: UUID) -> BreachRecorded | None:
    """The breach record, or None when the id names no breach (or names a case)."""
    first = await store.read_stream(breach_id, limit=1)
    if not first:
        return None
    event = mapper.to_domain_event(first[0])
    return event if isinstance(event, BreachRecorded) else None
