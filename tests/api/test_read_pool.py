"""DATABASE_READ_URL: the query routes read from it, commands and fresh case reads do not depend on it.

The read side here is a second migrated schema that nothing replicates into: a
standby that has not replayed anything yet. (tests/topology runs a real hot
standby; this pins down which pool each route uses, in milliseconds.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from casedesk.services.http.app import create_app
from casedesk.services.http.app_keys import READ_POOL
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


async def test_readiness_counts_the_standby_behind_until_it_has_caught_up(
    aiohttp_client: Any, tmp_path: Path, database_dsn: str, shared_schema: str, auth: Auth, lagging_read_side: str
) -> None:
    settings = Settings(token_secret=SECRET, pii_key="test-pii-key", data_dir=tmp_path, pool_min=1, pool_max=4,
                        database_read_url=lagging_read_side, readiness_max_lag=0)
    client_with_standby = await aiohttp_client(create_app(settings, dsn=with_schema(database_dsn, shared_schema)))
    opened = await (await client_with_standby.post("/v1/cases", json=new_case_body(), headers=auth())).json()
    r = await client_with_standby.get("/readyz")
    answer = await r.json()
    # The primary may be caught up; the standby has replayed nothing at all.
    assert (r.status, answer["standby"], answer["ready"]) == (503, True, False)
    assert answer["standby_lag"] >= opened["position"]
    conn = await asyncpg.connect(lagging_read_side)
    try:
        await conn.execute("INSERT INTO projection_tracking (application_name, notification_id) VALUES"
                           " ('case_files', $1) ON CONFLICT (application_name) DO UPDATE"
                           " SET notification_id = excluded.notification_id", opened["position"] + 10**6)
    finally:
        await conn.close()
    async with asyncio.timeout(30):  # and the primary's own projection catches up too
        while (r := await client_with_standby.get("/readyz")).status != 200:
            await asyncio.sleep(0.2)
    assert (await r.json())["standby"] is True


async def test_a_standby_out_of_reach_is_not_ready(client_with_standby: TestClient) -> None:
    await client_with_standby.app[READ_POOL].close()
    r = await client_with_standby.get("/readyz")
    assert r.status == 503
    assert (await r.json())["standby"] is False
