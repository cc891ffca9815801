"""Flagging a merchant descriptor: the application service over its own event stream."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

from casedesk.domain.merchants import MerchantFlagged, flag_merchant, merchant_stream
from casedesk.services.case_service import Idempotency, actor_of
from casedesk.services.store.event_mapper import CaseEventMapper
from casedesk.services.store.event_store import EventStore, IdempotencyRecord, StreamConflictError
from casedesk.services.tokens import Principal


async def flag(store: EventStore, mapper: CaseEventMapper, principal: Principal, merchant: str,
               reason: str, *, idempotency: Idempotency | None = None,
               respond: Callable[[MerchantFlagged, int], tuple[int, bytes]] | None = None,
               ) -> tuple[MerchantFlagged, int]:
    """Record the flag; return the event and its position. Retried if two supervisors race.

    With an Idempotency-Key, `respond`'s answer is kept with the event, as for a case command.
    """
    actor = actor_of(principal, principal.departments[0] if principal.departments else "")
    for attempt in range(5):
        last = await store.read_stream(merchant_stream(merchant), desc=True, limit=1)
        [event] = flag_merchant(last[0].originator_version if last else 0, actor=actor, at=datetime.now(UTC),
                                merchant=merchant, reason=reason)
        record = None
        if idempotency is not None and respond is not None:
            record = IdempotencyRecord(idempotency.principal, idempotency.key, idempotency.request_hash,
                                       partial(_render, respond, event))
        try:
            [position] = await store.append([mapper.to_stored_event(event)], record)
            return event, position
        except StreamConflictError:
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


def _render(respond: Callable[[MerchantFlagged, int], tuple[int, bytes]], event: MerchantFlagged,
            positions: list[int]) -> tuple[int, bytes]:
    return respond(event, positions[-1])
