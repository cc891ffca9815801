"""The sealing epoch (issue 21): personal data stored in the clear before customer keys is sealed once,
and `audit verify` still proves the log, heads exported before the epoch included, and that nothing but
personal fields changed."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg

from casedesk.services.http.app import create_app
from casedesk.services.http.app_keys import RUNNER
from casedesk.services.store.audit_chain import chain_hash
from tests.api.test_erasure import (
    ADMIN,
    AUDIT_KEY,
    MASTER,
    Customer,
    erasure_settings,
    found_in,
    own_dsn,  # noqa: F401 (a fixture)
    pg_dump,
    reads,
    work_a_case,
)
from tests.projections.helpers import wait_until_caught_up


def casedesk(dsn: str, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASEDESK_")}
    env |= {"DATABASE_URL": dsn, "CASEDESK_DATA_DIR": str(data_dir), "CASEDESK_AUDIT_KEY": AUDIT_KEY,
            "CASEDESK_MASTER_KEY": MASTER, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "casedesk.services.cli", *args], env=env, capture_output=True,
                          text=True, timeout=180)


async def run(dsn: str, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(casedesk, dsn, data_dir, *args)


def events_only(dump: str) -> str:
    """The dump's case_events rows (the read models are derived, and rebuilt after the epoch)."""
    start = dump.index("COPY public.case_events")
    return dump[start:dump.index("\\.", start)]


async def test_stored_clear_text_is_sealed_once_and_audit_verify_proves_only_personal_fields_changed(
    aiohttp_client: Any, tmp_path: Path, own_dsn: str  # noqa: F811
) -> None:
    # Before issue 21: the same data, stored in the clear (sealing off), sealed by the audit follower.
    old = await aiohttp_client(create_app(erasure_settings(tmp_path, seal_personal_data=False), dsn=own_dsn))
    who = Customer()
    case_id, _ = await work_a_case(old, who)
    runner = old.server.app[RUNNER]
    await wait_until_caught_up(runner, "audit_seals")
    await old.close()
    assert set(found_in(events_only(pg_dump(own_dsn)), who)) >= {"summary", "note", "daytime"}  # the control
    clean = await run(own_dsn, tmp_path, "audit", "verify", "--all")
    assert clean.returncode == 0, clean.stdout + clean.stderr

    sealed = await run(own_dsn, tmp_path, "seal-stored")
    assert sealed.returncode == 0 and "sealing epoch 1:" in sealed.stdout, sealed.stdout + sealed.stderr
    assert found_in(events_only(pg_dump(own_dsn)), who) == []
    verified = await run(own_dsn, tmp_path, "audit", "verify", "--all")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "re-encrypted event(s) checked" in verified.stdout and ": ok" in verified.stdout
    again = await run(own_dsn, tmp_path, "seal-stored")
    assert again.returncode == 0 and "no sealing epoch" in again.stdout
    rebuilt = await run(own_dsn, tmp_path, "rebuild")  # the read models, folded again from the sealed events
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert found_in(pg_dump(own_dsn), who) == []

    # Read as before; then erased like any other customer's.
    new = await aiohttp_client(create_app(erasure_settings(tmp_path), dsn=own_dsn))
    assert who.note in await reads(new, case_id, 0, ADMIN)
    r = await new.post(f"/v1/customers/{who.customer_id}/erasure", json={"reason": "retention"}, headers=ADMIN)
    assert r.status == 200 and (await r.json())["cases"] == [case_id]
    seen = await reads(new, case_id, 0, ADMIN)
    assert found_in(seen, who) == [] and "[erased]" in seen
    await new.close()
    assert (await run(own_dsn, tmp_path, "audit", "verify", "--all")).returncode == 0

    # Someone changes more than a personal field of a re-encrypted event and recomputes its SHA chain
    # and the epoch's hashes: the epoch's skeleton (and the keyed seal) say so.
    conn = await asyncpg.connect(own_dsn)
    try:
        row = await conn.fetchrow(
            "SELECT e.originator_id, e.originator_version, e.topic, e.state FROM case_events e"
            " JOIN sealing_epoch_events r USING (originator_id, originator_version)"
            " WHERE e.topic LIKE '%CaseOpened' LIMIT 1")
        forged = bytes(row["state"]).replace(b'"unrecognized_charge"', b'"lost_or_stolen"')
        assert forged != bytes(row["state"])
        previous = bytes(32)
        await conn.execute("UPDATE case_events SET state = $3 WHERE originator_id = $1 AND originator_version = $2",
                           row[0], row[1], forged)
        for version, topic, state in await conn.fetch(
                "SELECT originator_version, topic, state FROM case_events WHERE originator_id = $1"
                " ORDER BY originator_version", row[0]):
            previous = chain_hash(previous, topic, bytes(state), version)
            await conn.execute("UPDATE case_event_hashes SET hash = $3 WHERE originator_id = $1"
                               " AND originator_version = $2", row[0], version, previous)
            # ...and the epoch's record of the hash it wrote, to cover the tracks.
            await conn.execute("UPDATE sealing_epoch_events SET new_hash = $3 WHERE originator_id = $1"
                               " AND originator_version = $2", row[0], version, previous)
    finally:
        await conn.close()
    tampered = await run(own_dsn, tmp_path, "audit", "verify", "--all")
    assert tampered.returncode == 1, tampered.stdout + tampered.stderr
    assert "0 with a broken hash chain" in tampered.stdout  # the SHA chain was recomputed...
    assert "more than its personal fields changed" in tampered.stdout  # ...the epoch's skeleton was not
