"""The projection runner: read the notification log in order, apply, track, repeat.

For each projection one worker task:
- holds a PostgreSQL session advisory lock, so across any number of casedesk
  processes each projection runs once at a time (the lock is freed by
  PostgreSQL when its holder's connection dies, and a waiting process takes over);
- reads events after its tracking position, applies a batch to its tables and
  moves its position in the same transaction (exactly once; a crash at any
  point rolls the batch back and it is read again);
- sleeps until the store's NOTIFY (or a slow fallback timer) says there is more.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import asyncpg
import structlog
from eventsourcing.persistence import IntegrityError, Notification

from casedesk.domain.events import CaseEvent
from casedesk.projections.served_versions import served_version, served_version_held_sql, served_version_sql
from casedesk.services.store.database import ASYNCHRONOUS_COMMIT, keeps_session_state, sql_literal
from casedesk.services.store.event_mapper import CaseEventMapper
from casedesk.services.store.event_store import CHANNEL, EventStore, notification_of, notifications_after_sql
from casedesk.services.store.tracking import forget_position, move_position_sql, position_sql

log = structlog.get_logger("casedesk.projections")

BATCH = 500
# A rebuild (or a worker far behind on purpose) folds bigger batches: each case's
# file is encoded and written once per batch it appears in, so fewer, larger
# batches write each file fewer times.
REBUILD_BATCH = 20_000
READ_MODELS_CHANNEL = "read_models_moved"
FALLBACK_POLL_SECONDS = 1.0


# A batch in as few round trips as it can take: each is a wake-up of this process and of its
# PostgreSQL backend, either of which may wait for a core on a busy machine (in
# `python -m tests.bench claims` the worker's CPU was mostly round trips, a score per batch):
# - the look: where the projection stands, the version its tables hold and the log after it, one
#   statement (all that a wake-up with nothing new costs);
# - the start: BEGIN, no flush to wait for at commit (read tables and their position commit
#   together, so a crash that loses this batch loses its position too and the batch is redone), and
#   the served version held FOR SHARE and checked (a switch to a newer version waits for the batch
#   in hand; a batch begun just after a switch began stops before its fold), one message;
# - the projection's own statements;
# - the end: the position moved, the version checked again (the batch's statements may not change
#   it), a notification (delivered on commit, by which live dashboards in any process refresh) and
#   COMMIT, one message. A position already there (a replayed batch) or another version served fails
#   the statement through casedesk_refuse (migration 022): its COMMIT is never reached, the batch
#   rolls back.
# The start and the end are simple-protocol messages (several statements, no parameters), whose SQL is
# parsed and planned anew each time: a quarter of a millisecond of PostgreSQL's CPU per batch more than
# the four round trips they replace. So their statements are prepared once per session by name (SQL
# PREPARE) and the messages only EXECUTE them: both cheaper than the four round trips, on both sides.
# (The look's rows come in the inner query's order: its one outer row is joined to it as it is. An
# outer ORDER BY sorted a rebuild's 20,000 rows, states and all, on disk: ten times the plain scan.)
_LOOK = (f"SELECT p.after, p.served, n.* FROM (SELECT {position_sql('$1')} AS after,"
         f" {served_version_sql('$1')} AS served) p"
         f" LEFT JOIN LATERAL ({notifications_after_sql('p.after', '$2')}) n ON true")
REPLAYED, SUPERSEDED = "CD002", "CD003"


def _not_served(served: str, folds: str) -> str:
    """An SQL expression refusing the batch (SQLSTATE SUPERSEDED) when `served`, the served version of
    the projection named by $1, is another than `folds`, the version the worker folds (NULL: no check)."""
    return (f"CASE WHEN {served} <> {folds} THEN casedesk_refuse('{SUPERSEDED}', $1"
            f" || ': the tables hold version ' || {served} || ', this worker folds version ' || {folds}) END")


# (name, parameter types, statement) of the statements a batch's start and end EXECUTE.
_PREPARED = (
    ("casedesk_batch_begun", "text, integer",
     f"SELECT {ASYNCHRONOUS_COMMIT}, {_not_served(served_version_held_sql('$1'), '$2')}"),
    ("casedesk_batch_done", "text, bigint, integer",
     f"WITH moved AS ({move_position_sql('$1', '$2')})"
     f" SELECT coalesce((SELECT notification_id FROM moved),"
     f" casedesk_refuse('{REPLAYED}', $1 || ' is already at or past notification ' || $2)),"
     f" {_not_served(served_version_sql('$1'), '$3')}, pg_notify('{READ_MODELS_CHANNEL}', '')"),
)


def _batch_begun(name: str, folds: int | None) -> str:
    return f"BEGIN; EXECUTE casedesk_batch_begun({sql_literal(name)}, {_integer(folds)})"


def _batch_done(name: str, position: int, folds: int | None) -> str:
    return f"EXECUTE casedesk_batch_done({sql_literal(name)}, {_integer(position)}, {_integer(folds)}); COMMIT"


def _integer(value: int | None) -> str:
    return "NULL" if value is None else str(int(value))


async def _prepare_batch_statements(conn: asyncpg.Connection) -> None:
    """PREPARE the batch's start and end on this session (one that already has one keeps it)."""
    for name, types, statement in _PREPARED:
        with contextlib.suppress(asyncpg.DuplicatePreparedStatementError):
            await conn.execute(f"PREPARE {name} ({types}) AS {statement}")


