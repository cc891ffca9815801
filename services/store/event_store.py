"""The event store: casedesk's case streams in PostgreSQL, through asyncpg.

Rows keep the eventsourcing library's layout (`case_events`: originator_id,
originator_version, topic, state, notification_id), so the library's recorders
read what casedesk writes and the other way round.

Ordering guarantee. A projection tails the log by notification id; if a
transaction that drew a lower id committed after one that drew a higher id, the
projection would already have passed it and never see it. Like the library,
every append takes `LOCK TABLE case_events IN EXCLUSIVE MODE` (readers are not
blocked), so ids are drawn and committed one transaction at a time. What makes
it fast is that casedesk does not pay that serialisation per command: the
`AppendWriter` gathers the appends of all concurrent requests into one
transaction (group commit), checks each command's optimistic-concurrency
expectation separately, and answers each caller with its own outcome.

One round trip. The lock, the insert, the hash chains and the NOTIFY are one
call of the casedesk_append function (migrations/009_append_function.sql);
outside a transaction block that call is its own transaction, so a batch
without Idempotency-Keys costs one round trip, the lock held only while
PostgreSQL works. With keys it runs in a transaction that stores their answers.

Tamper evidence. The statement that inserts a batch's rows also extends each
written stream's hash chain in `case_event_hashes` (see audit_chain.py), so the
hashes commit or roll back with the rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar
from uuid import UUID

import asyncpg
from eventsourcing.persistence import IntegrityError, Notification, StoredEvent

from casedesk.services.store.idempotency_keys import keep_answers
from casedesk.services.store.tracking import record_position
from casedesk.services.turn_taking import give_way

Done = TypeVar("Done")  # what an append did, as its application service says
# The log's rows, for the seals to join (services/store/audit_seal.py): the log's SQL stays here.
EVENT_ROWS = "SELECT notification_id, originator_id, originator_version, topic, state FROM case_events"
CHANNEL = "case_events"  # what casedesk_append (migration 009) notifies on every append
MAX_BATCH_ITEMS = 512
AUDITED_PER_TURN = 250  # rows of an audited read turned into events per event-loop turn


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """A POST's Idempotency-Key, stored with the events the POST wrote.

    `render` turns the notification ids the events got into the (status, body)
    the first request answered, so a repeat gets exactly that answer.
    """

    principal: str
    key: str
    request_hash: bytes
    render: Callable[[list[int]], tuple[int, bytes]]


@dataclass(frozen=True, slots=True)
class Idempotency:
    """The caller's Idempotency-Key (kept as a keyed digest) and a digest of what it was sent with."""

    principal: str
    key: str
    request_hash: bytes


class StreamConflictError(IntegrityError):
    """Another command already wrote one of these versions of the stream."""


class IdempotencyRaceError(IntegrityError):
    """A concurrent request with the same Idempotency-Key won."""


@dataclass(slots=True)
class _Append:
    events: Sequence[StoredEvent]
    idempotency: IdempotencyRecord | None
    done: asyncio.Future[list[int]] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class _RetryWithout(Exception):
    """Rolled back because some appends half-applied; retry the clean ones.

    Carries each failed append with its error, told to its caller only once the
    retried batch has committed: a caller that lost an Idempotency-Key to a twin
    in the same batch then finds the twin's answer stored, instead of a key
    still "in use".
    """

    def __init__(self, failed: list[tuple[_Append, Exception]]) -> None:
        super().__init__(f"{len(failed)} append(s) failed")
        self.failed = failed


