"""A large event log written fast: COPY of stamped-out case streams, not the API.

A few hundred template cases are lived through by the domain's own decision
functions (bench_replay.mixed_case: calls, identity checks, transaction
reviews, disputes, suspensions and reissues, payment stops, notes, callbacks,
escalations, claims, releases, resolutions) and encoded once by the store's
CaseEventMapper. Each case of the log is a prefix of one template (so some are
resolved, most still being worked) with every UUID in it (case, contacts,
notes, disputes, callbacks) replaced by a fresh one, byte for byte in the
encoded JSON, so every row decodes to the event the template's decision made.

Rows go in as the store writes them: `case_events` with notification ids in
log order (OPEN_AT_ONCE cases worked at a time, their events taken in turns, so
each case spreads over the log), the identity sequence moved past them, and
`case_event_hashes` holding each stream's hash chain (audit_chain.chain_hash),
so `casedesk audit verify` passes. Ten merchant flags are appended through the
event store first.
"""

from __future__ import annotations

import random
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import asyncpg

from casedesk.services.merchant_flags import flag
from casedesk.services.store.audit_chain import ZERO_HASH, chain_hash
from casedesk.services.store.event_mapper import CaseEventMapper
from casedesk.services.store.event_store import EventStore
from tests.bench.bench_replay import FLAGGED, SUPERVISOR, mixed_case

TEMPLATES = 400
OPEN_AT_ONCE = 1000  # cases being worked at the same time, as in bench_replay
MIN_EVENTS = 3  # every case at least: opened, identity checked, transactions reviewed
COPY_ROWS = 50_000  # rows per COPY statement
_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True, slots=True)
class Template:
    """One case's encoded events, cut at every UUID: (topic, literal pieces, UUID slots)."""

    events: list[tuple[str, list[bytes], list[int]]]
    uuids: int  # distinct UUIDs in the case; slot 0 is the case's own id


def templates(count: int, seed: int = 20250106) -> list[Template]:
    """`count` cases decided by the domain and encoded by the store's mapper."""
    rng = random.Random(seed)
    mapper = CaseEventMapper()
    made = []
    for n in range(count):
        events = [e for command in mixed_case(n, rng) for e in command]
        slots: dict[bytes, int] = {str(events[0].originator_id).encode(): 0}
        cut = []
        for event in events:
            stored = mapper.to_stored_event(event)
            pieces = _UUID.split(stored.state)
            found = _UUID.findall(stored.state)
            cut.append((stored.topic, pieces, [slots.setdefault(u, len(slots)) for u in found]))
        made.append(Template(cut, len(slots)))
    return made


@dataclass(slots=True)
class Written:
    events: int
    cases: int
    case_ids: list[uuid.UUID]
    seconds: float


def _lengths(cases: int, events: int, rng: random.Random, longest: int) -> list[int]:
    """Each case's event count, MIN_EVENTS..longest, summing to exactly `events`."""
    if not MIN_EVENTS * cases <= events <= longest * cases:
        raise ValueError(f"{events} events do not fit {cases} cases of {MIN_EVENTS}..{longest}")
    mean = events / cases
    lengths = [min(longest, max(MIN_EVENTS, round(rng.gauss(mean, 2.5)))) for _ in range(cases)]
    surplus = sum(lengths) - events
    while surplus:  # nudge random cases until the total is exact
        k = rng.randrange(cases)
        if surplus > 0 and lengths[k] > MIN_EVENTS:
            lengths[k] -= 1
            surplus -= 1
        elif surplus < 0 and lengths[k] < longest:
            lengths[k] += 1
            surplus += 1
    return lengths


def _rows(
    made: list[Template], lengths: list[int], first_id: int, rng: random.Random, case_ids: list[uuid.UUID]
) -> Iterator[tuple[tuple[object, ...], tuple[object, ...]]]:
    """(case_events row, case_event_hashes row) in notification order."""
    position = first_id
    for start in range(0, len(lengths), OPEN_AT_ONCE):
        window = []
        for n in range(start, min(start + OPEN_AT_ONCE, len(lengths))):
            template = made[rng.randrange(len(made))]
            while len(template.events) < lengths[n]:
                template = made[rng.randrange(len(made))]
            ids = [uuid.UUID(bytes=rng.randbytes(16), version=4) for _ in range(template.uuids)]
            case_ids.append(ids[0])
            window.append((template, ids, [str(u).encode() for u in ids], lengths[n]))
        previous = [ZERO_HASH] * len(window)
        for turn in range(max(w[3] for w in window)):
            for k, (template, ids, texts, length) in enumerate(window):
                if turn >= length:
                    continue
                topic, pieces, slots = template.events[turn]
                parts = [pieces[0]]
                for slot, piece in zip(slots, pieces[1:], strict=True):
                    parts += (texts[slot], piece)
                state = b"".join(parts)
                version = turn + 1
                previous[k] = chain_hash(previous[k], topic, state, version)
                yield (ids[0], version, topic, state, position), (ids[0], version, previous[k])
                position += 1


async def write_log(pool: asyncpg.Pool, cases: int, events: int, seed: int = 7) -> Written:
    """Ten merchant flags through the store, then `events` case events over `cases` cases by COPY."""
    started = time.perf_counter()
    store = EventStore(pool)
    mapper = CaseEventMapper()
    try:
        for merchant in FLAGGED:
            await flag(store, mapper, SUPERVISOR, merchant, "known fraud biller")
        first_id = (await store.max_notification_id() or 0) + 1
    finally:
        await store.close()
    made = templates(TEMPLATES)
    rng = random.Random(seed)
    lengths = _lengths(cases, events, rng, max(len(t.events) for t in made))
    case_ids: list[uuid.UUID] = []
    rows: list[tuple[object, ...]] = []
    hashes: list[tuple[object, ...]] = []
    async with pool.acquire() as conn:
        # What the store's append takes: no append may interleave with the COPY.
        async with conn.transaction():
            await conn.execute("LOCK TABLE case_events IN EXCLUSIVE MODE")
            for row, chained in _rows(made, lengths, first_id, rng, case_ids):
                rows.append(row)
                hashes.append(chained)
                if len(rows) == COPY_ROWS:
                    await _copy(conn, rows, hashes)
            if rows:
                await _copy(conn, rows, hashes)
            await conn.execute(
                "SELECT setval(pg_get_serial_sequence('case_events', 'notification_id'), $1)",
                first_id + events - 1)
        await conn.execute("ANALYZE case_events; ANALYZE case_event_hashes")
    return Written(events, cases, case_ids, time.perf_counter() - started)


async def _copy(conn: asyncpg.Connection, rows: list[tuple[object, ...]], hashes: list[tuple[object, ...]]) -> None:
    await conn.copy_records_to_table(
        "case_events", records=rows,
        columns=["originator_id", "originator_version", "topic", "state", "notification_id"])
    await conn.copy_records_to_table(
        "case_event_hashes", records=hashes, columns=["originator_id", "originator_version", "hash"])
    rows.clear()
    hashes.clear()
