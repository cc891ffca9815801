"""`casedesk serve` runs the projections in a worker process of its own, and looks after it.

Run as a user would: the real command, on its own schema of the test database.
The API process does not project (CASEDESK_PROJECTIONS defaults to `process`),
so a case reaching its queue proves the worker works; the worker is restarted
when it dies, stopped with serve, and stops by itself when serve is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.api.conftest import with_schema
from tests.cli.test_commands import CASEDESK, free_port, http, run, serve, stop
from tests.conftest import new_schema


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def wait_for(condition, seconds: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.fixture
def env(tmp_path: Path, database_dsn: str) -> dict[str, str]:
    if not Path("/proc/self/task").exists():
        pytest.skip("reads child processes from /proc (Linux)")
    schema = asyncio.run(new_schema(database_dsn))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CASEDESK_")}
    # The card processor's children are another test's (tests/effects/processor/test_serve_runs_the_processor.py);
    # the webhook sender is serve's other child (CASEDESK_WEBHOOKS): these tests count the projection worker.
    return {**environ, "CASEDESK_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": with_schema(database_dsn, schema),
            "CASEDESK_PROCESSOR_INSTRUCTIONS": "off", "CASEDESK_WEBHOOKS": "off"}


def open_alert(port: int, token: str) -> tuple[str, int]:
    status, opened = http("POST", f"http://127.0.0.1:{port}/v1/cases", token, {
        "customer": {"customer_id": "c1", "name": "Taro Yamada", "registered_phone": "+81 90 1234 5678"},
        "cards": [{"card_id": "p", "last4": "4242", "network": "visa", "kind": "primary"}],
        "reason": "fraud_alert", "channel": "phone", "summary": "alert"})
    assert status == 201
    return opened["case_id"], opened["position"]


def queued(port: int, token: str, position: int) -> list[str]:
    status, page = http("GET", f"http://127.0.0.1:{port}/v1/queues/fraud_alerts/items?min_position={position}"
                        "&limit=500", token)
    assert status == 200
    return [item["case_id"] for item in page["items"]]


def serve_with_worker(env: dict[str, str], port: int) -> tuple[subprocess.Popen[str], int]:
    """`casedesk serve` answering, and the pid of its one worker child."""
    process = serve(env, port)
    try:
        wait_for(lambda: len(children(process.pid)) == 1)
    except AssertionError:
        process.kill()
        raise
    [worker] = children(process.pid)
    return process, worker


def test_serve_projects_in_a_worker_it_restarts_and_stops(env: dict[str, str]) -> None:
    port = free_port()
    process, worker = serve_with_worker(env, port)
    try:
        token = run(["token", "--sub", "a1", "--role", "agent"], env).stdout.strip()
        case_id, position = open_alert(port, token)
        assert case_id in queued(port, token, position)

        os.kill(worker, signal.SIGKILL)  # the worker dies mid-work: serve starts another
        wait_for(lambda: not alive(worker) and len(children(process.pid)) == 1 and children(process.pid) != [worker])
        case_id, position = open_alert(port, token)
        assert case_id in queued(port, token, position)
        [worker] = children(process.pid)
    finally:
        stop(process)
    assert not alive(worker)  # stopped with serve


def test_a_worker_whose_serve_was_killed_stops_by_itself(env: dict[str, str]) -> None:
    process, worker = serve_with_worker(env, free_port())
    try:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        wait_for(lambda: not alive(worker), seconds=10)
    finally:
        if process.poll() is None:
            process.kill()


def test_in_process_and_off_are_still_there(env: dict[str, str]) -> None:
    for mode in ("in-process", "off"):
        port = free_port()
        process = serve({**env, "CASEDESK_PROJECTIONS": mode}, port)
        try:
            time.sleep(0.5)
            assert children(process.pid) == []
            token = run(["token", "--sub", "a1", "--role", "agent"], env).stdout.strip()
            case_id, position = open_alert(port, token)
            if mode == "in-process":
                assert case_id in queued(port, token, position)
        finally:
            stop(process)
    done = subprocess.run([*CASEDESK, "serve"], env={**env, "CASEDESK_PROJECTIONS": "sometimes"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == "casedesk: CASEDESK_PROJECTIONS='sometimes': expected process, in-process or off"


def test_serve_sends_webhooks_from_a_child_it_stops(env: dict[str, str]) -> None:
    process = serve({**env, "CASEDESK_PROJECTIONS": "off", "CASEDESK_WEBHOOKS": "process"}, free_port())
    try:
        wait_for(lambda: len(children(process.pid)) == 1)
        [sender] = children(process.pid)
        assert Path(f"/proc/{sender}/cmdline").read_bytes().split(b"\0")[-2] == b"webhooks"
    finally:
        stop(process)
    assert not alive(sender)


async def test_the_supervisor_keeps_trying_when_a_worker_cannot_be_started() -> None:
    from casedesk.services.projection_worker import WorkerProcess

    class Flaky(WorkerProcess):
        """Its child exits at once; the next start fails twice (as a fork or exec can), then works."""

        not_started_retry_seconds = 0.05
        failures = 2

        async def _spawn(self) -> None:
            if self.starts == 1 and self.failures:
                self.failures -= 1
                raise OSError("Too many open files")
            self.command = (sys.executable, "-c", f"import time; time.sleep({0 if self.starts == 0 else 60})")
            await super()._spawn()

    worker = Flaky(dict(os.environ))
    await worker.start()
    try:
        deadline = time.monotonic() + 10
        while worker.starts < 2:
            assert time.monotonic() < deadline, "the supervisor gave up after a failed start"
            await asyncio.sleep(0.05)
        assert worker.failures == 0 and worker.pid is not None and alive(worker.pid)
    finally:
        await worker.stop()
    assert not alive(worker.pid)


def _history_children(pid: int) -> list[int]:
    """serve's children that the history process brought: its worker and multiprocessing's resource tracker."""
    found = []
    for child in children(pid):
        with contextlib.suppress(FileNotFoundError):
            if b"multiprocessing" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
    return found


@pytest.mark.parametrize("ending", ["stopped", "killed"])
def test_the_history_process_goes_with_serve(env: dict[str, str], ending: str) -> None:
    port = free_port()
    process, _ = serve_with_worker(env, port)
    try:
        agent = run(["token", "--sub", "a1", "--role", "agent"], env).stdout.strip()
        auditor = run(["token", "--sub", "au1", "--role", "auditor"], env).stdout.strip()
        case_id, _ = open_alert(port, agent)
        assert _history_children(process.pid) == []  # none until a history is asked for
        status, history = http("GET", f"http://127.0.0.1:{port}/v1/cases/{case_id}/history", auditor)
        assert status == 200 and history["events"][0]["type"] == "CaseOpened"
        brought = _history_children(process.pid)
        assert brought
        if ending == "stopped":
            stop(process)
        else:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
        wait_for(lambda: not any(alive(p) for p in brought), seconds=20)
    finally:
        if process.poll() is None:
            process.kill()


# A parent as serve is to its worker, holding the only reading end of the worker's stderr.
PARENT = """
import os, subprocess, sys, time
worker = subprocess.Popen(sys.argv[1:], env={**os.environ, "CASEDESK_PARENT_PID": str(os.getpid())},
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
for line in worker.stderr:
    if "projection worker running" in line:
        break
print(worker.pid, flush=True)
time.sleep(600)
"""


def test_the_worker_stops_when_its_parent_is_killed_and_its_stderr_is_gone(env: dict[str, str]) -> None:
    # Given a projection worker whose parent reads its stderr
    parent = subprocess.Popen([sys.executable, "-c", PARENT, *CASEDESK, "project"], env=env,
                              stdout=subprocess.PIPE, text=True)
    worker = 0
    try:
        assert parent.stdout is not None
        worker = int(parent.stdout.readline())
        # When the parent is killed, and the pipe of the worker's stderr goes with it
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        # Then the worker stops all the same (its warning of the fact fails: it used to stop the watch)
        wait_for(lambda: not alive(worker), seconds=20)
    finally:
        if worker and alive(worker):
            os.kill(worker, signal.SIGKILL)
        if parent.poll() is None:
            parent.kill()
