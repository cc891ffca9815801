"""The webhook sender rests while the machine's CPUs are busy with others' work, for at most
CASEDESK_WEBHOOK_PEAK_DELAY seconds (services/effects/peak_yield.py, issue 17's cost)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from aiohttp.test_utils import TestClient

from casedesk.services.effects.peak_yield import CpuGauge, PeakYield
from casedesk.services.settings import SettingsError, load_settings
from tests.api.conftest import new_case_body
from tests.effects.test_webhook_delivery import Processes, api, processes, schema_dsn, until

__all__ = ["api", "processes", "schema_dsn"]  # the delivery tests' fixtures, used here too

HZ = 100


def test_a_peak_holds_webhooks_back_30_seconds_at_most_unless_told_otherwise(tmp_path: Path) -> None:
    base = {"CASEDESK_DATA_DIR": str(tmp_path)}
    assert load_settings(base).webhook_peak_delay == 30.0
    assert load_settings({**base, "CASEDESK_WEBHOOK_PEAK_DELAY": "0"}).webhook_peak_delay == 0.0
    assert load_settings({**base, "CASEDESK_WEBHOOK_PEAK_DELAY": "2.5"}).webhook_peak_delay == 2.5
    for wrong in ("-1", "soon", "3601", "nan"):
        with pytest.raises(SettingsError, match="CASEDESK_WEBHOOK_PEAK_DELAY"):
            load_settings({**base, "CASEDESK_WEBHOOK_PEAK_DELAY": wrong})


def _stat(path: Path, user: int, nice: int, system: int, idle: int, iowait: int) -> None:
    path.write_text(f"cpu  {user} {nice} {system} {idle} {iowait} 0 0 0 0 0\ncpu0 0 0 0 0 0 0 0 0 0 0\n")


def test_the_gauge_counts_others_work_not_niced_work_idle_time_or_its_own(tmp_path: Path,
                                                                         monkeypatch: Any) -> None:
    monkeypatch.setattr("casedesk.services.effects.peak_yield._TICKS", HZ)
    stat, own = tmp_path / "stat", [0.0]
    _stat(stat, user=1000, nice=500, system=1000, idle=7000, iowait=100)
    gauge = CpuGauge(stat, own=lambda: own[0])
    # Given 200 ticks: 80 user, 50 niced, 40 system (20 of them ours), 20 idle, 10 waiting on disk
    _stat(stat, user=1080, nice=550, system=1040, idle=7020, iowait=110)
    own[0] = 20 / HZ
    # Then others kept the CPUs busy 100 of the 200 ticks
    assert gauge.busy() == pytest.approx(0.5)
    # And an unreadable /proc/stat is "unknown", never "busy"
    stat.unlink()
    assert gauge.busy() is None


class _Gauge(CpuGauge):
    def __init__(self, busy: float | None) -> None:
        self.share = busy

    def busy(self) -> float | None:
        return self.share


def test_the_sender_rests_while_others_saturate_the_cpus_until_it_lags_too_long() -> None:
    now = [100.0]
    gauge = _Gauge(0.95)
    peak = PeakYield(30.0, 0.8, gauge=gauge, clock=lambda: now[0])
    webhook = uuid4()
    # Given a follower that just read to the log's end, on a machine busy with others' work
    peak.read(webhook, at_end=True)
    # Then it rests
    assert peak.should_rest(webhook)
    # When it has not stood at the log's end for 30 s (a long peak)
    now[0] += 10
    peak.read(webhook, at_end=False)
    assert peak.should_rest(webhook)
    now[0] += 20
    # Then it delivers, at its niceness's share, however busy the machine is
    assert not peak.should_rest(webhook)
    # When it has caught up again
    peak.read(webhook, at_end=True)
    assert peak.should_rest(webhook)
    # When the machine is not that busy, or its load is unknown, it never rests
    gauge.share = 0.79
    assert not peak.should_rest(webhook)
    gauge.share = None
    assert not peak.should_rest(webhook)


def test_a_peak_delay_of_0_never_rests() -> None:
    peak = PeakYield(0.0)
    webhook = uuid4()
    peak.read(webhook, at_end=True)
    assert not peak.should_rest(webhook)


_SPIN = "import time\nend = time.monotonic() + 120\nwhile time.monotonic() < end: pass\n"


async def test_a_real_sender_holds_deliveries_back_while_the_cpus_are_saturated_then_delivers(
    api: TestClient, auth: Any, processes: Processes
) -> None:
    admin, agent = auth("admin"), auth("agent")
    receiver = await processes.start_receiver()
    created = await api.post("/v1/webhooks", headers=admin, json={"url": receiver + "/hook",
                                                                  "event_types": ["CaseOpened"]})
    assert created.status == 201, await created.text()
    processes.secret_file.write_text((await created.json())["secret"])
    processes.start_sender(CASEDESK_WEBHOOK_PEAK_DELAY="6")
    first = await api.post("/v1/cases", headers=agent, json=new_case_body())
    assert first.status == 201
    await until(lambda: _holds(processes, 1), "the first case to be delivered")

    # Given both CPUs kept busy by other processes at the API's priority
    spinners = [await asyncio.create_subprocess_exec(sys.executable, "-c", _SPIN) for _ in range(2)]
    try:
        await asyncio.sleep(1.5)  # (the sender's next look at the CPUs sees them busy)
        # When a case is opened
        opened = await api.post("/v1/cases", headers=agent, json=new_case_body())
        assert opened.status == 201
        written = time.monotonic()
        # Then it is not sent at once: without resting, a niced sender would post it within
        # milliseconds; resting, it waits until it has lagged 6 s since it last stood at the log's end
        await asyncio.sleep(1.5)
        assert len(_bodies(processes)) == 1
        # But it is sent once the peak has held it back that long, though the CPUs are still busy
        await until(lambda: _holds(processes, 2), "the held-back case to be delivered", seconds=60)
        assert time.monotonic() - written < 60
        assert json.loads(_bodies(processes)[1])["data"]["case_id"] == (await opened.json())["case_id"]
    finally:
        for spinner in spinners:
            spinner.kill()
            await spinner.wait()


def _bodies(processes: Processes) -> list[str]:
    return [item["body"] for item in processes.received()]


async def _holds(processes: Processes, count: int) -> bool:
    return len(_bodies(processes)) >= count
