"""`casedesk audit verify`, run as an operator would, against a database someone tampered with."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
from eventsourcing.persistence import StoredEvent

from casedesk.services.store.event_store import EventStore
from tests.api.conftest import with_schema

TOPIC = "casedesk.domain.events:HandoffNoteAdded"


def audit_verify(dsn: str, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASEDESK_")}
    env |= {"DATABASE_URL": dsn, "CASEDESK_DATA_DIR": str(data_dir), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "casedesk.services.cli", "audit", "verify", *args],
                          env=env, capture_output=True, text=True, timeout=120)


async def run(dsn: str, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(audit_verify, dsn, data_dir, *args)


async def test_audit_verify_exits_non_zero_and_names_the_tampered_case(
    database_dsn: str, schema: str, own_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    store = EventStore(own_pool)
    streams = [uuid.uuid4() for _ in range(3)]
    for s in streams:
        await store.append([StoredEvent(s, v, TOPIC, f'{{"v": {v}}}'.encode()) for v in range(1, 5)])
    await store.close()
    dsn = with_schema(database_dsn, schema)

    clean = await run(dsn, tmp_path, "--all")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "3 stream(s) checked, 0 with a broken hash chain" in clean.stdout

    await own_pool.execute("UPDATE case_events SET state = '{\"v\": 99}' WHERE originator_id = $1"
                           " AND originator_version = 2", streams[1])
    tampered = await run(dsn, tmp_path)  # --all is the default
    assert tampered.returncode == 1, tampered.stdout + tampered.stderr
    assert f"case {streams[1]}: first bad version 2" in tampered.stdout
    assert str(streams[0]) not in tampered.stdout and str(streams[2]) not in tampered.stdout

    one = await run(dsn, tmp_path, "--case", str(streams[1]))
    assert one.returncode == 1 and f"case {streams[1]}: first bad version 2" in one.stdout
    assert (await run(dsn, tmp_path, "--case", str(streams[0]))).returncode == 0
    assert (await run(dsn, tmp_path, "--case", str(uuid.uuid4()))).returncode == 2
