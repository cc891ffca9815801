"""Connections: which PostgreSQL to use, and asyncpg pools onto it."""

from __future__ import annotations

from typing import Any

import asyncpg

from casedesk.services.embedded_postgres import start_embedded_postgres
from casedesk.services.settings import Settings


def database_url(settings: Settings) -> str:
    """DATABASE_URL when set, else the embedded server (started if need be)."""
    if settings.database_url:
        return settings.database_url
    return start_embedded_postgres(settings.data_dir)


# Server pids of pooled connections that may hold session state: a session
# advisory lock or a LISTEN (see keeps_session_state).
_SESSION_STATE: set[int] = set()


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
        max_inactive_connection_lifetime=60.0,
        reset=_reset,
    )
    assert pool is not None
    return pool