class AppendWriter:
    """Group commit: one writer task turns queued appends into batch transactions."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._queue: list[_Append] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def append(
        self, events: Sequence[StoredEvent], idempotency: IdempotencyRecord | None = None
    ) -> list[int]:
        item = _Append(events, idempotency)
        self._queue.append(item)
        self._wakeup.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="casedesk-append-writer")
        return await item.done

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            batch, self._queue = self._queue[:MAX_BATCH_ITEMS], self._queue[MAX_BATCH_ITEMS:]
            try:
                await self._write(batch)
            except Exception as error:  # the database failed the whole batch
                for item in batch:
                    if not item.done.done():
                        item.done.set_exception(error)

    async def _write(self, batch: list[_Append]) -> None:
        pending = [i for i in batch if not i.done.cancelled()]
        failed: list[tuple[_Append, Exception]] = []
        try:
            async with self._pool.acquire() as conn:
                while pending:
                    try:
                        results = await _write_batch(conn, pending)
                    except _RetryWithout as retry:
                        failed += retry.failed
                        pending = [i for i in pending if all(i is not f for f, _ in retry.failed)]
                        continue
                    failed += [(i, o) for i, o in zip(pending, results, strict=True) if isinstance(o, Exception)]
                    for item, outcome in zip(pending, results, strict=True):
                        if not isinstance(outcome, Exception) and not item.done.done():
                            item.done.set_result(outcome)
                    return
        finally:
            for item, error in failed:
                if not item.done.done():
                    item.done.set_exception(error)


async def _write_batch(conn: asyncpg.Connection, items: list[_Append]) -> list[list[int] | Exception]:
    """One batch: a single call of casedesk_append (its own transaction, one round trip);
    with Idempotency-Keys, inside a transaction that stores their answers too."""
    if all(item.idempotency is None for item in items):
        return await _insert(conn, items)
    async with conn.transaction():
        results = await _insert(conn, items)
        await _keep_idempotency_keys(conn, items, results)
        return results


# migrations/009_append_function.sql: lock, insert, hash chains, NOTIFY, and the
# all-or-nothing check per command; SQLSTATE CD001 names the commands not written whole.
_APPEND = "SELECT * FROM casedesk_append($1::uuid[], $2::bigint[], $3::text[], $4::bytea[], $5::integer[])"
HALF_WRITTEN = "CD001"


def _not_written_whole(error: asyncpg.PostgresError) -> set[int] | None:
    """The numbers of the commands casedesk_append found not written whole; None for other errors."""
    if getattr(error, "sqlstate", None) != HALF_WRITTEN:
        return None
    return {int(n) for n in (getattr(error, "detail", None) or "").split(",") if n}


async def _append(conn: asyncpg.Connection, events: Sequence[StoredEvent], commands: list[int]) -> list[Any]:
    """One call of casedesk_append: the rows written, as (originator_id, version, notification_id)."""
    rows: list[Any] = await conn.fetch(
        _APPEND,
        [e.originator_id for e in events],
        [e.originator_version for e in events],
        [e.topic for e in events],
        [e.state for e in events],
        commands,
    )
    return rows


async def _insert(conn: asyncpg.Connection, items: list[_Append]) -> list[list[int] | Exception]:
    """Insert every item's rows; fail the ones that conflict, all or nothing each."""
    try:
        rows = await _append(conn, [e for item in items for e in item.events],
                             [n for n, item in enumerate(items) for _ in item.events])
    except asyncpg.PostgresError as error:
        numbers = _not_written_whole(error)
        if numbers is None:
            raise
        # Some rows of a failed command went in: the batch rolled back; redo it without them.
        raise _RetryWithout([(item, StreamConflictError(f"stream {item.events[0].originator_id} moved on"))
                             for n, item in enumerate(items) if n in numbers]) from None
    written = {(r[0], r[1]): r[2] for r in rows}
    results: list[list[int] | Exception] = []
    claimed: set[tuple[Any, int]] = set()
    for item in items:
        item_keys = [(_uuid(e.originator_id), e.originator_version) for e in item.events]
        # A key seen twice in one batch was written for its first claimant only.
        mine = {k for k in item_keys if k not in claimed and k in written}
        claimed.update(item_keys)
        if len(mine) != len(item_keys) or len(set(item_keys)) != len(item_keys):
            results.append(StreamConflictError(f"stream {item_keys[0][0]} moved on"))
        else:
            results.append([written[k] for k in item_keys])
    return results


async def _keep_idempotency_keys(
    conn: asyncpg.Connection,
    items: list[_Append],
    results: list[list[int] | Exception],
) -> None:
    """Store the answer of every successful command that carries a key.

    A command whose key a twin in the same batch took first wrote its events
    for nothing: the batch is redone without it (its caller then finds the
    twin's stored answer).
    """
    keyed = [
        (n, item.idempotency, *item.idempotency.render(ids))
        for n, (item, ids) in enumerate(zip(items, results, strict=True))
        if item.idempotency is not None and isinstance(ids, list)
    ]
    if not keyed:
        return
    kept = await keep_answers(
        conn,
        [k.principal for _, k, _, _ in keyed],
        [k.key for _, k, _, _ in keyed],
        [k.request_hash for _, k, _, _ in keyed],
        [status for _, _, status, _ in keyed],
        [body for _, _, _, body in keyed],
    )
    wrote_for_nothing = False
    for n, record, _, _ in keyed:
        if (record.principal, record.key) in kept:
            kept.discard((record.principal, record.key))  # a twin later in the batch lost
        else:
            results[n] = IdempotencyRaceError("the same Idempotency-Key is in use")
            wrote_for_nothing = wrote_for_nothing or bool(items[n].events)
    if wrote_for_nothing:
        raise _RetryWithout([(i, o) for i, o in zip(items, results, strict=True) if isinstance(o, Exception)])


