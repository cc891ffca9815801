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
