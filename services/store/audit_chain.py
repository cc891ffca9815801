"""The per-stream hash chain that makes tampering with stored events evident.

    hash_v = sha256(hash_{v-1} || topic (UTF-8) || state || str(v) (ASCII)),  hash_0 = 32 zero bytes

Hashes live in `case_event_hashes` (migration 006). The event store writes
them in SQL, in the very statement that inserts the events they cover (no
extra round trip under the append lock); `case_events` keeps the library's
layout untouched; its rows are read through the event store, which owns
both tables (services/store/event_store.py). The check here recomputes the chain independently, in
Python, and names the first version whose stored hash does not match, is
missing, or whose event is missing (a gap in the versions, or a hash whose
event is gone).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from uuid import UUID

import asyncpg
import msgspec

from casedesk.services.store.event_store import chain_rows, count_chained_streams, every_chain_row, store_hashes

ZERO_HASH = bytes(32)



def chain_hash(previous: bytes, topic: str | None, state: bytes | None, version: int) -> bytes:
    """One link of the chain."""
    digest = hashlib.sha256(previous)
    digest.update((topic or "").encode())
    digest.update(state or b"")
    digest.update(str(version).encode())
    return digest.digest()


class ChainCheck(msgspec.Struct, frozen=True, kw_only=True):
    """GET /v1/cases/{id}/verify: does the stream still chain, and where it first breaks."""

    ok: bool
    events_checked: int
    first_bad_version: int | None


class StreamCheck:
    """Feed one stream's rows in version order; `result()` says where the chain first broke."""

    def __init__(self) -> None:
        self._previous = ZERO_HASH
        self._expected: int | None = None
        self._checked = 0
        self._bad: int | None = None

    def add(self, version: int, topic: str | None, state: bytes | None, stored: bytes | None) -> None:
        if self._bad is not None:
            return
        expected = min(version, 1) if self._expected is None else self._expected
        if version != expected or topic is None:  # a version missing, or only its hash is left
            self._bad = expected
            return
        self._checked += 1
        self._previous = chain_hash(self._previous, topic, state, version)
        if stored is None or bytes(stored) != self._previous:
            self._bad = version
        self._expected = version + 1

    def result(self) -> ChainCheck:
        return ChainCheck(ok=self._bad is None, events_checked=self._checked, first_bad_version=self._bad)


async def check_stream(conn: asyncpg.Connection | asyncpg.Pool, stream: UUID) -> ChainCheck | None:
    """Recompute one stream's chain; None when the stream has neither events nor hashes."""
    rows = await chain_rows(conn, stream)
    if not rows:
        return None
    check = StreamCheck()
    for row in rows:
        check.add(row[1], row[2], row[3], row[4])
    return check.result()


async def check_every_stream(conn: asyncpg.Connection) -> AsyncIterator[tuple[UUID, ChainCheck]]:
    """Recompute every stream's chain in one pass over the tables (a cursor, in a transaction)."""
    current: UUID | None = None
    check = StreamCheck()
    async with conn.transaction(readonly=True):
        async for row in every_chain_row(conn):
            if row[0] != current:
                if current is not None:
                    yield current, check.result()
                current, check = row[0], StreamCheck()
            check.add(row[1], row[2], row[3], row[4])
        if current is not None:
            yield current, check.result()


async def verify_with_progress(conn: asyncpg.Connection, stream: UUID | None = None) -> tuple[int, int]:
    """`casedesk audit verify`: check one stream or all with a progress bar, printing each
    broken one and its first bad version; return (streams checked, streams broken)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    checked = broken = 0
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("streams"),
                  TimeRemainingColumn()) as progress:
        task = progress.add_task("verify hash chains", total=1 if stream else await count_chained_streams(conn))
        async for stream_id, check in _checks(conn, stream):
            checked += 1
            if not check.ok:
                broken += 1
                progress.console.print(f"case {stream_id}: first bad version {check.first_bad_version}",
                                       highlight=False, soft_wrap=True)
            progress.advance(task)
    return checked, broken


async def _checks(conn: asyncpg.Connection, stream: UUID | None) -> AsyncIterator[tuple[UUID, ChainCheck]]:
    if stream is None:
        async for found in check_every_stream(conn):
            yield found
    elif (check := await check_stream(conn, stream)) is not None:
        yield stream, check


async def rechain(conn: asyncpg.Connection, stream: UUID) -> dict[int, tuple[bytes, bytes]]:
    """Recompute one stream's chain over its stored rows and store it (the sealing epoch only,
    in its transaction); each version whose hash changed -> (old hash, new hash)."""
    rows = await chain_rows(conn, stream)
    previous, changed, updates = ZERO_HASH, {}, []
    for row in rows:
        previous = chain_hash(previous, row[2], row[3], row[1])
        old = bytes(row[4]) if row[4] is not None else b""
        if old != previous:
            changed[row[1]] = (old, previous)
            updates.append((stream, row[1], previous))
    await store_hashes(conn, updates)
    return changed
