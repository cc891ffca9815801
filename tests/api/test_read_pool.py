"""DATABASE_READ_URL: the query routes read from it, commands and fresh case reads do not depend on it.

The read side here is a second migrated schema that nothing replicates into: a
standby that has not replayed anything yet. (tests/topology runs a real hot
standby; this pins down which pool each route uses, in milliseconds.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from casedesk.services.http.app import create_app
from casedesk.services.settings import Settings
from tests.api.conftest import SECRET, Auth, new_case_body, with_schema
from tests.conftest import new_schema


@pytest.fixture
async def lagging_read_side(database_dsn: str) -> AsyncIterator[str]:
    schema = await new_schema(database_dsn)
    yield with_schema(database_dsn, schema)
    conn = await asyncpg.connect(database_dsn)
    try:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    finally:
        await conn.close()


@pytest.fixture
async def client_with_standby(aiohttp_client: Any, tmp_path: Path, database_dsn: str, shared_schema: str,
                              lagging_read_side: str) -> TestClient:
    settings = Settings(token_secret=SECRET, pii_key="test-pii-key", data_dir=tmp_path, pool_min=1, pool_max=4,
                        database_read_url=lagging_read_side)
    return await aiohttp_client(create_app(settings, dsn=with_schema(database_dsn, shared_schema)))


async def test_a_case_read_without_min_position_is_never_older_than_its_last_command(
    client_with_standby: TestClient, auth: Auth
) -> None:
    h = auth()
    opened = await (await client_with_standby.post("/v1/cases", json=new_case_body(), headers=h)).json()
    r = await client_with_standby.get(f"/v1/cases/{opened['case_id']}", headers=h)
    assert r.status == 200  # the standby has no case file yet: the primary's stream is folded
    assert (await r.json())["version"] == opened["version"]


async def test_once_min_position_is_reached_on_the_standby_the_read_stays_there(
    client_with_standby: TestClient, auth: Auth, lagging_read_side: str
) -> None:
    h = auth()
    opened = await (await client_with_standby.post("/v1/cases", json=new_case_body(), headers=h)).json()
    conn = await asyncpg.connect(lagging_read_side)
    try:  # the read side claims the position without having the case: only it is asked
        await conn.execute("INSERT INTO projection_tracking (application_name, notification_id) VALUES"
                           " ('case_files', $1)", opened["position"])
    finally:
        await conn.close()
    r = await client_with_standby.get(f"/v1/cases/{opened['case_id']}",
                                      params={"min_position": opened["position"]}, headers=h)
    assert r.status == 404
    r = await client_with_standby.get("/v1/dashboard", headers=auth(role="supervisor"))
    assert (await r.json())["positions"] == {"case_files": opened["position"]}
