"""The sealing epoch: personal data stored before customer keys existed is sealed, once, and recorded.

Events are never rewritten, but for this: personal strings written in the clear
before issue 21 would survive any erasure. `casedesk seal-stored` seals them
under their customers' keys in one transaction holding the append lock, and
records the rewrite as an epoch, so `audit verify` can prove nothing else
changed:

- for each rewritten event: its chain hash before and after, the SHA-256 of
  its state before (the whole-log audit seal is a chain of state digests, so
  heads exported before the epoch are checked against the log as it was), and
  the digest of its skeleton before (the event with each personal field
  replaced by a placeholder);
- the per-stream chains of the rewritten streams are recomputed, and the
  whole-log seal from the first rewritten position on; a new head is exported.

`audit verify` then checks, besides the chains and the seal: each rewritten
event's stored hash is the epoch's new hash, and its skeleton, recomputed
from the stored (sealed) event, is the one recorded before: only personal
fields changed, and only in the events named. Running it again finds nothing
left to seal and makes no epoch.

Derived copies are not rewritten: snapshots of the rewritten cases are
dropped (a cache), and the read models are rebuilt (`casedesk rebuild`).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
import msgspec
from eventsourcing.persistence import StoredEvent

from casedesk.domain import events as ev
from casedesk.domain.personal_fields import PERSONAL_FIELDS, with_personal
from casedesk.services.privacy.customer_keys import CustomerKeys, is_sealed, link_cases
from casedesk.services.store.audit_chain import rechain
from casedesk.services.store.audit_seal import Rewritten, reseal_from
from casedesk.services.store.event_mapper import CaseEventMapper, UndecodableEventError, topic_of
from casedesk.services.store.event_store import (
    EventStore,
    lock_for_rewrite,
    positions_of,
    rewrite_states,
    states_of,
    stored_hashes,
    streams_with_topics,
)
from casedesk.services.store.snapshots import drop_snapshots

PLACEHOLDER = "[personal]"
_encode = msgspec.json.Encoder().encode


def skeleton_digest(event: ev.CaseEvent) -> bytes:
    """The event with every personal string (clear or sealed) replaced by one placeholder, hashed."""
    return hashlib.sha256(topic_of(type(event)).encode() + _encode(with_personal(event, lambda _: PLACEHOLDER))
                          ).digest()


def _has_clear_text(event: ev.CaseEvent) -> bool:
    found: list[str] = []
    with_personal(event, lambda text: found.append(text) or text)  # type: ignore[func-returns-value]
    return any(not is_sealed(text) for text in found)


class EpochReport(msgspec.Struct, frozen=True, kw_only=True):
    epoch: int | None
    events: int
    streams: int


async def seal_stored(pool: asyncpg.Pool, keys: CustomerKeys, audit_key: bytes,
                      export_head: Any = None) -> EpochReport:
    """Seal every personal string still stored in the clear; record the epoch (None when nothing was left).

    `export_head(position, seal)`: appends the new head to the heads file.
    """
    mapper = CaseEventMapper()
    store = EventStore(pool)
    topics = [topic_of(t) for t in PERSONAL_FIELDS]
    rewritten: list[tuple[UUID, int, bytes, bytes, bytes]] = []  # stream, version, new state, old digest, skeleton
    async with pool.acquire() as conn, conn.transaction():
        await lock_for_rewrite(conn)
        streams = await streams_with_topics(conn, topics)
        customers: list[str] = []
        touched: list[UUID] = []
        for stream in streams:
            stored = await store.read_stream(stream)
            events = [mapper.to_domain_event(s) for s in stored]
            if not events or not isinstance(events[0], ev.CaseOpened):
                continue
            customer_id = events[0].customer.customer_id
            customers.append(customer_id)
            touched.append(stream)
            clear = [(s, e) for s, e in zip(stored, events, strict=True)
                     if isinstance(e, ev.CaseEvent) and _has_clear_text(e)]
            if not clear:
                continue
            sealed = await keys.seal(customer_id, [e for _, e in clear])
            for (old, event), new in zip(clear, sealed, strict=True):
                state = mapper.to_stored_event(new).state
                rewritten.append((stream, event.originator_version, state,
                                  hashlib.sha256(old.state).digest(), skeleton_digest(event)))
        await link_cases(conn, customers, touched)
        if not rewritten:
            return EpochReport(epoch=None, events=0, streams=0)
        await rewrite_states(conn, [(s, v, state) for s, v, state, _, _ in rewritten])
        hashes: dict[tuple[UUID, int], tuple[bytes, bytes]] = {}
        for stream in sorted({r[0] for r in rewritten}):
            hashes.update({(stream, v): h for v, h in (await rechain(conn, stream)).items()})
        positions = await positions_of(conn, [(s, v) for s, v, *_ in rewritten])
        at = datetime.now(UTC)
        epoch: int = await conn.fetchval(
            "INSERT INTO sealing_epochs (epoch, sealed_at, events, streams)"
            " SELECT coalesce(max(epoch), 0) + 1, $1, $2, $3 FROM sealing_epochs RETURNING epoch",
            at, len(rewritten), len({r[0] for r in rewritten}))
        await conn.executemany(
            "INSERT INTO sealing_epoch_events (epoch, originator_id, originator_version, position, old_hash,"
            " new_hash, old_state_digest, skeleton) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            [(epoch, s, v, positions[(s, v)], *hashes[(s, v)], old_digest, skeleton)
             for s, v, _, old_digest, skeleton in rewritten])
        await drop_snapshots(conn, sorted({r[0] for r in rewritten}))
        head = await reseal_from(conn, audit_key, min(positions.values()))
    if head is not None and export_head is not None:
        export_head(*head)
    return EpochReport(epoch=epoch, events=len(rewritten), streams=len({r[0] for r in rewritten}))


async def rewritten_positions(conn: asyncpg.Connection) -> dict[int, Rewritten]:
    """What `audit verify` needs of the epochs for the whole-log seal: position -> (epoch time, old digest)."""
    rows = await conn.fetch(
        "SELECT r.position, e.sealed_at, r.old_state_digest FROM sealing_epoch_events r"
        " JOIN sealing_epochs e USING (epoch)")
    return {r[0]: Rewritten(at=r[1], old_state_digest=bytes(r[2])) for r in rows}


class EpochCheck(msgspec.Struct, frozen=True, kw_only=True):
    epochs: int
    events: int
    problem: str | None = None


async def check_epochs(conn: asyncpg.Connection) -> EpochCheck:
    """Each rewritten event still has the epoch's new hash, and the skeleton recorded before the rewrite."""
    epochs = await conn.fetchval("SELECT count(*) FROM sealing_epochs")
    rows = await conn.fetch(
        "SELECT epoch, originator_id, originator_version, new_hash, skeleton FROM sealing_epoch_events"
        " ORDER BY epoch, originator_id, originator_version")
    if not rows:
        return EpochCheck(epochs=epochs, events=0)
    keys = [(r[1], r[2]) for r in rows]
    hashes = await stored_hashes(conn, keys)
    states = await states_of(conn, keys)
    mapper = CaseEventMapper()
    latest: dict[tuple[UUID, int], asyncpg.Record] = {(r[1], r[2]): r for r in rows}  # the last epoch's word
    for key, row in latest.items():
        where = f"case {key[0]} v{key[1]} (epoch {row[0]})"
        if key not in states:
            return EpochCheck(epochs=epochs, events=len(rows), problem=f"{where} is gone")
        if hashes.get(key) != bytes(row[3]):
            return EpochCheck(epochs=epochs, events=len(rows),
                              problem=f"{where}: its hash is not the one the epoch wrote")
        topic, state = states[key]
        try:
            event = mapper.to_domain_event(StoredEvent(originator_id=key[0], originator_version=key[1],
                                                       topic=topic, state=state))
        except UndecodableEventError:
            return EpochCheck(epochs=epochs, events=len(rows), problem=f"{where} cannot be decoded")
        if skeleton_digest(event) != bytes(row[4]):
            return EpochCheck(epochs=epochs, events=len(rows),
                              problem=f"{where}: more than its personal fields changed")
    return EpochCheck(epochs=epochs, events=len(rows))
