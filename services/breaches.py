"""Merchant data breaches: recording one (its own event stream), reading it back, and taking in
its list of affected cards. The application service the breach routes call."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import NamedTuple
from uuid import UUID, uuid4

from casedesk.domain.breaches import BreachRecorded, record_breach
from casedesk.domain.values import Actor, DataExposed, FeeBearer
from casedesk.services.breach_intake import BreachIntake
from casedesk.services.case_service import actor_of
from casedesk.services.personal_data import PersonalData
from casedesk.services.privacy.customer_keys import CustomerKeys
from casedesk.services.store.event_mapper import CaseEventMapper
from casedesk.services.store.event_store import EventStore, Idempotency
from casedesk.services.tokens import Principal


class BreachRecord(NamedTuple):
    """A recorded breach and the position of its event in the log."""

    event: BreachRecorded
    position: int


def _recorded(event: BreachRecorded, positions: list[int]) -> BreachRecord:
    return BreachRecord(event, positions[0])


class Breaches:
    """Records breaches, finds them, and starts the intake of their affected cards."""

    def __init__(self, store: EventStore, mapper: CaseEventMapper, personal_data: PersonalData,
                 keys: CustomerKeys | None = None, *, share: float = 1.0) -> None:
        self._store, self._mapper, self._personal, self._keys = store, mapper, personal_data, keys
        self._share = share  # of the time a list's intake may take (CASEDESK_BULK_SHARE)

    async def record(
        self,
        principal: Principal,
        *,
        merchant: str,
        window_start: datetime,
        window_end: datetime,
        data_exposed: tuple[DataExposed, ...],
        reissue_fee_bearer: FeeBearer,
        idempotency: Idempotency | None = None,
        answer: Callable[[BreachRecord], tuple[int, bytes]] | None = None,
    ) -> BreachRecord:
        """Record a new breach; with an Idempotency-Key its answer is kept in the same transaction."""
        actor = actor_of(principal, principal.departments[0] if principal.departments else "")
        [event] = record_breach(
            breach_id=uuid4(), actor=actor, at=datetime.now(UTC), merchant=merchant, window_start=window_start,
            window_end=window_end, data_exposed=data_exposed, reissue_fee_bearer=reissue_fee_bearer,
        )
        return await self._store.append_once([self._mapper.to_stored_event(event)], partial(_recorded, event),
                                 idempotency, answer)

    async def find(self, breach_id: UUID) -> BreachRecorded | None:
        """The breach record, or None when the id names no breach (or names a case)."""
        return await find_breach(self._store, self._mapper, breach_id)

    def intake(self, breach: BreachRecorded, principal: Principal) -> BreachIntake:
        """The intake of `breach`'s affected cards, each case opened in the principal's name."""
        actor: Actor = actor_of(principal, principal.departments[0] if principal.departments else "")
        return BreachIntake(self._store, self._mapper, self._personal, breach, actor, self._keys, share=self._share)


async def find_breach(store: EventStore, mapper: CaseEventMapper, breach_id: UUID) -> BreachRecorded | None:
    """The breach record, or None when the id names no breach (or names a case)."""
    first = await store.read_stream(breach_id, limit=1)
    if not first:
        return None
    event = mapper.to_domain_event(first[0])
    return event if isinstance(event, BreachRecorded) else None
