"""The webhook sender yields the cores to the API: `casedesk webhooks` runs niced (issue 17's cost)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.api.conftest import with_schema
from tests.conftest import new_schema
from tests.number_settings import check_number_setting


def test_the_sender_is_niced_by_ten_unless_told_otherwise(tmp_path: Any) -> None:
    check_number_setting(tmp_path, "CASEDESK_WEBHOOK_NICE", "webhook_nice", 10, ("0", 0), ("-5", "20", "low"))


def test_a_running_sender_process_has_the_niceness_asked_for(tmp_path: Path, database_dsn: str) -> None:
    # The suite's database (DATABASE_URL or the embedded one), as CI runs it.
    dsn = with_schema(database_dsn, asyncio.run(new_schema(database_dsn)))
    env = {**os.environ, "DATABASE_URL": dsn, "CASEDESK_DATA_DIR": str(tmp_path), "CASEDESK_WEBHOOK_NICE": "7",
           "CASEDESK_LOG_LEVEL": "warning"}
    process = subprocess.Popen([sys.executable, "-m", "casedesk.services.cli", "webhooks"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            line = process.stderr.readline() if process.stderr else ""
            if "webhook sender running" in line:
                break
        assert process.poll() is None, "the sender stopped"
        # os.nice adds to the niceness it inherits, and the kernel stops at 19 (a suite run niced).
        assert os.getpriority(os.PRIO_PROCESS, process.pid) == min(os.getpriority(os.PRIO_PROCESS, 0) + 7, 19)
    finally:
        process.terminate()
        process.wait(timeout=30)
