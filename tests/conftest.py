"""Shared fixtures: a real PostgreSQL for every test that needs one.

DATABASE_URL when set (CI's PostgreSQL), else one embedded server for the
whole run. Tests isolate by random ids; the few that need an empty log (the
library's recorder cases) get a schema of their own.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from casedesk.services.store.database import create_pool
from casedesk.services.store.embedded_postgres import temporary_embedded_postgres
from casedesk.services.store.migrations import migrate


def pytest_configure(config: pytest.Config) -> None:
    # A webhook sender rests while this machine's CPUs are saturated (issue 17), and a test run
    # keeps them busy: the senders the suite starts (as serve's children or on their own) deliver
    # at once, as the delivery tests expect. tests/effects/test_webhook_peak_yield.py sets it.
    # (Here, not at import: the benchmarks import this module and measure serve's default.)
    os.environ.setdefault("CASEDESK_WEBHOOK_PEAK_DELAY", "0")


@pytest.fixture(scope="session")
def database_dsn() -> Iterator[str]:
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    with temporary_embedded_postgres("casedesk-test-pg-") as dsn:
        yield dsn


async def new_schema(dsn: str) -> str:
    """A fresh, migrated schema; return its name."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
        await conn.execute(f"SET search_path TO {schema}")
        await migrate(conn)
    finally:
        await conn.close()
    return schema


@pytest.fixture(scope="session")
async def shared_schema(database_dsn: str) -> str:
    """One migrated schema the whole run shares (isolation by random ids)."""
    return await new_schema(database_dsn)


@pytest.fixture
async def pool(database_dsn: str, shared_schema: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_dsn, schema=shared_schema, min_size=1, max_size=20)
    yield pool
    await pool.close()


@pytest.fixture
async def empty_pool(database_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a schema of its own, for tests that need an empty log."""
    schema = await new_schema(database_dsn)
    pool = await create_pool(database_dsn, schema=schema, min_size=1, max_size=20)
    yield pool
    await pool.close()
    conn = await asyncpg.connect(database_dsn)
    await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    await conn.close()
