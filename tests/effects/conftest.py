"""Fixtures for the card-processor tests: real processes on a schema of their own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from casedesk.services.tokens import issue_token
from tests.effects.processes import SECRET, Effects


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


async def open_case_and_suspend(effects: Effects, token: str, *, family: bool = False) -> tuple[str, list[str]]:
    """A case with a primary (and a family) card, suspended with its linked cards; its id and card ids."""
    cards: list[dict[str, Any]] = [{"card_id": f"p-{uuid.uuid4().hex[:8]}", "last4": "4242", "network": "visa",
                                    "kind": "primary"}]
    if family:
        cards.append({"card_id": f"f-{uuid.uuid4().hex[:8]}", "last4": "4243", "network": "visa", "kind": "family",
                      "primary_card_id": cards[0]["card_id"]})
    status, opened = await effects.api_call("POST", "/v1/cases", token, {
        "customer": {"customer_id": f"c-{uuid.uuid4().hex[:8]}", "name": "Taro Yamada",
                     "registered_phone": "+81 90 1234 5678"},
        "cards": cards, "reason": "fraud_alert", "channel": "phone", "summary": "alert on the card"})
    assert status == 201, opened
    case_id = opened["case_id"]
    status, suspended = await effects.api_call("POST", f"/v1/cases/{case_id}/cards/{cards[0]['card_id']}/suspend",
                                               token, {"reason": "fraud alert", "include_linked": True})
    assert status == 200, suspended
    return case_id, suspended["suspended"]
