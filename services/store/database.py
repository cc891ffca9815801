"""Connections: which PostgreSQL to use, and asyncpg pools onto it."""

from __future__ import annotations

from typing import Any

import asyncpg

from casedesk.services.settings import Settings
from casedesk.services.store.embedded_postgres import start_embedded_postgres
from casedesk.services.store.migrations import migrate


def database_url(settings: Settings) -> str:
    """DATABASE_URL when set, else the embedded server (started if need be)."""
    if settings.database_url:
        return settings.database_url
    return start_embedded_postgres(settings.data_dir)


def direct_database_url(settings: Settings) -> str:
    """DATABASE_DIRECT_URL when set, else database_url: where sessions must be real.

    PgBouncer in transaction mode hands each transaction to any server
    connection, so LISTEN and session advisory locks (migrations, projection
    workers) taken through it would land on a connection casedesk no longer
    holds. They connect here instead.
    """
    return settings.database_direct_url or database_url(settings)


# Server pids of pooled connections that may hold session state: a session
# advisory lock or a LISTEN (see keeps_session_state).
_SESSION_STATE: set[int] = set()


# A transaction's commit that does not wait for the WAL flush, as an SQL expression, so that a statement
# doing other work sets it in the same round trip (a projection batch's first statement, a claim's hold):
# for writes a crash may lose because they are redone or worthless after it.
ASYNCHRONOUS_COMMIT = "set_config('synchronous_commit', 'off', true)"

# How long a pooled connection may stand idle before the pool closes it. A new connection costs its
# PostgreSQL backend some 80 ms of CPU before it serves at speed (its catalog caches filled, our
# statements prepared again), and the pool opens them exactly when a burst needs more: with 60 s,
# each breach list's writing, a minute after the last, paid that on the busy cores while agents read
# (python -m tests.bench heavy_reads, issue 15). asyncpg's own default.
POOL_IDLE_SECONDS = 300.0


def sql_literal(text: str) -> str:
    """`text` as an SQL string literal (standard_conforming_strings, PostgreSQL's default since 9.1).
    For the few statements sent by the simple query protocol, which takes no parameters: a message
    holding several statements (a projection batch's "BEGIN; ..." and "...; COMMIT") is one round trip."""
    return "'" + text.replace("'", "''") + "'"


def keeps_session_state(conn: Any) -> None:
    """Mark a pooled connection about to take a session advisory lock or LISTEN:
    its release then runs asyncpg's full reset (unlock all, UNLISTEN, RESET ALL)."""
    _SESSION_STATE.add(conn.get_server_pid())


async def _reset(conn: asyncpg.Connection) -> None:
    """Reset on release only what needs it. asyncpg's default sends its reset
    query on every release, a round trip per query that was a sixth of a
    claim's time; an open transaction is rolled back by asyncpg either way."""
    pid = conn.get_server_pid()
    if pid in _SESSION_STATE:
        _SESSION_STATE.discard(pid)
        await conn.execute(conn.get_reset_query())


async def create_pool(
    dsn: str,
    *,
    min_size: int = 2,
    max_size: int = 10,
    schema: str | None = None,
    statement_cache: bool = True,
) -> asyncpg.Pool:
    """An asyncpg pool; `schema` pins search_path (tests isolate by schema).

    statement_cache=False makes asyncpg safe behind PgBouncer in transaction
    mode, where a prepared statement may land on another server connection.
    Code that takes a session advisory lock, LISTENs or SETs a session
    variable on a pooled connection calls keeps_session_state(conn) first.
    """
    server_settings: dict[str, Any] = {"application_name": "casedesk"}
    if schema:
        server_settings["search_path"] = schema
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        server_settings=server_settings,
        statement_cache_size=100 if statement_cache else 0,
        max_inactive_connection_lifetime=POOL_IDLE_SECONDS,
        reset=_reset,
    )
    assert pool is not None
    return pool


# Errors that mean "the database could not be reached, or the connection to it
# was lost" rather than "this request is wrong": refused connections, a server
# shutting down or starting up (SQLSTATE class 57), a connection dropped
# mid-operation (class 08).
_UNREACHABLE = (OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError,
                asyncpg.AdminShutdownError, asyncpg.CrashShutdownError)


def database_unreachable(error: BaseException) -> bool:
    """Whether an error, or one it arose from, is the database being out of reach.

    asyncpg often reports a lost connection second-hand (an InterfaceError
    from leaving a transaction on a closed connection), so the chain of
    causes is searched too.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, _UNREACHABLE):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


async def migrate_directly(dsn: str) -> list[str]:
    """Apply pending migrations over a connection of their own (their lock is a session lock)."""
    conn = await asyncpg.connect(dsn)
    try:
        return await migrate(conn)
    finally:
        await conn.close()


class Pools:
    """The pools one process opens (primary, standby, direct), closed together in reverse."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._opened: list[asyncpg.Pool] = []

    async def open(self, dsn: str, *, min_size: int | None = None, statement_cache: bool = True) -> asyncpg.Pool:
        pool = await create_pool(
            dsn,
            min_size=self.settings.pool_min if min_size is None else min_size,
            max_size=self.settings.pool_max,
            statement_cache=statement_cache,
        )
        self._opened.append(pool)
        return pool

    async def close(self) -> None:
        while self._opened:
            await self._opened.pop().close()
