"""A token's signature is checked once, but its expiry on every request."""

from __future__ import annotations

import asyncio
import time

from casedesk.services.tokens import issue_token
from tests.api.conftest import SECRET


async def test_a_token_stops_working_when_it_expires_even_after_it_was_accepted(client) -> None:
    token = issue_token(SECRET, sub="short-lived", name="S", role="agent", departments=["fraud"], ttl=1)
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/v1/queues", headers=headers)).status == 200
    expires = int(time.time()) + 1
    await asyncio.sleep(max(0.0, expires - time.time()) + 0.2)
    r = await client.get("/v1/queues", headers=headers)
    assert r.status == 401
    assert "expired" in (await r.json())["detail"]


async def test_a_forged_token_is_refused_even_when_a_genuine_one_was_seen(client) -> None:
    genuine = issue_token(SECRET, sub="a", name="A", role="agent", departments=["fraud"])
    assert (await client.get("/v1/queues", headers={"Authorization": f"Bearer {genuine}"})).status == 200
    forged = issue_token("another-" + SECRET, sub="a", name="A", role="admin", departments=["fraud"])
    assert (await client.get("/v1/queues", headers={"Authorization": f"Bearer {forged}"})).status == 401
