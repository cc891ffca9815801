"""Flagging a merchant descriptor: the application service over its own event stream."""

from __future__ import annotations

from datetime import UTC, datetime

from casedesk.domain.merchants import MerchantFlagged, flag_merchant, merchant_stream
from casedesk.services.case_service import actor_of
from casedesk.services.event_mapper import CaseEventMapper
from casedesk.services.event_store import EventStore, StreamConflictError
from casedesk.services.tokens import Principal


async def flag(store: EventStore, mapper: CaseEventMapper, principal: Principal, merchant: str,
               reason: str) -> tuple[MerchantFlagged, int]:
    """Record the flag; return the event and its position. Retried if two supervisors race."""
    actor = actor_of(principal, principal.departments[0] if principal.departments else "")
    for attempt in range(5):
        last = await store.read_stream(merchant_stream(merchant), desc=True, limit=1)
        [event] = flag_merchant(last[0].originator_version if last else 0, actor=actor, at=datetime.now(UTC),
                                merchant=merchant, reason=reason)
        try:
            [position] = await store.append([mapper.to_stored_event(event)])
            return event, position
        except StreamConflictError:
            if attempt == 4:
                raise
    raise AssertionError("unreachable")
