"""The casedesk command, run as a user would: help, token, serve (embedded PostgreSQL), rebuild, migrate."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import jwt
import pytest

from casedesk.services.tokens import key_id

CASEDESK = [sys.executable, "-m", "casedesk.services.cli"]


def run(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(CASEDESK + args, env=env, capture_output=True, text=True, timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(method: str, url: str, token: str | None = None, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if data:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read() or b"{}")


@pytest.fixture
def embedded_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CASEDESK_TOKEN_SECRET")}
    env["CASEDESK_DATA_DIR"] = str(tmp_path / "data")
    return env


def test_help_lists_every_command(embedded_env: dict[str, str]) -> None:
    out = run(["--help"], embedded_env).stdout
    for command in ("serve", "migrate", "rebuild", "token", "audit"):
        assert command in out
    assert "DATABASE_URL" in out
    for command in ("serve", "migrate", "rebuild", "token"):
        assert run([command, "--help"], embedded_env).returncode == 0


def test_token_is_signed_with_the_secret_in_the_data_directory(embedded_env: dict[str, str]) -> None:
    done = run(["token", "--sub", "a1", "--name", "K. Takano", "--role", "agent", "--departments", "fraud,credit_management"], embedded_env)
    assert done.returncode == 0, done.stderr
    secret = (Path(embedded_env["CASEDESK_DATA_DIR"]) / "token_secret").read_text()
    claims = jwt.decode(done.stdout.strip(), secret, algorithms=["HS256"])
    assert claims["departments"] == ["fraud", "credit_management"] and claims["role"] == "agent"
    # Which secret signed it is said on stderr (the file's path and a key id), the secret never.
    assert str(Path(embedded_env["CASEDESK_DATA_DIR"]) / "token_secret") in done.stderr
    assert f"key {key_id(secret)}" in done.stderr
    assert secret not in done.stderr + done.stdout.replace(done.stdout.strip(), "")
    with_variable = run(["token", "--sub", "a1", "--role", "agent"], {**embedded_env, "CASEDESK_TOKEN_SECRET": "s" * 40})
    assert "CASEDESK_TOKEN_SECRET" in with_variable.stderr and "s" * 40 not in with_variable.stderr


def test_the_phone_system_gets_a_service_token_of_role_ivr(embedded_env: dict[str, str]) -> None:
    done = run(["token", "--sub", "ivr-1", "--name", "IVR", "--role", "ivr", "--departments", ""], embedded_env)
    assert done.returncode == 0, done.stderr
    secret = (Path(embedded_env["CASEDESK_DATA_DIR"]) / "token_secret").read_text()
    claims = jwt.decode(done.stdout.strip(), secret, algorithms=["HS256"])
    assert (claims["role"], claims["departments"]) == ("ivr", [])


def serve(env: dict[str, str], port: int) -> subprocess.Popen[str]:
    process = subprocess.Popen([*CASEDESK, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if http("GET", f"http://127.0.0.1:{port}/healthz")[0] == 200:
                return process
        except OSError:
            time.sleep(0.2)
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
    process.kill()
    raise AssertionError("casedesk serve did not answer /healthz within 60 s")


def stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0


def test_serve_on_embedded_postgres_keeps_data_across_restarts(embedded_env: dict[str, str]) -> None:
    port = free_port()
    process = serve(embedded_env, port)
    try:
        token = run(["token", "--sub", "a1", "--role", "agent"], embedded_env).stdout.strip()
        status, opened = http("POST", f"http://127.0.0.1:{port}/v1/cases", token, {
            "customer": {"customer_id": "c1", "name": "Taro Yamada", "registered_phone": "+81 90 1234 5678"},
            "cards": [{"card_id": "p", "last4": "4242", "network": "visa", "kind": "primary"}],
            "reason": "fraud_alert", "channel": "phone", "summary": "alert"})
        assert status == 201
        assert http("GET", f"http://127.0.0.1:{port}/readyz")[1]["ready"] is True
    finally:
        stop(process)
    process = serve(embedded_env, port)  # the same data directory: the same database
    try:
        status, view = http("GET", f"http://127.0.0.1:{port}/v1/cases/{opened['case_id']}", token)
        assert status == 200 and view["version"] == 1
    finally:
        stop(process)
    rebuilt = run(["rebuild"], embedded_env)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "case_files: rebuilt at" in rebuilt.stdout
    assert run(["rebuild", "no_such_projection"], embedded_env).returncode == 2
    in_parts = run(["rebuild", "--workers", "2"], embedded_env)  # two processes, split by case
    assert in_parts.returncode == 0, in_parts.stderr
    assert "case_files: rebuilt at" in in_parts.stdout
    process = serve(embedded_env, port)
    try:  # what the parts wrote is what the case view reads
        status, view = http("GET", f"http://127.0.0.1:{port}/v1/cases/{opened['case_id']}", token)
        assert status == 200 and view["version"] == 1
        assert http("GET", f"http://127.0.0.1:{port}/readyz")[1]["ready"] is True
    finally:
        stop(process)
    assert run(["rebuild", "--workers", "0"], embedded_env).returncode == 2


def test_migrate_uses_database_url_when_set(database_dsn: str, embedded_env: dict[str, str]) -> None:
    env = {**embedded_env, "DATABASE_URL": database_dsn}
    done = run(["migrate"], env)
    assert done.returncode == 0, done.stderr
    assert "applied" in done.stdout
    assert not (Path(embedded_env["CASEDESK_DATA_DIR"]) / "pg").exists()  # no embedded server was started


def test_project_runs_the_workers_alone_and_stops_cleanly(database_dsn: str, embedded_env: dict[str, str]) -> None:
    import asyncio
    import uuid as _uuid

    import asyncpg

    from tests.api.conftest import with_schema
    from tests.conftest import new_schema

    schema = asyncio.run(new_schema(database_dsn))
    env = {**embedded_env, "DATABASE_URL": with_schema(database_dsn, schema)}
    worker = subprocess.Popen([*CASEDESK, "project"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    async def merchant_flag_then_position() -> int | None:
        from datetime import UTC, datetime

        from casedesk.domain.merchants import flag_merchant
        from casedesk.domain.values import Actor
        from casedesk.services.store.event_mapper import CaseEventMapper

        [event] = flag_merchant(0, actor=Actor(id="s", name="S", role="supervisor", department="fraud"),
                                at=datetime.now(UTC), merchant=f"M{_uuid.uuid4().hex[:6]}", reason="r")
        stored = CaseEventMapper().to_stored_event(event)
        conn = await asyncpg.connect(database_dsn, server_settings={"search_path": schema})
        try:
            await conn.execute("INSERT INTO case_events (originator_id, originator_version, topic, state) VALUES ($1, $2, $3, $4)",
                               stored.originator_id, stored.originator_version, stored.topic, stored.state)
            await conn.execute("NOTIFY case_events")
            for _ in range(100):
                position = await conn.fetchval("SELECT notification_id FROM projection_tracking WHERE application_name = 'case_files'")
                if position:
                    return position
                await asyncio.sleep(0.1)
            return None
        finally:
            await conn.close()

    try:
        assert asyncio.run(merchant_flag_then_position()) == 1  # the worker applied it
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
