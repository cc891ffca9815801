"""A token signed with another secret is refused saying which secret each side uses, never the secret."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from casedesk.services.tokens import issue_token, key_id
from tests.api.conftest import SECRET

OTHER_SECRET = "another-data-directory-secret-" + "y" * 30


async def test_a_token_from_another_secret_says_which_key_signed_it_and_which_the_server_uses(
        client: TestClient) -> None:
    token = issue_token(OTHER_SECRET, sub="a1", name="K. Takano", role="agent", departments=["fraud"])
    r = await client.get("/v1/queues", headers={"Authorization": f"Bearer {token}"})
    problem = await r.json()
    assert r.status == 401, problem
    detail = problem["detail"]
    assert f"key {key_id(SECRET)}" in detail and f"key {key_id(OTHER_SECRET)}" in detail
    assert "CASEDESK_TOKEN_SECRET" in detail
    assert SECRET not in detail and OTHER_SECRET not in detail


async def test_a_token_naming_no_key_is_still_refused_plainly(client: TestClient, auth: Any) -> None:
    import jwt

    token = jwt.encode({"sub": "a1", "role": "agent", "exp": 2**40}, OTHER_SECRET, algorithm="HS256")
    r = await client.get("/v1/queues", headers={"Authorization": f"Bearer {token}"})
    problem = await r.json()
    assert r.status == 401
    assert "a key it does not name" in problem["detail"]
    r = await client.get("/v1/queues", headers=auth())
    assert r.status == 200
