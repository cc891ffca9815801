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
