"""Fixtures for the card-processor tests: real processes on a schema of their own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from casedesk.services.tokens import issue_token
from tests.effects.processor.processes import SECRET, Effects


@pytest.fixture
async def effects(tmp_path: Path, database_dsn: str) -> AsyncIterator[Effects]:
    running = await Effects.on_new_schema(tmp_path, database_dsn)
    try:
        yield running
    finally:
        await running.close()


@pytest.fixture
def agent_token() -> str:
    return issue_token(SECRET, sub="agent-9", name="K. Takano", role="agent", departments=["fraud"])