def _uuid(value: UUID | str) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


def _stored(row: asyncpg.Record) -> StoredEvent:
    """A row whose first four columns are originator_id, originator_version, topic, state."""
    return StoredEvent(originator_id=row[0], originator_version=row[1], topic=row[2], state=bytes(row[3]))


class AuditedEvent(NamedTuple):
    """A stored event's row with its notification id and its stored chain hash (None if missing).

    A tuple of the row's columns, not a StoredEvent: an audit replay of a long case reads
    thousands, and most are answered from what was read lately without decoding (projections/timeline/history.py).
    """

    originator_id: UUID
    originator_version: int
    topic: str
    state: bytes
    position: int
    hash: bytes | None

    @property
    def stored(self) -> StoredEvent:
        return StoredEvent(originator_id=self.originator_id, originator_version=self.originator_version,
                           topic=self.topic, state=self.state)


class EventStore:
    """Appends to and reads from the case streams and the notification log."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.writer = AppendWriter(pool)

    async def append(
        self, events: Sequence[StoredEvent], idempotency: IdempotencyRecord | None = None
    ) -> list[int]:
        """Write one command's events atomically; return their notification ids.

        Raises StreamConflictError when another command already wrote one of
        these versions (the optimistic-concurrency check).
        """
        if not events and idempotency is None:
            return []
        return await self.writer.append(events, idempotency)

    async def append_once(
        self,
        events: Sequence[StoredEvent],
        outcome: Callable[[list[int]], Done],
        idempotency: Idempotency | None = None,
        answer: Callable[[Done], tuple[int, bytes]] | None = None,
    ) -> Done:
        """Append one command's `events` and return `outcome` of their positions: the one path cases,
        breaches, merchant flags and claims take.

        The application service says what the append did (`outcome`); its caller says how that
        is answered (`answer`). With an Idempotency-Key, the answer is kept in the append's own
        transaction, so a repeat of the request gets exactly the first answer and nothing is
        written twice.
        """
        record = None
        if idempotency is not None and answer is not None:
            keep = answer

            def kept(positions: list[int]) -> tuple[int, bytes]:
                return keep(outcome(positions))

            record = IdempotencyRecord(idempotency.principal, idempotency.key, idempotency.request_hash, kept)
        return outcome(await self.append(events, record))

    async def read_stream(
        self,
        originator_id: UUID,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> list[StoredEvent]:
        rows = await self.pool.fetch(
            "SELECT originator_id, originator_version, topic, state FROM case_events"
            " WHERE originator_id = $1 AND originator_version > $2 AND originator_version <= $3"
            f" ORDER BY originator_version {'DESC' if desc else 'ASC'} LIMIT $4",
            originator_id,
            -1 if gt is None else gt,
            2**62 if lte is None else lte,
            limit,
        )
        return [_stored(r) for r in rows]

    async def read_stream_audited(self, originator_id: UUID, *, lte: int | None = None) -> list[AuditedEvent]:
        """A stream in version order with notification ids and chain hashes (audit history)."""
        rows = await self.pool.fetch(
            "SELECT e.originator_id, e.originator_version, e.topic, e.state, e.notification_id, h.hash"
            " FROM case_events e LEFT JOIN case_event_hashes h USING (originator_id, originator_version)"
            " WHERE e.originator_id = $1 AND e.originator_version <= $2 ORDER BY e.originator_version",
            originator_id,
            2**62 if lte is None else lte,
        )
        audited: list[AuditedEvent] = []
        for start in range(0, len(rows), AUDITED_PER_TURN):  # a 5,000-event case takes ~6 ms: not in one turn
            if start:
                await give_way()
            audited += map(AuditedEvent._make, rows[start:start + AUDITED_PER_TURN])  # bytea arrives as bytes
        return audited

    async def read_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
        conn: asyncpg.Connection | None = None,
    ) -> list[Notification]:
        """The log after `start`; on `conn` when given (a reader's own connection, not one more from the pool)."""
        after = 0 if start is None else (start - 1 if inclusive_of_start else start)
        rows = await (conn or self.pool).fetch(
            f"SELECT {NOTIFICATION_COLUMNS}"
            " FROM case_events WHERE notification_id > $1 AND notification_id <= $2"
            " AND (cardinality($3::text[]) = 0 OR topic = ANY($3::text[]))"
            " ORDER BY notification_id LIMIT $4",
            after,
            2**62 if stop is None else stop,
            list(topics),
            limit,
        )
        return [notification_of(r) for r in rows]

    async def max_notification_id(self) -> int | None:
        value: int | None = await self.pool.fetchval("SELECT max(notification_id) FROM case_events")
        return value

    async def append_with_tracking(
        self, events: Sequence[StoredEvent], tracking_name: str, notification_id: int
    ) -> list[int]:
        """Write events and a reader's new position in one transaction.

        For process-style readers that turn what they read into new events;
        not batched, since the tracking row is that reader's own.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            await record_position(conn, tracking_name, notification_id)
            if not events:
                return []
            try:
                rows = await _append(conn, events, [0] * len(events))
            except asyncpg.PostgresError as error:
                if _not_written_whole(error) is None:
                    raise
                raise StreamConflictError(str(error)) from error
            if len(rows) != len(events):
                raise StreamConflictError(f"stream {events[0].originator_id} moved on")
            return [r[2] for r in rows]

    async def close(self) -> None:
        await self.writer.close()


# The log after a position, as a statement's part: a reader's look at the log in the statement that
# also reads where it stands (projections/runner.py). `after` and `limit` are SQL expressions.
NOTIFICATION_COLUMNS = "notification_id, originator_id, originator_version, topic, state"


def notifications_after_sql(after: str, limit: str) -> str:
    return (f"SELECT {NOTIFICATION_COLUMNS} FROM case_events WHERE notification_id > {after}"
            f" ORDER BY notification_id LIMIT {limit}")


def notification_of(row: asyncpg.Record, at: int = 0) -> Notification:
    """A log row read with NOTIFICATION_COLUMNS, its columns from `at` on."""
    return Notification(id=row[at], originator_id=row[at + 1], originator_version=row[at + 2], topic=row[at + 3],
                        state=bytes(row[at + 4]))



async def read_notifications_of_part(conn: asyncpg.Connection, after: int, upto: int, part: int, parts: int,
                                     limit: int, leave_out: Sequence[str] = ()) -> list[Notification]:
    """The log in (after, upto] of the cases whose id hashes to `part` of `parts`, in order.

    For a rebuild in parts: one case's events all fall in one part. `leave_out`
    names topics the caller folds on its own (merchant flags).
    """
    rows = await conn.fetch(
        f"SELECT {NOTIFICATION_COLUMNS} FROM case_events"
        " WHERE notification_id > $1 AND notification_id <= $2"
        " AND (hashtext(originator_id::text) & 2147483647) % $3 = $4 AND topic <> ALL($5::text[])"
        " ORDER BY notification_id LIMIT $6",
        after, upto, parts, part, list(leave_out), limit)
    return [notification_of(r) for r in rows]


# The log's head as a statement's part, read in the statement that uses it (a subscription's start).
LOG_HEAD_SQL = "(SELECT coalesce(max(notification_id), 0) FROM case_events)"


async def log_head(conn: asyncpg.Connection | asyncpg.Pool) -> int:
    """The position of the last event written (0 for an empty log)."""
    value: int = await conn.fetchval(f"SELECT {LOG_HEAD_SQL}")
    return value


async def count_events(conn: asyncpg.Connection | asyncpg.Pool, upto: int | None = None) -> int:
    """How many events the log holds (up to position `upto`)."""
    # Two statements, not one with "$1 IS NULL OR": a generic plan of that could not use the range.
    if upto is None:
        value: int = await conn.fetchval("SELECT count(*) FROM case_events")
    else:
        value = await conn.fetchval("SELECT count(*) FROM case_events WHERE notification_id <= $1", upto)
    return value


async def positions_of_topics(conn: asyncpg.Connection | asyncpg.Pool, topics: Sequence[str],
                              upto: int) -> list[int]:
    """The positions of the events of these topics up to `upto`, in log order."""
    return [r[0] for r in await conn.fetch(
        "SELECT notification_id FROM case_events WHERE topic = ANY($1::text[]) AND notification_id <= $2"
        " ORDER BY 1", list(topics), upto)]


async def streams_begun(conn: asyncpg.Connection | asyncpg.Pool, originator_ids: Sequence[UUID]) -> set[UUID]:
    """Which of these streams have a first event."""
    return {r[0] for r in await conn.fetch(
        "SELECT originator_id FROM case_events WHERE originator_id = ANY($1::uuid[]) AND originator_version = 1",
        list(originator_ids))}


async def events_after_versions(conn: asyncpg.Connection | asyncpg.Pool, versions: Mapping[UUID, int]
                                ) -> list[asyncpg.Record]:
    """Each stream's events after the version given for it (position, id, version, topic, state), in log order."""
    return await conn.fetch(
        "SELECT e.notification_id, e.originator_id, e.originator_version, e.topic, e.state"
        " FROM unnest($1::uuid[], $2::bigint[]) AS w(case_id, version)"
        " JOIN case_events e ON e.originator_id = w.case_id AND e.originator_version > w.version"
        " ORDER BY e.notification_id", list(versions), list(versions.values()))


async def audited_after(conn: asyncpg.Connection | asyncpg.Pool, position: int, limit: int) -> list[asyncpg.Record]:
    """The next `limit` events after `position` with their chain hashes (position, id, version, topic,
    state, hash: NULL for an event written before the chain), in log order."""
    return await conn.fetch(
        "SELECT e.notification_id, e.originator_id, e.originator_version, e.topic, e.state, h.hash"
        " FROM case_events e LEFT JOIN case_event_hashes h USING (originator_id, originator_version)"
        " WHERE e.notification_id > $1 ORDER BY e.notification_id LIMIT $2",
        position, limit)


# One round trip: the head of the log and, up to it, the next events of some topics (one row of
# NULLs after the head when none are there).
_NEXT_OF_TOPICS = (
    "WITH h AS (SELECT coalesce(max(notification_id), 0) AS head FROM case_events)"
    " SELECT h.head, e.notification_id, e.originator_id, e.originator_version, e.topic, e.state FROM h"
    " LEFT JOIN LATERAL (SELECT notification_id, originator_id, originator_version, topic, state FROM case_events"
    " WHERE notification_id > $1 AND notification_id <= h.head AND topic = ANY($2::text[])"
    " ORDER BY notification_id LIMIT $3) e ON true ORDER BY e.notification_id")


async def next_of_topics(conn: asyncpg.Connection, after: int, topics: Sequence[str], limit: int
                         ) -> tuple[int, list[asyncpg.Record]]:
    """The log's head and, up to it, the next `limit` events after `after` of these topics
    (position, id, version, topic, state): a follower's one query per wake."""
    rows = await conn.fetch(_NEXT_OF_TOPICS, after, list(topics), limit)
    return rows[0][0], [r for r in rows if r[1] is not None]


def stream_after_sql(stream: str, version: str) -> str:
    """A statement's part: the stream's events after a version (version, topic, state); `stream` and
    `version` are SQL expressions of the statement that uses it (a claim's one round trip)."""
    return (f"SELECT originator_version, topic, state FROM case_events"
            f" WHERE originator_id = {stream} AND originator_version > {version}")


async def stream_head(conn: asyncpg.Connection | asyncpg.Pool, originator_id: UUID) -> tuple[int, int] | None:
    """A stream's last version and that event's position, or None for a stream never written."""
    row = await conn.fetchrow(
        "SELECT originator_version, notification_id FROM case_events WHERE originator_id = $1"
        " ORDER BY originator_version DESC LIMIT 1", originator_id)
    return None if row is None else (row[0], row[1])


async def rewrite_states(conn: asyncpg.Connection, rows: Sequence[tuple[UUID, int, bytes]]) -> None:
    """The sealing epoch's rewrite (services/privacy/sealing_epoch.py), the only one there is:
    each (stream, version)'s state replaced, in the caller's transaction, which holds the append lock."""
    await conn.execute(
        "UPDATE case_events e SET state = r.state FROM unnest($1::uuid[], $2::bigint[], $3::bytea[])"
        " AS r(originator_id, originator_version, state)"
        " WHERE e.originator_id = r.originator_id AND e.originator_version = r.originator_version",
        [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])


async def lock_for_rewrite(conn: asyncpg.Connection) -> None:
    """No append while the epoch rewrites (the lock every append takes; readers go on)."""
    await conn.execute("LOCK TABLE case_events IN EXCLUSIVE MODE")


async def streams_with_topics(conn: asyncpg.Connection | asyncpg.Pool, topics: Sequence[str]) -> list[UUID]:
    """The streams holding an event of these topics."""
    return [r[0] for r in await conn.fetch(
        "SELECT DISTINCT originator_id FROM case_events WHERE topic = ANY($1::text[]) ORDER BY 1", list(topics))]


async def positions_of(conn: asyncpg.Connection, keys: Sequence[tuple[UUID, int]]) -> dict[tuple[UUID, int], int]:
    rows = await conn.fetch(
        "SELECT e.originator_id, e.originator_version, e.notification_id FROM case_events e"
        " JOIN unnest($1::uuid[], $2::bigint[]) AS k(i, v) ON e.originator_id = k.i AND e.originator_version = k.v",
        [k[0] for k in keys], [k[1] for k in keys])
    return {(r[0], r[1]): r[2] for r in rows}


async def states_of(conn: asyncpg.Connection,
                    keys: Sequence[tuple[UUID, int]]) -> dict[tuple[UUID, int], tuple[str, bytes]]:
    """(topic, state) of each named event."""
    rows = await conn.fetch(
        "SELECT e.originator_id, e.originator_version, e.topic, e.state FROM case_events e"
        " JOIN unnest($1::uuid[], $2::bigint[]) AS k(i, v) ON e.originator_id = k.i AND e.originator_version = k.v",
        [k[0] for k in keys], [k[1] for k in keys])
    return {(r[0], r[1]): (r[2], bytes(r[3])) for r in rows}


# --- the hash chain's rows (case_event_hashes, written by casedesk_append with the events; checked and
# rewritten by services/store/audit_chain.py, which holds the hashing) ---

# Events and hashes side by side; a FULL JOIN so a hash whose event was deleted shows too.
_CHAIN_ROWS = (
    "SELECT originator_id, originator_version, e.topic, e.state, h.hash"
    " FROM (SELECT originator_id, originator_version, topic, state FROM case_events {where}) e"
    " FULL JOIN (SELECT originator_id, originator_version, hash FROM case_event_hashes {where}) h"
    " USING (originator_id, originator_version)"
    " ORDER BY originator_id, originator_version"
)
_ONE_STREAM = _CHAIN_ROWS.format(where="WHERE originator_id = $1")
_EVERY_STREAM = _CHAIN_ROWS.format(where="")


async def chain_rows(conn: asyncpg.Connection | asyncpg.Pool, stream: UUID) -> list[asyncpg.Record]:
    """One stream's (id, version, topic, state, hash) rows, an event or a hash missing as NULLs."""
    return await conn.fetch(_ONE_STREAM, stream)


def every_chain_row(conn: asyncpg.Connection) -> Any:
    """Every stream's chain rows (as chain_rows), by stream and version: a cursor, in the caller's transaction."""
    return conn.cursor(_EVERY_STREAM, prefetch=2000)


async def count_chained_streams(conn: asyncpg.Connection | asyncpg.Pool) -> int:
    """Streams with an event or a hash."""
    count: int = await conn.fetchval(
        "SELECT count(*) FROM (SELECT originator_id FROM case_events"
        " UNION SELECT originator_id FROM case_event_hashes) s"
    )
    return count


async def store_hashes(conn: asyncpg.Connection, updates: Sequence[tuple[UUID, int, bytes]]) -> None:
    """Replace the hashes of these (stream, version)s (a sealing epoch's rechain, in its transaction)."""
    await conn.executemany(
        "UPDATE case_event_hashes SET hash = $3 WHERE originator_id = $1 AND originator_version = $2", updates)


async def stored_hashes(conn: asyncpg.Connection, keys: list[tuple[UUID, int]]) -> dict[tuple[UUID, int], bytes]:
    """The stored hash of each of these (stream, version)s that has one."""
    rows = await conn.fetch(
        "SELECT h.originator_id, h.originator_version, h.hash FROM case_event_hashes h"
        " JOIN unnest($1::uuid[], $2::bigint[]) AS k(i, v) ON h.originator_id = k.i AND h.originator_version = k.v",
        [k[0] for k in keys], [k[1] for k in keys])
    return {(r[0], r[1]): bytes(r[2]) for r in rows}

