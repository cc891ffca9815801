"""A retry that races its first attempt (a client that timed out and sent again) gets the first answer.

Both attempts carry one Idempotency-Key; when they land in one group-commit
batch, one writes and the other learns that it lost. It must learn so only
once the winner's answer is stored, or it finds the key "in use" (409), which
a client may take for a definite refusal of a command that was in fact done.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
from aiohttp.test_utils import TestClient, TestServer
from eventsourcing.persistence import StoredEvent

from casedesk.services.http.app import create_app
from casedesk.services.settings import Settings
from casedesk.services.store.event_store import EventStore, IdempotencyRaceError, IdempotencyRecord
from casedesk.services.tokens import issue_token
from tests.api.conftest import SECRET, new_case_body, with_schema


async def test_the_twin_that_lost_a_key_learns_it_after_the_winners_answer_is_stored(
    empty_pool: asyncpg.Pool,
) -> None:
    pool = empty_pool  # a schema of its own: its made-up events must not reach the shared projections
    store = EventStore(pool)
    name = f"key-{uuid.uuid4()}"
    record = IdempotencyRecord("agent-1", name, b"hash", lambda ids: (201, str(ids).encode()))
    learnt: list[str] = []

    async def open_a_case() -> int | None:
        try:
            await store.append([StoredEvent(uuid.uuid4(), 1, "t", b"{}")], record)
            learnt.append("won")
            return None
        except IdempotencyRaceError:  # what the HTTP layer does next: look the first answer up
            learnt.append("lost")
            status: int | None = await pool.fetchval(
                "SELECT status FROM idempotency_keys WHERE principal = 'agent-1' AND key = $1", name)
            return status

    answers = await asyncio.gather(open_a_case(), open_a_case())  # one batch: both queued before it runs
    assert learnt == ["won", "lost"]  # told only after the winner's commit
    assert sorted(answers, key=str) == [201, None]  # and then the winner's answer was there to replay
    await store.close()


async def test_concurrent_retries_of_one_command_all_get_its_answer(
    database_dsn: str, shared_schema: str, tmp_path: Path
) -> None:
    settings = Settings(token_secret=SECRET, pii_key="k", data_dir=tmp_path, pool_min=1, pool_max=8)
    client = TestClient(TestServer(create_app(settings, dsn=with_schema(database_dsn, shared_schema))))
    await client.start_server()
    token = issue_token(SECRET, sub=f"agent-{uuid.uuid4().hex[:8]}", name="A", role="agent", departments=["fraud"])
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": f"open-{uuid.uuid4()}"}
    body = new_case_body()
    try:
        answers = await asyncio.gather(*[client.post("/v1/cases", json=body, headers=headers) for _ in range(20)])
        bodies = [(r.status, await r.read()) for r in answers]
    finally:
        await client.close()
    assert {status for status, _ in bodies} == {201}, bodies
    assert len({b for _, b in bodies}) == 1  # one case, one answer
