"""Erasure by crypto-shredding (issue 21), over real HTTP on a PostgreSQL database of its own.

A customer's name, phones, summaries and notes are sealed under their own key
from the moment they are stored: a dump of the database never holds them in
the clear, and with the master key and the dump's own key table it opens to
them (the control that the search finds what is there). After erasure the
same opened dump holds none of them, every read shows "[erased]" in their
place, the skeleton stays, the hash chains and the audit seal verify, and a
rebuild from zero equals the live read model.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from casedesk.projections.case_files import CaseFiles
from casedesk.projections.runner import ProjectionRunner, rebuild
from casedesk.services.http.app import create_app
from casedesk.services.http.app_keys import POOL, RUNNER
from casedesk.services.privacy.customer_keys import CustomerKeys
from casedesk.services.settings import Settings
from casedesk.services.store.database import create_pool
from casedesk.services.store.event_store import EventStore
from tests.api.conftest import SECRET, new_case_body
from tests.api.own_database import database_of_its_own
from tests.database_dump import pg_dump_binary
from tests.projections.helpers import all_rows, drain, wait_until_caught_up

MASTER = "test-master-key-erasure"
AUDIT_KEY = "test-audit-key-erasure"


@pytest.fixture
async def own_dsn(database_dsn: str) -> AsyncIterator[str]:
    """A database of its own: its dump holds only this test's data, its projections run unshared."""
    async for dsn in database_of_its_own(database_dsn, "erasure"):
        yield dsn


def erasure_settings(tmp_path: Path, **more: Any) -> Settings:
    return Settings(token_secret=SECRET, pii_key="test-pii-key", master_key=MASTER, audit_key=AUDIT_KEY,
                    data_dir=tmp_path, pool_min=1, pool_max=8, **more)


@pytest.fixture
async def app_client(aiohttp_client: Any, tmp_path: Path, own_dsn: str) -> TestClient:
    return await aiohttp_client(create_app(erasure_settings(tmp_path), dsn=own_dsn))


_BYTEA = re.compile(r"\\\\x([0-9a-f]+)")


def pg_dump(dsn: str) -> str:
    """The whole database as SQL text, as a backup would hold it, with bytea values (events, files,
    timelines: dumped as hex) decoded, so a search sees the text they hold."""
    binary = pg_dump_binary()  # a PATH pg_dump older than the embedded server refuses to dump it
    if binary is None:
        pytest.skip("pg_dump is not installed")
    dump = subprocess.run([binary, "--no-owner", dsn], capture_output=True, text=True, check=True,
                          timeout=120).stdout
    assert "\\x" in dump  # the events are there, as bytea
    return _BYTEA.sub(lambda m: bytes.fromhex(m[1]).decode("utf-8", "replace"), dump)


