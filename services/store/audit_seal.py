"""The keyed seal over the whole log, and the heads exported outside the database.

The per-stream chain (audit_chain.py) is plain SHA-256 in the same database:
whoever can write `case_events` can recompute it, and it cannot see a stream
deleted whole or two events swapped. The seal closes that:

    seal_n = HMAC-SHA256(key, seal_{n-1} || position || stream || version || sha256(topic) || sha256(state))

over every event in notification order (one chain for the whole log), with a
key that lives outside the database (`CASEDESK_AUDIT_KEY`, generated into the
data directory by default). A follower of the log (run by the projection
runner, but never rebuilt: a rebuild would re-seal whatever the log now says)
writes one seal per event beside its tracking position, and after every batch
appends a signed head `{position, seal, at, mac}` to an append-only file
outside the database (and the log). `casedesk audit verify` recomputes the
chain from the stored events and names the first position where an event was
edited, deleted, inserted or moved, and checks every exported head, which also
catches a deleted tail (events and their seals removed together).

What it cannot prove: events appended through casedesk by someone holding a
valid token, or anything done by someone who holds the audit key as well as
database access; and events newer than the last head can be removed together
with their seals without a trace (the window is one projection batch).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import asyncpg
import msgspec
import structlog
from eventsourcing.persistence import Notification

from casedesk.services.store.event_store import EVENT_ROWS
from casedesk.services.store.tracking import read_position

log = structlog.get_logger("casedesk.audit")

NAME = "audit_seals"
ZERO_SEAL = bytes(32)


def seal_link(key: bytes, previous: bytes, position: int, stream: UUID, version: int, topic: str,
              state: bytes) -> bytes:
    """One link of the whole-log chain."""
    return seal_link_of_digest(key, previous, position, stream, version, topic, hashlib.sha256(state).digest())


def seal_link_of_digest(key: bytes, previous: bytes, position: int, stream: UUID, version: int, topic: str,
                        state_digest: bytes) -> bytes:
    """One link, from the SHA-256 of the state (what a sealing epoch kept of a rewritten event's old state)."""
    mac = hmac.new(key, previous, hashlib.sha256)
    mac.update(position.to_bytes(8, "big"))
    mac.update(stream.bytes)
    mac.update(version.to_bytes(8, "big", signed=True))
    mac.update(hashlib.sha256(topic.encode()).digest())
    mac.update(state_digest)
    return mac.digest()


class Rewritten(msgspec.Struct, frozen=True, kw_only=True):
    """An event a sealing epoch rewrote: when, and the SHA-256 of the state it had before."""

    at: datetime
    old_state_digest: bytes


class Head(msgspec.Struct, frozen=True, kw_only=True):
    """The seal of the log up to `position`, as exported outside the database."""

    position: int
    seal: str
    at: datetime
    mac: str


def _head_mac(key: bytes, position: int, seal: str) -> str:
    return hmac.new(key, f"head|{position}|{seal}".encode(), hashlib.sha256).hexdigest()


class HeadsFile:
    """Append-only JSON lines of signed heads (one per sealed batch)."""

    def __init__(self, path: Path, key: bytes) -> None:
        self.path, self._key = path, key

    def append(self, position: int, seal: bytes) -> None:
        hexed = seal.hex()
        head = Head(position=position, seal=hexed, at=datetime.now(UTC), mac=_head_mac(self._key, position, hexed))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as out:
            out.write(msgspec.json.encode(head) + b"\n")
        log.info("audit_head", position=position, seal=hexed)

    def read(self) -> tuple[list[Head], list[int]]:
        """(heads whose mac holds, line numbers of those that do not parse or verify)."""
        if not self.path.exists():
            return [], []
        heads, bad = [], []
        for number, line in enumerate(self.path.read_bytes().splitlines(), 1):
            try:
                head = msgspec.json.decode(line, type=Head)
            except msgspec.DecodeError:
                bad.append(number)
                continue
            if hmac.compare_digest(head.mac, _head_mac(self._key, head.position, head.seal)):
                heads.append(head)
            else:
                bad.append(number)
        return heads, bad


class AuditSeal:
    """The sealer: a follower of the stored events (not decoded) in notification order."""

    name = NAME
    tables = ("audit_seals",)
    reads_stored_events = True

    def __init__(self, key: bytes, heads: HeadsFile | None) -> None:
        self._key, self._heads = key, heads
        # The last seal this sealer wrote (position, seal): the next batch links to it without reading
        # it first. A batch that rolled back after writing it, or another process sealing meanwhile,
        # leaves it wrong; the insert checks it against the table and writes nothing then.
        self._last: tuple[int, bytes] | None = None

    async def apply(self, conn: asyncpg.Connection, events: Sequence[Notification]) -> None:  # type: ignore[override]
        if self._last is None or not await self._seal(conn, events, *self._last):
            last = await conn.fetchrow(
                "SELECT notification_id, seal FROM audit_seals ORDER BY notification_id DESC LIMIT 1")
            if not await self._seal(conn, events, *((last[0], bytes(last[1])) if last else (0, ZERO_SEAL))):
                raise RuntimeError("audit seals changed while the sealer held its lock")

    async def _seal(self, conn: asyncpg.Connection, events: Sequence[Notification], after: int,
                    seal: bytes) -> bool:
        """Seal `events` after the seal `seal` at position `after` (0 and ZERO_SEAL: the log's start), in
        one statement, if that is the last seal stored; False (nothing written) if it is not."""
        rows = []
        position, previous = after, seal
        for n in events:
            sealed = seal_link(self._key, previous, n.id, n.originator_id, n.originator_version, n.topic, n.state)
            rows.append((n.id, n.originator_id, n.originator_version, position, sealed))
            position, previous = n.id, sealed
        status = await conn.execute(
            "INSERT INTO audit_seals (notification_id, originator_id, originator_version, previous_position, seal)"
            " SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::bigint[], $4::bigint[], $5::bytea[])"
            # The last seal stored, found as the first read found it (the key's index, backwards, one row):
            # "no seal after $6" as NOT EXISTS (id > $6) was a generic plan scanning the whole table,
            # 2 ms a batch in `python -m tests.bench claims`.
            " WHERE coalesce((SELECT notification_id = $6 AND seal = $7 FROM audit_seals"
            " ORDER BY notification_id DESC LIMIT 1), $6 = 0)",
            *(list(column) for column in zip(*rows, strict=True)), after, seal)
        if status != f"INSERT 0 {len(rows)}":
            return False
        self._last = (position, previous)
        # Written before the batch commits: if it rolls back, the batch is sealed again
        # from the same events and the same previous seal, so the head stays true.
        if self._heads is not None:
            self._heads.append(position, previous)
        return True


class SealCheck(msgspec.Struct, frozen=True, kw_only=True):
    """What `audit verify` found in the whole-log seal."""

    ok: bool
    events_checked: int
    sealed_up_to: int
    heads_checked: int
    problem: str | None = None


_LOG_AND_SEALS = (
    "SELECT notification_id, e.originator_id, e.originator_version, e.topic, e.state,"
    " s.originator_id, s.originator_version, s.previous_position, s.seal"
    f" FROM ({EVENT_ROWS}) e FULL JOIN audit_seals s USING (notification_id) ORDER BY notification_id"
)


async def _rows(conn: asyncpg.Connection) -> AsyncIterator[asyncpg.Record]:
    async with conn.transaction(readonly=True, isolation="repeatable_read"):
        async for row in conn.cursor(_LOG_AND_SEALS, prefetch=2000):
            yield row


async def check_seal(conn: asyncpg.Connection, key: bytes, heads: HeadsFile,
                     rewritten: dict[int, Rewritten] | None = None) -> SealCheck:
    """Recompute the whole-log chain; name the first position that breaks it or a head.

    `rewritten` (position -> what a sealing epoch kept) lets a head exported
    before an epoch be checked against the log as it was then: the chain is
    recomputed once more per epoch with those events' old state digests, so
    every other event is proven byte for byte what the old head sealed.
    """
    rewritten = rewritten or {}
    epochs = sorted({r.at for r in rewritten.values()})
    # As the log was before epoch k: the events of epochs k.. with their old digests.
    before: list[bytes] = [ZERO_SEAL] * len(epochs)
    recomputed_before: list[dict[int, bytes]] = [{} for _ in epochs]
    sealed_up_to = await read_position(conn, NAME) or 0
    exported, bad_lines = heads.read()
    wanted = {h.position: h for h in exported}
    recomputed: dict[int, bytes] = {}
    previous, last_position, checked, problem = ZERO_SEAL, 0, 0, None
    if bad_lines:
        problem = f"exported heads file {heads.path}: line {bad_lines[0]} is not a head signed with the audit key"
    async for row in _rows(conn):
        if problem is not None:
            break
        position, stream, version, topic, state, sealed_stream, sealed_version, sealed_after, seal = row
        if topic is None:
            problem = f"position {position} (case {sealed_stream} v{sealed_version}) was sealed and is gone"
            break
        if seal is not None and sealed_after > last_position:  # its event and seal both deleted
            problem = f"position {sealed_after} was sealed and is gone (with its seal)"
            break
        last_position = position
        digest = hashlib.sha256(bytes(state)).digest()
        previous = seal_link_of_digest(key, previous, position, stream, version, topic, digest)
        old = rewritten.get(position)
        for k, epoch_at in enumerate(epochs):
            kept = old.old_state_digest if old is not None and old.at >= epoch_at else digest
            before[k] = seal_link_of_digest(key, before[k], position, stream, version, topic, kept)
            if position in wanted:
                recomputed_before[k][position] = before[k]
        checked += 1
        if position in wanted:
            recomputed[position] = previous
        if seal is None:
            if position <= sealed_up_to:
                problem = f"position {position} (case {stream} v{version}) was written into the sealed log"
            continue
        if bytes(seal) != previous:
            problem = (f"position {position} (case {stream} v{version}) is not the event sealed there"
                       f" (case {sealed_stream} v{sealed_version}): edited or moved")
    for head in sorted(exported, key=lambda h: h.position):
        if problem is not None:
            break
        # A head exported before an epoch sealed the log as it was then.
        era = next((k for k, epoch_at in enumerate(epochs) if head.at < epoch_at), None)
        chain = recomputed if era is None else recomputed_before[era]
        if head.position not in chain:
            problem = f"head exported at {head.at.isoformat()} seals position {head.position}, which is gone"
        elif chain[head.position].hex() != head.seal:
            problem = f"the log up to position {head.position} differs from the head exported at {head.at.isoformat()}"
    return SealCheck(ok=problem is None, events_checked=checked, sealed_up_to=sealed_up_to,
                     heads_checked=len(exported), problem=problem)


def key_bytes(secret: str) -> bytes:
    """The HMAC key from the configured secret (any string: a generated one, or an operator's)."""
    return hashlib.sha256(b"casedesk-audit-seal|" + secret.encode()).digest()


async def reseal_from(conn: asyncpg.Connection, key: bytes, position: int) -> tuple[int, bytes] | None:
    """Recompute the stored seals from `position` on (a sealing epoch's rewrite, in its transaction,
    with the append lock held); the last (position, seal), to export as a head."""
    await conn.execute("LOCK TABLE audit_seals IN EXCLUSIVE MODE")
    last = await conn.fetchrow(
        "SELECT notification_id, seal FROM audit_seals WHERE notification_id < $1"
        " ORDER BY notification_id DESC LIMIT 1", position)
    previous = bytes(last[1]) if last else ZERO_SEAL
    rows = await conn.fetch(
        "SELECT s.notification_id, e.originator_id, e.originator_version, e.topic, e.state FROM audit_seals s"
        f" JOIN ({EVENT_ROWS}) e USING (notification_id) WHERE s.notification_id >= $1 ORDER BY 1", position)
    updates = []
    for row in rows:
        previous = seal_link(key, previous, row[0], row[1], row[2], row[3], bytes(row[4]))
        updates.append((row[0], previous))
    await conn.executemany("UPDATE audit_seals SET seal = $2 WHERE notification_id = $1", updates)
    return (updates[-1][0], updates[-1][1]) if updates else None