# The planner's statistics of a projection's tables are taken again (ANALYZE) once the log has grown
# by ANALYZE_GROWTH of what it was at the last ANALYZE, and by at least ANALYZE_AFTER_EVENTS.
# Why not leave it to autovacuum: every connection caches its statements' generic plans, made from the
# statistics of when the statement first ran. After a burst (a breach list's 40,000 new cases, a
# morning's alerts) a plan made while a table was small (a sequential scan of queue_items to delete
# one batch's rows) stays until autovacuum's next round, up to a minute later; measured in
# `python -m tests.bench claims`, that one DELETE took 1.6 ms of PostgreSQL's CPU per batch on a
# 10,000-row queue, the largest single cost of a claim. ANALYZE sends every connection an
# invalidation, so their plans are made again from the new statistics.
ANALYZE_GROWTH = 0.2
ANALYZE_AFTER_EVENTS = 1_000
ANALYZE_LOCK_TIMEOUT_MS = 200
# A live worker looks at the log at most once per LIVE_BATCH_INTERVAL: a wake-up sooner after its last
# look waits out the rest, so that under a steady stream of commands (50 agents claiming) its batches
# gather several appends instead of one each. A batch costs a score of round trips whatever it holds:
# in `python -m tests.bench claims` at 100 batches a second that fixed cost was most of the worker's CPU
# and a good part of PostgreSQL's, on the two cores the claims themselves need. A quiet system's first
# event is folded at once; the most it adds to the projection lag is the interval (SPEC §6: p99 < 50 ms).
LIVE_BATCH_INTERVAL = 0.02


class Projection(Protocol):
    """A read model: its name, its tables, and how a batch of events changes them.

    A projection may also say its `version` (1 when it does not): a worker whose
    projection is newer than the version the tables hold builds the new one beside
    them and switches (projections/blue_green.py).
    """

    name: str
    tables: tuple[str, ...]

    # `apply` runs inside the batch's transaction, begun by a BEGIN of the runner's own: it may not open
    # one with conn.transaction() (asyncpg refuses that in a transaction it did not begin).
    async def apply(self, conn: asyncpg.Connection, events: Sequence[CaseEvent]) -> None: ...


class _CollectorWhileBehind:
    """No cyclic GC passes while a batch is read, decoded, folded and written: it
    allocates many objects that all stay alive, so the passes (each walking every
    tracked object, files remembered included) found nothing and took a third of a
    rebuild at 100,000 cases. The collector stays paused from batch to batch while
    a runner is behind (its batches come back full: a rebuild, a catch-up after
    downtime) and runs again once a batch comes back short; re-enabled after every
    full batch, its next pass walked the batch just kept (about 8% of a
    1,000,000-event rebuild). Refcounting still frees all but cycles meanwhile."""

    def __init__(self) -> None:
        self._paused_here = False

    def pause(self) -> None:
        if gc.isenabled():
            gc.disable()
            self._paused_here = True

    def resume(self) -> None:
        if self._paused_here:
            self._paused_here = False
            gc.enable()


_COLLECTOR = _CollectorWhileBehind()  # the collector is the process's, so one for all runners


def lock_key(name: str) -> int:
    """A stable advisory-lock key per projection name (an int4: the schema is the lock's other half)."""
    return zlib.crc32(name.encode()) - 2**31


def version_of(projection: Projection) -> int:
    return int(getattr(projection, "version", 1))


def version_lock_key(projection: Projection) -> int:
    """The lock of one version of a projection: the served version's workers and the next
    version's builder each run once, side by side (version 1 keeps the key it always had)."""
    version = version_of(projection)
    return lock_key(projection.name if version == 1 else f"{projection.name}@v{version}")


