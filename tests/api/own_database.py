"""Apps on databases of their own, one per clock policy (import the fixtures into a test module).

Projection locks are advisory locks, per database: on the shared test database
an app's projection may wait behind another run's, and its reads with
min_position then time out. A database of its own keeps a test's app projecting.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from aiohttp import web

from casedesk.services.http.app import create_app
from casedesk.services.settings import Settings
from casedesk.services.store.migrations import migrate
from tests.api.conftest import SECRET


async def database_of_its_own(database_dsn: str, prefix: str = "clocks") -> AsyncIterator[str]:
    """A freshly migrated database, dropped afterwards: a dump of it or its projections are this test's alone."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(database_dsn)
    await admin.execute(f"CREATE DATABASE {name}")
    dsn = urlunsplit(urlsplit(database_dsn)._replace(path=f"/{name}"))
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    yield dsn
    await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    await admin.close()


@pytest.fixture(scope="session")
async def jp_database(database_dsn: str) -> AsyncIterator[str]:
    async for dsn in database_of_its_own(database_dsn):
        yield dsn


@pytest.fixture(scope="session")
async def us_database(database_dsn: str) -> AsyncIterator[str]:
    async for dsn in database_of_its_own(database_dsn):
        yield dsn


def policy_app(tmp_path: Any, dsn: str, policy: str) -> web.Application:
    """The app under CASEDESK_CLOCK_POLICY=policy on that database."""
    settings = Settings(token_secret=SECRET, pii_key="test-pii-key", data_dir=tmp_path, pool_min=1, pool_max=8,
                        clock_policy=policy)
    return create_app(settings, dsn=dsn)
