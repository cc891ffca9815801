"""Appending a command's events under its Idempotency-Key: the one path cases, breaches,
merchant flags and claims take.

The application service says what the append did (`outcome`, from the positions
the events got); the HTTP layer says how that outcome is answered (`answer`).
With a key, the answer is kept in the transaction that writes the events, so a
repeat of the request gets exactly the first answer and nothing is written twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from eventsourcing.persistence import StoredEvent

from casedesk.services.store.event_store import EventStore, IdempotencyRecord

Done = TypeVar("Done")


@dataclass(frozen=True, slots=True)
class Idempotency:
    """The caller's Idempotency-Key (kept as a keyed digest) and a digest of what it was sent with."""

    principal: str
    key: str
    request_hash: bytes


# How a command's outcome is answered: (HTTP status, body), kept under the key.
Answer = Callable[[Done], tuple[int, bytes]]


async def append_once(
    store: EventStore,
    events: Sequence[StoredEvent],
    outcome: Callable[[list[int]], Done],
    idempotency: Idempotency | None = None,
    answer: Callable[[Done], tuple[int, bytes]] | None = None,
) -> Done:
    """Append `events` and return `outcome` of their positions; with an Idempotency-Key and an
    `answer`, the answer to that outcome is kept in the append's own transaction."""
    record = None
    if idempotency is not None and answer is not None:
        keep = answer

        def kept(positions: list[int]) -> tuple[int, bytes]:
            return keep(outcome(positions))

        record = IdempotencyRecord(idempotency.principal, idempotency.key, idempotency.request_hash, kept)
    return outcome(await store.append(events, record))
