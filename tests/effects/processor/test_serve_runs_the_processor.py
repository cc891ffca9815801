"""`casedesk serve` with no CASEDESK_PROCESSOR_URL: the simulator and the sender run as children it looks after.

Run as a user would (`make serve` on a fresh machine): a suspension comes back
confirmed by the processor with nothing else started; the sender, killed, is
started again and picks up where it stood; stopping serve stops them all.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from tests.api.conftest import with_schema
from tests.cli.test_commands import free_port, http, run, serve, stop
from tests.cli.test_serve_worker import alive, children, wait_for
from tests.conftest import new_schema


def command_of(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_text().split("\0")


def child_running(pid: int, command: str) -> int | None:
    found = [c for c in children(pid) if command in command_of(c)]
    return found[0] if found else None


@pytest.fixture
def env(tmp_path: Path, database_dsn: str) -> dict[str, str]:
    if not Path("/proc/self/task").exists():
        pytest.skip("reads child processes from /proc (Linux)")
    schema = asyncio.run(new_schema(database_dsn))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CASEDESK_")}
    return {**environ, "CASEDESK_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": with_schema(database_dsn, schema),
            "CASEDESK_PROCESSOR_RETRY_MAX": "0.5"}


def suspend_a_card(port: int, token: str, card: str) -> str:
    base = f"http://127.0.0.1:{port}/v1/cases"
    status, opened = http("POST", base, token, {
        "customer": {"customer_id": "c1", "name": "Taro Yamada", "registered_phone": "+81 90 1234 5678"},
        "cards": [{"card_id": card, "last4": "4242", "network": "visa", "kind": "primary"}],
        "reason": "fraud_alert", "channel": "phone", "summary": "alert"})
    assert status == 201
    status, _ = http("POST", f"{base}/{opened['case_id']}/cards/{card}/suspend", token,
                     {"reason": "fraud", "include_linked": False})
    assert status == 200
    return str(opened["case_id"])


def confirmed(port: int, token: str, case_id: str) -> bool:
    _, view = http("GET", f"http://127.0.0.1:{port}/v1/cases/{case_id}", token)
    return [i["state"] for i in view["instructions"]] == ["confirmed"]


def test_serve_starts_the_simulator_and_the_sender_and_restarts_the_sender(env: dict[str, str]) -> None:
    port = free_port()
    process = serve(env, port)
    try:
        wait_for(lambda: None not in (child_running(process.pid, "processor-sim"),
                                      child_running(process.pid, "processor-instructions"),
                                      child_running(process.pid, "project")))
        sim, sender = child_running(process.pid, "processor-sim"), child_running(process.pid, "processor-instructions")
        assert sim is not None and sender is not None
        token = run(["token", "--sub", "a1", "--role", "agent"], env).stdout.strip()
        case_id = suspend_a_card(port, token, "card-1")
        wait_for(lambda: confirmed(port, token, case_id), seconds=30)

        os.kill(sender, signal.SIGKILL)  # serve starts another; it finds its position and goes on
        wait_for(lambda: child_running(process.pid, "processor-instructions") not in (None, sender))
        case_id = suspend_a_card(port, token, "card-2")
        wait_for(lambda: confirmed(port, token, case_id), seconds=30)
        sender = child_running(process.pid, "processor-instructions")
    finally:
        stop(process)
    deadline = time.monotonic() + 10
    while (alive(sim) or (sender is not None and alive(sender))) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(sim) and (sender is None or not alive(sender))  # stopped with serve


def test_the_simulator_the_sender_and_the_worker_stop_by_themselves_when_serve_is_killed(env: dict[str, str]) -> None:
    process = serve(env, free_port())
    try:
        names = ("processor-sim", "processor-instructions", "project")
        wait_for(lambda: None not in [child_running(process.pid, name) for name in names])
        pids = [child_running(process.pid, name) for name in names]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        wait_for(lambda: not any(alive(pid) for pid in pids if pid is not None), seconds=15)
    finally:
        if process.poll() is None:
            process.kill()
