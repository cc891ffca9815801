"""Flagging a merchant descriptor: the application service over its own event stream."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import NamedTuple

from casedesk.domain.merchants import MerchantFlagged, flag_merchant, merchant_stream
from casedesk.services.case_service import MAX_ATTEMPTS, actor_of
from casedesk.services.store.event_mapper import CaseEventMapper
from casedesk.services.store.event_store import EventStore, Idempotency, StreamConflictError
from casedesk.services.tokens import Principal


class MerchantFlag(NamedTuple):
    """A merchant flagged and the position of the flag's event in the log."""

    event: MerchantFlagged
    position: int


def _flagged(event: MerchantFlagged, positions: list[int]) -> MerchantFlag:
    return MerchantFlag(event, positions[-1])


class MerchantFlags:
    """Flags merchant descriptors, each merchant its own stream."""

    def __init__(self, store: EventStore, mapper: CaseEventMapper) -> None:
        self._store, self._mapper = store, mapper

    async def flag(self, principal: Principal, merchant: str, reason: str, *,
                   idempotency: Idempotency | None = None,
                   answer: Callable[[MerchantFlag], tuple[int, bytes]] | None = None) -> MerchantFlag:
        """Record the flag. Retried if two supervisors race. With an Idempotency-Key,
        `answer`'s answer is kept with the event, as for a case command."""
        return await flag(self._store, self._mapper, principal, merchant, reason, idempotency=idempotency,
                          answer=answer)


async def flag(store: EventStore, mapper: CaseEventMapper, principal: Principal, merchant: str,
               reason: str, *, idempotency: Idempotency | None = None,
               answer: Callable[[MerchantFlag], tuple[int, bytes]] | None = None) -> MerchantFlag:
    """Record the flag on `store` (see MerchantFlags.flag)."""
    actor = actor_of(principal, principal.departments[0] if principal.departments else "")
    for attempt in range(MAX_ATTEMPTS):
        last = await store.read_stream(merchant_stream(merchant), desc=True, limit=1)
        [event] = flag_merchant(last[0].originator_version if last else 0, actor=actor, at=datetime.now(UTC),
                                merchant=merchant, reason=reason)
        try:
            return await store.append_once([mapper.to_stored_event(event)], partial(_flagged, event),
                                     idempotency, answer)
        except StreamConflictError:
            if attempt == MAX_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")