class SupersededError(Exception):
    """The tables hold a newer version of this projection than this worker's code folds."""


# Advisory locks are database-wide: keyed by the projection and the schema, so casedesk
# deployments (or test runs) in other schemas of one database never stand by for each other.
TRY_LOCK = "SELECT pg_try_advisory_lock($1, hashtext(current_schema()))"
UNLOCK = "SELECT pg_advisory_unlock($1, hashtext(current_schema()))"


@dataclass(frozen=True, slots=True)
class BuildParts:
    """A new version of the case files is folded by `workers` processes side by side, which
    connect to `dsn` (services/rebuild_in_parts.py); without it, by the builder alone."""

    dsn: str
    workers: int


def analyze_sql(tables: Sequence[str], schema: str | None = None) -> str:
    """ANALYZE of these tables (in `schema`, else as the search path finds them)."""
    return "ANALYZE " + ", ".join(f"{schema}.{t}" if schema else t for t in tables)


class TableStatistics:
    """When to take the planner's statistics of a projection's tables again, by the log's growth, and
    taking them beside the fold: in a task of its own, on a connection of its own, a table at a time,
    giving up on a table another session holds (a VACUUM, an index built concurrently) after
    ANALYZE_LOCK_TIMEOUT rather than holding up the live projection behind it."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.taken_at: dict[str, int] = {}
        self._pool = pool
        self._taking: dict[str, asyncio.Task[None]] = {}

    def due(self, name: str, started_at: int, position: int) -> bool:
        """Whether the log grew enough since the statistics were last taken, or since this worker
        started at `started_at` (a restart on a large log leaves them to autovacuum's last round)."""
        last = self.taken_at.setdefault(name, started_at)
        if position < last:  # the tables were emptied and are being filled again (a rebuild)
            last = self.taken_at[name] = 0
        return position - last >= max(ANALYZE_AFTER_EVENTS, ANALYZE_GROWTH * last)

    def take(self, projection: Projection, position: int) -> None:
        """Start taking the statistics of the projection's tables (unless a taking is still running)."""
        self.taken_at[projection.name] = position
        taking = self._taking.get(projection.name)
        if projection.tables and (taking is None or taking.done()):
            self._taking[projection.name] = asyncio.create_task(
                self._analyze(projection.name, projection.tables, position), name=f"analyze-{projection.name}")

    async def _analyze(self, name: str, tables: tuple[str, ...], position: int) -> None:
        busy: list[str] = []
        try:
            async with self._pool.acquire() as conn:
                try:
                    for table in tables:
                        try:
                            async with conn.transaction():
                                await conn.execute(f"SET LOCAL lock_timeout = {ANALYZE_LOCK_TIMEOUT_MS}")
                                await conn.execute(analyze_sql((table,)))
                        except asyncpg.LockNotAvailableError:
                            busy.append(table)
                finally:
                    # The pool opened a connection for this, now and then: it is not kept open for
                    # minutes beside the worker's own (the pool opens another when one is wanted).
                    await conn.close()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            log.warning("projection_tables_not_analyzed", projection=name, error=repr(error))
            return
        log.info("projection_tables_analyzed", projection=name, position=position, busy=busy)

    async def stop(self) -> None:
        """Cancel a taking under way (an ANALYZE cut short leaves the statistics as they were)."""
        for task in self._taking.values():
            task.cancel()
        await asyncio.gather(*self._taking.values(), return_exceptions=True)
        self._taking.clear()


async def _fold_in_one_transaction(conn: asyncpg.Connection, projection: Projection, events: Sequence[object],
                                   position: int, folds: int | None) -> None:
    """Apply a batch and move the projection's position to `position`, in one transaction begun and
    ended by one message each (the version `folds` checked, unless None: a builder of the next one)."""
    try:
        try:
            await conn.execute(_batch_begun(projection.name, folds))
        except asyncpg.InvalidSQLStatementNameError:  # a session new to this: prepare, begin again
            await conn.execute("ROLLBACK")
            await _prepare_batch_statements(conn)
            await conn.execute(_batch_begun(projection.name, folds))
        await projection.apply(conn, events)  # type: ignore[arg-type]
        await conn.execute(_batch_done(projection.name, position, folds))
    except BaseException as error:
        # Not committed: roll back here, whatever asyncpg believes the state is. A message cancelled in
        # flight (a worker stopped while its BEGIN waited for the version's row lock) left asyncpg
        # with the state from before it, while the server went on and began the transaction; a
        # ROLLBACK with none open is only a warning. (A connection that cannot take it, one cut off
        # mid-statement, is reset or closed by its pool when released.)
        with contextlib.suppress(Exception):
            if not conn.is_closed():
                await conn.execute("ROLLBACK")
        sqlstate = getattr(error, "sqlstate", None)
        if sqlstate == REPLAYED:
            raise IntegrityError(str(error)) from error
        if sqlstate == SUPERSEDED:
            raise SupersededError(str(error)) from error
        raise


def _position_of(notification: Notification) -> int:
    return notification.id


class ProjectionRunner:
    """Runs projections from the store's log into tables reached through `pool`."""

    def __init__(
        self,
        store: EventStore,
        pool: asyncpg.Pool,
        projections: Sequence[Projection],
        mapper: CaseEventMapper | None = None,
        batch: int = BATCH,
        build_parts: BuildParts | None = None,
    ) -> None:
        self.store, self.pool, self.projections = store, pool, list(projections)
        self.build_parts = build_parts
        self.mapper = mapper or CaseEventMapper()
        self.batch = batch
        self.positions: dict[str, int] = {}
        self.moved = asyncio.Condition()
        self._wake: dict[str, asyncio.Event] = {p.name: asyncio.Event() for p in projections}
        self._tasks: list[asyncio.Task[None]] = []
        self._listener: asyncpg.Connection | None = None
        self._stopping = False
        self._superseded: set[str] = set()
        self._behind: dict[str, bool] = {}  # per projection: whether its last look came back full
        self.statistics = TableStatistics(pool)

    async def start(self) -> None:
        await self._listen()
        self._tasks = [
            asyncio.create_task(self._work(p), name=f"projection-{p.name}") for p in self.projections
        ]

    async def stop(self, grace: float = 5.0) -> None:
        """Stop at a batch boundary: workers finish the batch in hand (up to `grace` s)."""
        self._stopping = True
        self.wake()
        _, late = await asyncio.wait(self._tasks, timeout=grace) if self._tasks else (set(), set())
        for task in late:
            task.cancel()  # a batch cut short rolls back; it is read again next time
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.statistics.stop()
        await self._unlisten()
        _COLLECTOR.resume()  # stopped right after a full batch: the collector must not stay off

    def wake(self, *_: object) -> None:
        for event in self._wake.values():
            event.set()

    async def _listen(self) -> None:
        await self._unlisten()
        try:
            # From the runner's own pool: a direct connection when PgBouncer fronts the store's.
            self._listener = await self.pool.acquire()
            keeps_session_state(self._listener)
            await self._listener.add_listener(CHANNEL, self.wake)
        except (OSError, asyncpg.PostgresError):
            await self._unlisten()  # the fallback timer still wakes the workers

    def _listening(self) -> bool:
        """Whether the LISTEN connection is alive (after a database restart it is not)."""
        try:
            return self._listener is not None and not self._listener.is_closed()
        except asyncpg.InterfaceError:  # the pool already took the broken connection back
            return False

    async def _unlisten(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(Exception):
                await listener.remove_listener(CHANNEL, self.wake)
            with contextlib.suppress(Exception):
                await self.pool.release(listener)

    async def catch_up(self, projection: Projection, holder: asyncpg.Connection | None = None, *,
                       checks_version: bool = True) -> int:
        """Apply one batch; return how many events it held (0: up to date).

        The batch is refused (SupersededError) when the tables hold another version of
        the projection than this one (`checks_version=False`: a builder of the next one).

        `holder` is the connection holding the projection's advisory lock; the
        batch then runs on it, so it commits only while the lock is still held
        (if that connection dies, PostgreSQL frees the lock for a standby, and
        this batch fails instead of running beside the standby's).
        """
        # On the lock holder's connection when there is one: a worker needs no other connection than
        # the one it holds, so the pool's other connections stay free for requests however many run.
        _COLLECTOR.pause()
        behind = False
        limit = self.batch  # as looked with: a blue/green build changes the runner's batch meanwhile
        try:
            rows = await (holder or self.pool).fetch(_LOOK, projection.name, limit)
            position, served = rows[0][0], rows[0][1]
            folds = version_of(projection) if checks_version else None
            if rows[0][2] is None:
                self.positions[projection.name] = position
                return 0
            if folds is not None and served is not None and served != folds:
                raise SupersededError(f"{projection.name}: the tables hold version {served},"
                                      f" this worker folds version {folds}")
            # Sorted in case a plan ever yields them otherwise (already in order: a pass over them).
            notifications = sorted((notification_of(r, 2) for r in rows), key=_position_of)
            # The audit seal reads the stored bytes themselves; read models read events.
            events = (notifications if getattr(projection, "reads_stored_events", False)
                      else [self.mapper.to_domain_event(n) for n in notifications])
            async with contextlib.AsyncExitStack() as stack:
                conn = holder if holder is not None else await stack.enter_async_context(self.pool.acquire())
                await _fold_in_one_transaction(conn, projection, events, notifications[-1].id, folds)
            behind = len(notifications) == limit
        finally:
            self._behind[projection.name] = behind
            if not behind:
                _COLLECTOR.resume()
        self.positions[projection.name] = notifications[-1].id
        async with self.moved:
            self.moved.notify_all()
        return len(notifications)

    async def _work(self, projection: Projection) -> None:
        while not self._stopping:
            try:
                async with self.pool.acquire() as holder:
                    await self._hold_lock_and_run(holder, projection)
            except asyncio.CancelledError:
                raise
            except Exception:  # database gone or a bad event: log, back off, retry
                log.exception("projection_failed", projection=projection.name)
                await asyncio.sleep(1.0)

    async def _hold_lock_and_run(self, holder: asyncpg.Connection, projection: Projection) -> None:
        key = version_lock_key(projection)
        keeps_session_state(holder)
        while not await holder.fetchval(TRY_LOCK, key):
            if self._stopping:
                return
            await asyncio.sleep(FALLBACK_POLL_SECONDS)  # another process runs it; stand by
        if not self._listening():
            await self._listen()
        try:
            served = await served_version(holder, projection.name, version_of(projection))
            if served < 0:  # a switch to version -served is under way (or was cut short)
                served = 0 if -served == version_of(projection) else abs(served) + version_of(projection)
            if served > version_of(projection):  # newer code serves these tables: never write them
                if projection.name not in self._superseded:
                    self._superseded.add(projection.name)
                    log.warning("projection_superseded", projection=projection.name, served=served,
                                ours=version_of(projection))
                await asyncio.sleep(FALLBACK_POLL_SECONDS)
                return
            if served < version_of(projection):
                from casedesk.projections.blue_green import build_and_switch  # it uses this module
                await build_and_switch(self, projection, holder)
            wake = self._wake[projection.name]
            loop = asyncio.get_running_loop()
            while not self._stopping:
                if not self._listening():  # lost alone (an idle-session timeout): appends wake us again
                    await self._listen()
                wake.clear()
                try:
                    began, folded = loop.time(), 0
                    while not self._stopping and (batch := await self.catch_up(projection, holder)):
                        folded += batch
                        position = self.positions[projection.name]
                        if self.statistics.due(projection.name, position - batch, position):
                            self.statistics.take(projection, position)
                        if not self._behind[projection.name]:
                            if not wake.is_set():
                                # A short batch took all the log held when it looked, and no append has
                                # woken us since: a look now would find nothing.
                                break
                            # Appended to meanwhile: look again at once, as under a steady stream a
                            # worker keeps folding (waiting out LIVE_BATCH_INTERVAL after every batch
                            # doubled the projection lag's median in `python -m tests.bench http`).
                            wake.clear()
                    if not folded:  # an empty look (the fallback timer's) holds back no one
                        began = -LIVE_BATCH_INTERVAL
                except SupersededError as superseded:  # switched to a newer version: stand by
                    log.warning("projection_superseded", projection=projection.name, detail=str(superseded))
                    return
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(FALLBACK_POLL_SECONDS):
                        await wake.wait()
                # Woken again within LIVE_BATCH_INTERVAL of the last look: gather for the rest of it.
                if (rest := began + LIVE_BATCH_INTERVAL - loop.time()) > 0 and not self._stopping:
                    await asyncio.sleep(rest)
        finally:
            # A lost connection took its lock along (and asyncpg may already have
            # handed it back to the pool, so even is_closed() raises): keep the
            # error that brought us here, not one from this clean-up.
            with contextlib.suppress(Exception):
                if not holder.is_closed():
                    await holder.execute(UNLOCK, key)


async def rebuild(runner: ProjectionRunner, projection: Projection) -> None:
    """Empty a projection's tables and position, so it is applied again from zero."""
    async with runner.pool.acquire() as conn, conn.transaction():
        for table in projection.tables:
            await conn.execute(f"TRUNCATE {table}")
        await forget_position(conn, projection.name)