def audit_verify(dsn: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASEDESK_")}
    env |= {"DATABASE_URL": dsn, "CASEDESK_DATA_DIR": str(data_dir), "CASEDESK_AUDIT_KEY": AUDIT_KEY,
            "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "casedesk.services.cli", "audit", "verify", "--all"],
                          env=env, capture_output=True, text=True, timeout=120)


async def opened(dsn: str, text: str) -> str:
    """The dump with every sealed token opened by the master key and the dump's own key table."""
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        return await CustomerKeys(pool, MASTER).open_text(text)
    finally:
        await pool.close()


class Customer:
    """One customer's personal data, each string unique to this run so a search cannot meet another's."""

    def __init__(self) -> None:
        tag = "".join(chr(ord("a") + int(c, 16)) for c in uuid.uuid4().hex[:8])
        n = uuid.uuid4().int
        self.customer_id = f"cust-{uuid.uuid4().hex[:8]}"
        self.name = f"Sakura Q{tag}"
        self.phone_digits = f"90{n % 10**8:08d}"  # national, after the trunk 0: +81 90 XXXX XXXX
        self.phone = f"+81 {self.phone_digits[:2]} {self.phone_digits[2:6]} {self.phone_digits[6:]}"
        self.daytime_digits = f"3{(n // 10**8) % 10**8:08d}"
        self.daytime = f"+81 {self.daytime_digits[0]} {self.daytime_digits[1:5]} {self.daytime_digits[5:]}"
        self.summary = f"Customer {tag} does not recognise the WEBTEL charge"
        self.note = f"Prefers calls after six, ask for {tag}-san"
        self.contact_summary = f"Spoke with {tag}: card is at home"

    def secrets(self) -> dict[str, str]:
        """What must never be found once erased: the name, phone digits (as dialled and as masked), texts."""
        return {"name": self.name, "phone": "81" + self.phone_digits, "phone last4": f"•••• {self.phone_digits[-4:]}",
                "daytime": "81" + self.daytime_digits, "summary": self.summary, "note": self.note,
                "contact summary": self.contact_summary}


def headers(role: str = "agent", name: str = "K. Takano") -> dict[str, str]:
    from casedesk.services.tokens import issue_token

    token = issue_token(SECRET, sub=f"{role}-{uuid.uuid4().hex[:6]}", name=name, role=role,  # type: ignore[arg-type]
                        departments=("fraud",), ttl=3600)
    return {"Authorization": f"Bearer {token}"}


AGENT = headers()
ADMIN = headers("admin", "R. Admin")


async def work_a_case(client: TestClient, who: Customer) -> tuple[str, int]:
    """A case with every kind of personal data: opened, a call, a daytime phone, a note, a resolution."""
    body = new_case_body(summary=who.summary)
    body["customer"].update(customer_id=who.customer_id, name=who.name, registered_phone=who.phone)
    r = await client.post("/v1/cases", json=body, headers=AGENT)
    assert r.status == 201, await r.text()
    case_id = (await r.json())["case_id"]
    r = await client.post(f"/v1/cases/{case_id}/contacts", headers=AGENT, json={
        "direction": "outbound", "channel": "phone", "phone": who.phone, "department": "fraud",
        "purpose": "confirm a charge"})
    contact = (await r.json())["contact_id"]
    steps: list[tuple[str, dict[str, Any]]] = [
        (f"/v1/cases/{case_id}/identity-checks", {"contact_id": contact, "method": "knowledge_based",
                                                  "passed": True, "factors": ["date_of_birth"]}),
        (f"/v1/cases/{case_id}/contact-details", {"contact_id": contact, "daytime_phone": who.daytime}),
        (f"/v1/cases/{case_id}/notes", {"text": who.note, "pinned": True}),
        (f"/v1/cases/{case_id}/contacts/{contact}/end", {"outcome": "connected", "summary": who.contact_summary}),
    ]
    position = 0
    for path, step in steps:
        r = await client.post(path, json=step, headers=AGENT)
        assert r.status in (200, 201), (path, await r.text())
        position = (await r.json())["position"]
    return case_id, position


async def reads(client: TestClient, case_id: str, position: int, role_headers: dict[str, str]) -> str:
    """Everything a reader sees of the case: view, timeline, history (where the role may read them)."""
    seen = []
    for path in (f"/v1/cases/{case_id}", f"/v1/cases/{case_id}/timeline", f"/v1/cases/{case_id}/history"):
        r = await client.get(path, params={"min_position": str(position)} if "history" not in path else None,
                             headers=role_headers)
        if r.status != 403:
            assert r.status == 200, (path, await r.text())
            seen.append(await r.text())
    return "\n".join(seen)


def found_in(text: str, who: Customer) -> list[str]:
    return [what for what, value in who.secrets().items() if value in text]


async def test_after_erasure_the_dump_and_the_log_hold_none_of_the_customers_data(
    app_client: TestClient, own_dsn: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    client = app_client
    who, bystander = Customer(), Customer()
    case_id, position = await work_a_case(client, who)
    other_case, _ = await work_a_case(client, bystander)
    view = await reads(client, case_id, position, AGENT)
    assert who.name[0] in view and who.note in view and who.summary in view  # readers see the data

    before = pg_dump(own_dsn)
    assert found_in(before, who) == []  # sealed at rest, from the first write
    assert set(found_in(await opened(own_dsn, before), who)) >= {"summary", "note", "contact summary", "daytime",
                                                                   "phone last4"}
    verified = await asyncio.to_thread(audit_verify, own_dsn, tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr

    r = await client.post(f"/v1/customers/{who.customer_id}/erasure", json={"reason": "retention ended"},
                          headers=ADMIN)
    assert r.status == 200, await r.text()
    erased = await r.json()
    assert erased["customer_id"] == who.customer_id and erased["cases"] == [case_id] and erased["erased_at"]

    after = pg_dump(own_dsn)
    assert found_in(after, who) == [] and found_in(await opened(own_dsn, after), who) == []
    assert found_in(await opened(own_dsn, after), bystander) != []  # another customer's data is untouched
    verified = await asyncio.to_thread(audit_verify, own_dsn, tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr

    log = capfd.readouterr()
    assert f"/v1/customers/{who.customer_id}/erasure" in log.out + log.err  # the log was captured
    assert found_in(log.out + log.err, who) == []
    assert other_case != case_id


async def test_reads_by_every_role_show_the_skeleton_and_lookup_no_longer_finds_the_customer(
    app_client: TestClient,
) -> None:
    client = app_client
    who = Customer()
    case_id, position = await work_a_case(client, who)
    r = await client.get("/v1/lookup", params={"phone": who.phone, "min_position": str(position)}, headers=AGENT)
    assert [c["customer_id"] for c in (await r.json())["customers"]] == [who.customer_id]

    r = await client.post(f"/v1/customers/{who.customer_id}/erasure", json={"reason": "customer's request"},
                          headers=ADMIN)
    assert r.status == 200
    for role in ("agent", "supervisor", "auditor", "admin"):
        seen = await reads(client, case_id, 0, headers(role))
        assert found_in(seen, who) == [], role
        assert "[erased]" in seen, role
        assert "4242" in seen and "19.95" in seen and "K. Takano" in seen, role  # last4, amount, actor remain
    r = await client.get(f"/v1/cases/{case_id}/timeline", headers=AGENT)
    assert "personal data erased by R. Admin (privacy): customer's request" in await r.text()

    r = await client.get("/v1/lookup", params={"phone": who.phone}, headers=AGENT)
    assert (await r.json())["customers"] == []
    r = await client.get("/v1/lookup", params={"name": who.name, "last4": "4242"}, headers=AGENT)
    assert (await r.json())["customers"] == []
    r = await client.get(f"/v1/cases/{case_id}/contact-details", headers={**AGENT, "X-Access-Reason": "dial"})
    assert r.status == 200 and (await r.json())["daytime_phone"] == "[erased]"


async def test_a_second_erasure_is_idempotent_unknown_is_404_and_only_admins_may(app_client: TestClient) -> None:
    client = app_client
    who = Customer()
    case_id, _ = await work_a_case(client, who)
    path = f"/v1/customers/{who.customer_id}/erasure"
    for role in ("agent", "supervisor", "auditor"):
        r = await client.post(path, json={"reason": "r"}, headers=headers(role))
        assert r.status == 403, role
    r = await client.post(path, json={"reason": "retention"}, headers={**ADMIN, "Idempotency-Key": "k" * 201})
    assert r.status == 422 and r.content_type == "application/problem+json"  # and nothing was erased:
    r = await client.get(f"/v1/cases/{case_id}/history", headers=ADMIN)
    assert "CustomerDataErased" not in [e["type"] for e in (await r.json())["events"]]
    first = await client.post(path, json={"reason": "retention"}, headers={**ADMIN, "Idempotency-Key": "erase-1"})
    second = await client.post(path, json={"reason": "retention"}, headers=ADMIN)
    assert first.status == second.status == 200
    assert await first.json() == await second.json()
    r = await client.get(f"/v1/cases/{case_id}/history", headers=ADMIN)
    types = [e["type"] for e in (await r.json())["events"]]
    assert types.count("CustomerDataErased") == 1

    r = await client.post(f"/v1/customers/cust-never-{uuid.uuid4().hex[:6]}/erasure", json={"reason": "r"},
                          headers=ADMIN)
    assert r.status == 404 and r.content_type == "application/problem+json"
    for bad in ({}, {"reason": ""}, {"reason": "r", "extra": 1}, [], "x"):
        r = await client.post(path, json=bad, headers=ADMIN)
        assert r.status == 422 and r.content_type == "application/problem+json", (bad, await r.text())
    r = await client.post(path, json={"reason": "   "}, headers=ADMIN)  # a rule, not the document's
    assert r.status == 409 and (await r.json())["type"].endswith("/erasure-needs-reason")


async def test_a_rebuild_from_zero_after_erasure_equals_the_live_read_model(
    app_client: TestClient, own_dsn: str
) -> None:
    client = app_client
    who = Customer()
    case_id, _ = await work_a_case(client, who)
    r = await client.post(f"/v1/customers/{who.customer_id}/erasure", json={"reason": "retention"},
                          headers=ADMIN)
    assert r.status == 200
    r = await client.post(f"/v1/cases/{case_id}/notes", json={"text": "after erasure", "pinned": False},
                          headers=AGENT)
    assert r.status in (201, 409), await r.text()
    runner: ProjectionRunner = client.server.app[RUNNER]
    await wait_until_caught_up(runner, "case_files")
    await runner.stop()
    pool = await create_pool(own_dsn, min_size=1, max_size=4)
    try:
        ids = [uuid.UUID(case_id)]
        live = await all_rows(pool, ids)
        fresh = ProjectionRunner(EventStore(pool), pool, [CaseFiles()])
        await rebuild(fresh, fresh.projections[0])
        await drain(fresh, fresh.projections[0])
        assert await all_rows(pool, ids) == live
        assert live["case_customers"] == []
    finally:
        await pool.close()


async def test_an_erasure_in_one_api_process_is_read_as_erased_in_the_other_at_once(
    aiohttp_client: Any, tmp_path: Path, own_dsn: str
) -> None:
    one = await aiohttp_client(create_app(erasure_settings(tmp_path / "one"), dsn=own_dsn))
    other = await aiohttp_client(create_app(erasure_settings(tmp_path / "other", projections="off"), dsn=own_dsn))
    who = Customer()
    case_id, position = await work_a_case(one, who)
    r = await other.get(f"/v1/cases/{case_id}", params={"min_position": str(position)}, headers=AGENT)
    assert who.summary in await r.text()  # the other process has the key in memory now
    r = await one.post(f"/v1/customers/{who.customer_id}/erasure", json={"reason": "request"}, headers=ADMIN)
    assert r.status == 200
    async with asyncio.timeout(5):
        while who.summary in (text := await (await other.get(f"/v1/cases/{case_id}", headers=AGENT)).text()):
            await asyncio.sleep(0.02)
    assert "[erased]" in text and re.search(r"\{\{cd1\.", text) is None


def casedesk_cli(dsn: str, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASEDESK_")}
    env |= {"DATABASE_URL": dsn, "CASEDESK_DATA_DIR": str(data_dir), "CASEDESK_AUDIT_KEY": AUDIT_KEY,
            "CASEDESK_MASTER_KEY": MASTER, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "casedesk.services.cli", *args], env=env, capture_output=True,
                          text=True, timeout=180)


async def test_retention_erases_the_customers_whose_cases_were_all_resolved_before_the_day(
    app_client: TestClient, own_dsn: str, tmp_path: Path
) -> None:
    from datetime import UTC, datetime, timedelta

    client = app_client
    done, still_open = Customer(), Customer()
    done_case, _ = await work_a_case(client, done)
    open_case, _ = await work_a_case(client, still_open)
    r = await client.post(f"/v1/cases/{done_case}/resolve", headers=AGENT,
                          json={"resolution": "fraud_confirmed", "summary": "card replaced"})
    assert r.status == 200, await r.text()
    await wait_until_caught_up(client.server.app[RUNNER], "case_files")
    today = datetime.now(UTC).date()
    args = ("erase", "--resolved-before", (today + timedelta(days=1)).isoformat())
    dry = await asyncio.to_thread(casedesk_cli, own_dsn, tmp_path, *args, "--dry-run")
    assert dry.returncode == 0 and "1 customer(s) past retention" in dry.stdout, dry.stdout + dry.stderr
    early = await asyncio.to_thread(casedesk_cli, own_dsn, tmp_path, "erase", "--resolved-before", today.isoformat(),
                                    "--dry-run")
    assert "0 customer(s) past retention" in early.stdout  # resolved today: not before today
    erased = await asyncio.to_thread(casedesk_cli, own_dsn, tmp_path, *args)
    assert erased.returncode == 0 and "1 customer(s) erased, on 1 case(s)" in erased.stdout, erased.stdout
    await asyncio.sleep(0.2)  # the NOTIFY reaches this app's process
    assert found_in(await reads(client, done_case, 0, ADMIN), done) == []
    assert found_in(await reads(client, open_case, 0, ADMIN), still_open) != []
    again = await asyncio.to_thread(casedesk_cli, own_dsn, tmp_path, *args)
    assert "0 customer(s) erased" in again.stdout


async def test_webhook_payloads_carry_the_clear_text_and_after_erasure_erased(
    app_client: TestClient, own_dsn: str
) -> None:
    from casedesk.services.effects.webhook_payloads import read_after
    from casedesk.services.store.event_mapper import CaseEventMapper

    client = app_client
    who = Customer()
    case_id, _ = await work_a_case(client, who)
    pool = await create_pool(own_dsn, min_size=1, max_size=2)
    try:
        def payloads(keys: CustomerKeys) -> Any:
            return read_after(pool, CaseEventMapper(), 0, 1000, ["*"], keys=keys)

        sender_keys = CustomerKeys(pool, MASTER)  # the webhook sender's, in its own process, LISTENing
        listening = sender_keys.listening(own_dsn)
        await listening.__aenter__()
        await asyncio.sleep(0.3)  # its LISTEN is in place
        deliveries, _, _ = await payloads(sender_keys)
        sent = b"\n".join(d.body for d in deliveries if str(d.case_id) == case_id).decode()
        assert who.note in sent and who.summary in sent and "{{cd1." not in sent
        r = await client.post(f"/v1/customers/{who.customer_id}/erasure", json={"reason": "r"}, headers=ADMIN)
        assert r.status == 200
        await asyncio.sleep(0.2)  # the NOTIFY; a sender that missed it would still find no key
        for keys in (sender_keys, CustomerKeys(pool, MASTER)):
            deliveries, _, _ = await payloads(keys)
            sent = b"\n".join(d.body for d in deliveries if str(d.case_id) == case_id).decode()
            assert found_in(sent, who) == [] and "[erased]" in sent and "CustomerDataErased" in sent
        await listening.__aexit__(None, None, None)
    finally:
        await pool.close()


async def test_a_process_that_missed_the_notify_forgets_the_key_once_it_reads_keys_again(
    app_client: TestClient, own_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from casedesk.services.privacy import customer_keys

    who = Customer()
    case_id, position = await work_a_case(app_client, who)
    r = await app_client.get(f"/v1/cases/{case_id}", params={"min_position": str(position)}, headers=AGENT)
    assert r.status == 200
    pool = await create_pool(own_dsn, min_size=1, max_size=2)
    try:
        view = bytes(await pool.fetchval("SELECT view FROM case_files WHERE case_id = $1", uuid.UUID(case_id)))
        assert who.summary.encode() not in view  # stored sealed
        deaf = CustomerKeys(pool, MASTER)  # never LISTENs: its NOTIFY is lost
        assert who.summary.encode() in await deaf.open_json(view)
        r = await app_client.post(f"/v1/customers/{who.customer_id}/erasure", json={"reason": "r"}, headers=ADMIN)
        assert r.status == 200
        assert who.summary.encode() in await deaf.open_json(view)  # trusted for KEYS_TRUSTED_SECONDS...
        monkeypatch.setattr(customer_keys, "KEYS_TRUSTED_SECONDS", 0.0)
        assert who.summary.encode() not in await deaf.open_json(view)  # ...then read again: gone
    finally:
        await pool.close()


async def test_a_note_just_written_answers_in_clear_and_its_replayed_answer_reads_erased_after_erasure(
        app_client: TestClient) -> None:
    # The answer is made from the note as decided (no token to open); the answer kept for the
    # Idempotency-Key holds the token only, so after erasure its replay reads "[erased]".
    client = app_client
    who = Customer()
    case_id, _ = await work_a_case(client, who)
    note = f"Second note for {who.name}"
    sent = {"text": note, "pinned": False}
    key = {**AGENT, "Idempotency-Key": f"note-{uuid.uuid4().hex}"}
    r = await client.post(f"/v1/cases/{case_id}/notes", json=sent, headers=key)
    assert r.status == 201 and note in await r.text()
    kept = await client.app[POOL].fetchval("SELECT response FROM idempotency_keys"
                                           " ORDER BY created_at DESC LIMIT 1")
    assert note.encode() not in kept and b"{{cd1." in kept
    r = await client.post(f"/v1/cases/{case_id}/notes", json=sent, headers=key)  # the kept answer, opened
    assert r.status == 201 and note in await r.text()

    r = await client.post(f"/v1/customers/{who.customer_id}/erasure", json={"reason": "customer's request"},
                          headers=ADMIN)
    assert r.status == 200
    r = await client.post(f"/v1/cases/{case_id}/notes", json=sent, headers=key)
    replayed = await r.text()
    assert r.status == 201 and note not in replayed and "[erased]" in replayed


async def test_a_note_is_answered_from_the_text_as_sent_without_opening_a_token(
        app_client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    client = app_client
    who = Customer()
    case_id, _ = await work_a_case(client, who)
    opened: list[bytes] = []
    open_json = CustomerKeys.open_json

    async def counting(self: CustomerKeys, body: bytes) -> bytes:
        opened.append(body)
        return await open_json(self, body)

    monkeypatch.setattr(CustomerKeys, "open_json", counting)
    note = f"Third note for {who.name}"
    r = await client.post(f"/v1/cases/{case_id}/notes", json={"text": note, "pinned": True}, headers=AGENT)
    answer = await r.json()
    assert r.status == 201 and answer["text"] == note
    assert opened == []  # the answer held no token: nothing was decrypted to make it
    r = await client.get(f"/v1/cases/{case_id}", params={"min_position": answer["position"]}, headers=AGENT)
    assert note in await r.text() and opened  # reads still open what is stored


async def test_a_note_holding_a_token_shaped_text_answers_it_as_sent_and_its_replay_the_same(
        app_client: TestClient) -> None:
    client = app_client
    case_id, _ = await work_a_case(client, Customer())
    text = "pasted from a chat: {{cd1." + "A" * 22 + "." + "B" * 40 + "}} (no idea what it is)"
    key = {**AGENT, "Idempotency-Key": f"note-{uuid.uuid4().hex}"}
    first = await client.post(f"/v1/cases/{case_id}/notes", json={"text": text}, headers=key)
    again = await client.post(f"/v1/cases/{case_id}/notes", json={"text": text}, headers=key)
    assert (first.status, again.status) == (201, 201)
    assert (await first.json())["text"] == (await again.json())["text"] == text


async def test_a_text_that_only_starts_like_a_sealed_token_is_sealed_and_erased_like_any_text(
        app_client: TestClient) -> None:
    # Only one whole token is taken as already sealed: a note that merely begins with "{{cd1." was
    # stored in the clear and outlived the customer's erasure.
    client = app_client
    who = Customer()
    case_id, _ = await work_a_case(client, who)
    note = "{{cd1.not-a-token}} " + who.note
    r = await client.post(f"/v1/cases/{case_id}/notes", json={"text": note, "pinned": False}, headers=AGENT)
    assert r.status == 201 and who.note in await r.text()
    r = await client.post(f"/v1/customers/{who.customer_id}/erasure", json={"reason": "customer's request"},
                          headers=ADMIN)
    assert r.status == 200
    r = await client.get(f"/v1/cases/{case_id}/timeline", headers=ADMIN)
    assert r.status == 200 and who.note not in await r.text()
