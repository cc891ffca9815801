"""Fixtures for audit tests: a schema of their own per test, since some tests tamper with it.

Tampered rows no longer decode, and `casedesk audit verify --all` checks every
stream, so these tests never touch the schema the rest of the run shares.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from casedesk.services.http.app import create_app
from casedesk.services.settings import Settings
from casedesk.services.store.database import create_pool
from tests.api.conftest import auth, new_case_body, settings, with_schema
from tests.conftest import new_schema

__all__ = ["auth", "settings"]  # fixtures shared with the API tests


@pytest.fixture
async def schema(database_dsn: str) -> AsyncIterator[str]:
    name = await new_schema(database_dsn)
    yield name
    conn = await asyncpg.connect(database_dsn)
    try:
        await conn.execute(f"DROP SCHEMA {name} CASCADE")
    finally:
        await conn.close()


@pytest.fixture
async def own_pool(database_dsn: str, schema: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_dsn, schema=schema, min_size=1, max_size=8)
    yield pool
    await pool.close()


@pytest.fixture
async def client(database_dsn: str, schema: str, aiohttp_client: Any, settings: Settings) -> TestClient:
    # `schema` before `aiohttp_client`: the app stops before its schema is dropped.
    app = create_app(settings, dsn=with_schema(database_dsn, schema))
    return await aiohttp_client(app)


async def post(client: TestClient, headers: dict[str, str], path: str, body: dict[str, Any],
               status: int = 200) -> dict[str, Any]:
    r = await client.post(path, json=body, headers=headers)
    answer = await r.json()
    assert r.status == status, (path, answer)
    return answer


async def open_case_with_story(client: TestClient, headers: dict[str, str]) -> uuid.UUID:
    """A case of seven events: opened in a call, identity verified, a daytime phone, a note, the call ended."""
    opened = await post(client, headers, "/v1/cases", new_case_body(contact={
        "direction": "inbound", "channel": "phone", "phone": "+81 3 5555 0101", "department": "fraud"}), 201)
    case, contact = f"/v1/cases/{opened['case_id']}", opened["contact_id"]
    await post(client, headers, f"{case}/identity-checks",
               {"contact_id": contact, "method": "knowledge_based", "passed": True, "factors": ["name"]})
    await post(client, headers, f"{case}/contact-details", {"contact_id": contact, "daytime_phone": "+81 80 2222 3333"})
    await post(client, headers, f"{case}/notes", {"text": "customer asked for a callback after 17:00"}, 201)
    await post(client, headers, f"{case}/cards/card-p/suspend", {"reason": "fraud", "include_linked": False})
    await post(client, headers, f"{case}/contacts/{contact}/end", {"outcome": "connected", "summary": "done"})
    return uuid.UUID(opened["case_id"])
