"""Fixtures for API tests: the real app over real HTTP on a real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from casedesk.services.http.app import create_app
from casedesk.services.settings import Settings
from casedesk.services.tokens import issue_token

SECRET = "test-secret-" + "x" * 40


def with_schema(dsn: str, schema: str) -> str:
    # asyncpg passes unknown DSN query parameters on as server settings.
    return f"{dsn}{'&' if '?' in dsn else '?'}search_path={schema}"


@pytest.fixture
def settings(tmp_path: Any) -> Settings:
    return Settings(token_secret=SECRET, pii_key="test-pii-key", data_dir=tmp_path, pool_min=1,
                    pool_max=8)


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings, database_dsn: str, shared_schema: str) -> TestClient:
    app = create_app(settings, dsn=with_schema(database_dsn, shared_schema))
    return await aiohttp_client(app)


Auth = Callable[..., dict[str, str]]


@pytest.fixture
def auth() -> Auth:
    def headers(role: str = "agent", departments: tuple[str, ...] = ("fraud",), sub: str | None = None,
                name: str = "K. Takano", ttl: int = 3600, secret: str = SECRET) -> dict[str, str]:
        token = issue_token(secret, sub=sub or f"agent-{uuid.uuid4().hex[:8]}", name=name, role=role,
                            departments=departments, ttl=ttl)
        return {"Authorization": f"Bearer {token}"}

    return headers


def new_case_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "customer": {"customer_id": f"cust-{uuid.uuid4().hex[:8]}", "name": "Taro Yamada",
                     "registered_phone": "+81 90 1234 5678"},
        "cards": [{"card_id": "card-p", "last4": "4242", "network": "visa", "kind": "primary"}],
        "reason": "unrecognized_charge",
        "channel": "phone",
        "summary": "Customer does not recognise a USD 19.95 charge from WEBTEL",
        "amount_at_risk": {"amount": "19.95", "currency": "USD"},
    }
    body.update(overrides)
    return body
