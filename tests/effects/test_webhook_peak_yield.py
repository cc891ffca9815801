"""The webhook sender rests while the machine's CPUs are busy with others' work, for at most
CASEDESK_WEBHOOK_PEAK_DELAY seconds (services/effects/peak_yield.py, issue 17's cost)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from aiohttp.test_utils import TestClient

from casedesk.services.effects.peak_yield import SHORTEST_LOOK, CpuGauge, CpuLoad, PeakYield
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


def test_the_gauge_tells_all_work_from_others_work_at_normal_priority(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr("casedesk.services.effects.peak_yield._TICKS", HZ)
    stat, own, now = tmp_path / "stat", [0.0], [0.0]
    _stat(stat, user=1000, nice=500, system=1000, idle=7000, iowait=100)
    gauge = CpuGauge(stat, own=lambda: own[0], clock=lambda: now[0])
    # Given 200 ticks: 80 user, 50 niced, 40 system (20 of them ours), 20 idle, 10 waiting on disk
    _stat(stat, user=1080, nice=550, system=1040, idle=7020, iowait=110)
    own[0], now[0] = 20 / HZ, 1.0
    # Then the CPUs were busy 170 of the 200 ticks, with others' work at normal priority 100
    assert gauge.load() == pytest.approx(CpuLoad(everyone=0.85, others=0.5))
    # And a second follower looking within SHORTEST_LOOK gets that load, not "unknown"
    _stat(stat, user=1081, nice=550, system=1040, idle=7020, iowait=110)
    now[0] += SHORTEST_LOOK / 2
    assert gauge.load() == pytest.approx(CpuLoad(everyone=0.85, others=0.5))
    # And an unreadable /proc/stat is "unknown", never "busy"
    stat.unlink()
    now[0] += 1
    assert gauge.load() is None


_BURN = ("import os, time\n"
         "from casedesk.services.effects.peak_yield import own_process_seconds\n"
         "end = time.monotonic() + 0.5\n"  # (the clock is read in user space: user time)
         "while time.monotonic() < end: pass\n"
         "print(own_process_seconds(), os.times().user)\n")


@pytest.mark.parametrize("nice", [0, 5])
def test_a_sender_process_counts_its_user_time_as_its_own_only_when_not_niced(nice: int) -> None:
    if nice == 0 and os.getpriority(os.PRIO_PROCESS, 0) > 0:
        pytest.skip("the suite runs niced")
    out = subprocess.run(["nice", "-n", str(nice), sys.executable, "-c", _BURN], capture_output=True, text=True,
                         check=True).stdout.split()
    own, user = float(out[0]), float(out[1])
    assert user >= 0.3
    if nice == 0:
        assert own >= user  # /proc/stat counts its user time as busy: it is taken off
    else:
        assert own < user / 2  # counted as niced, not busy: only its (small) system time is taken off


class _Gauge(CpuGauge):
    def __init__(self, everyone: float, others: float) -> None:
        self.now: CpuLoad | None = CpuLoad(everyone, others)

    def load(self) -> CpuLoad | None:
        return self.now


def test_a_rest_starts_when_the_cpus_are_saturated_and_goes_on_while_others_keep_them_busy() -> None:
    gauge = _Gauge(everyone=0.95, others=0.6)
    peak = PeakYield(30.0, gauge=gauge, clock=lambda: 100.0)
    webhook = uuid4()
    peak.read(webhook, at_end=True)
    # Given the CPUs saturated, the sender's own work and niced receivers included
    # Then a rest starts
    assert peak.should_rest(webhook, resting=False)
    # When resting, others' work at normal priority keeps them 70 % busy or more
    gauge.now = CpuLoad(everyone=0.75, others=0.75)
    # Then it rests on
    assert peak.should_rest(webhook, resting=True)
    # When others' work drops below that (the sender's own load never keeps it resting)
    gauge.now = CpuLoad(everyone=0.95, others=0.6)
    assert not peak.should_rest(webhook, resting=True)
    # And a machine not saturated never starts a rest, however much of it is others' work
    gauge.now = CpuLoad(everyone=0.85, others=0.85)
    assert not peak.should_rest(webhook, resting=False)
    # And unknown load never rests
    gauge.now = None
    assert not peak.should_rest(webhook, resting=False)
    assert not peak.should_rest(webhook, resting=True)


def test_the_sender_rests_until_it_lags_too_long_then_delivers_until_caught_up() -> None:
    now = [100.0]
    peak = PeakYield(30.0, gauge=_Gauge(everyone=1.0, others=0.9), clock=lambda: now[0])
    webhook = uuid4()
    # Given a follower that just read to the log's end, on a saturated machine
    peak.read(webhook, at_end=True)
    assert peak.should_rest(webhook, resting=False)
    # When it has not stood at the log's end for 30 s (a long peak)
    now[0] += 10
    peak.read(webhook, at_end=False)
    assert peak.should_rest(webhook, resting=True)
    now[0] += 20
    # Then it delivers, at its niceness's share, however busy the machine is
    assert not peak.should_rest(webhook, resting=True)
    assert not peak.should_rest(webhook, resting=False)
    # When it has caught up again, it rests again
    peak.read(webhook, at_end=True)
    assert peak.should_rest(webhook, resting=False)


def test_a_follower_never_seen_at_the_logs_end_rests_no_longer_than_the_delay() -> None:
    now = [0.0]
    peak = PeakYield(30.0, gauge=_Gauge(everyone=1.0, others=0.9), clock=lambda: now[0])
    webhook = uuid4()
    # Given a follower just started (or restarted) during a peak, before its first read
    assert peak.should_rest(webhook, resting=False)
    now[0] += 29
    assert peak.should_rest(webhook, resting=True)
    # Then it delivers once the delay has passed, though it never reached the log's end
    now[0] += 1
    assert not peak.should_rest(webhook, resting=True)
    peak.read(webhook, at_end=False)
    assert not peak.should_rest(webhook, resting=False)


def test_a_peak_delay_of_0_never_rests() -> None:
    peak = PeakYield(0.0)
    webhook = uuid4()
    peak.read(webhook, at_end=True)
    assert not peak.should_rest(webhook, resting=False)
    assert not PeakYield(0.0, gauge=_Gauge(everyone=1.0, others=1.0)).should_rest(webhook, resting=False)


_SPIN = "import time\nend = time.monotonic() + 120\nwhile time.monotonic() < end: pass\n"
WRITES, EVERY, DELAY = 14, 0.5, 4.0


async def test_a_real_sender_holds_deliveries_back_while_the_cpus_are_saturated_but_never_past_the_delay(
    api: TestClient, auth: Any, processes: Processes
) -> None:
    if os.getpriority(os.PRIO_PROCESS, 0) > 0:
        pytest.skip("the suite runs niced: the spinners' work would count as niced, not as load")
    admin, agent = auth("admin"), auth("agent")
    receiver = await processes.start_receiver()
    created = await api.post("/v1/webhooks", headers=admin, json={"url": receiver + "/hook",
                                                                  "event_types": ["CaseOpened"]})
    assert created.status == 201, await created.text()
    processes.secret_file.write_text((await created.json())["secret"])
    processes.start_sender(CASEDESK_WEBHOOK_PEAK_DELAY=str(DELAY))
    first = await api.post("/v1/cases", headers=agent, json=new_case_body())
    assert first.status == 201
    await until(lambda: _holds(processes, 1), "the first case to be delivered")

    # Given every CPU kept busy by other processes at the API's priority
    spinners = [await asyncio.create_subprocess_exec(sys.executable, "-c", _SPIN)
                for _ in range(os.cpu_count() or 2)]
    try:
        await asyncio.sleep(1.0)
        # When a case is opened every half second, for longer than the delay
        written: dict[str, float] = {}
        seen: dict[str, float] = {}
        for _ in range(WRITES):
            opened = await api.post("/v1/cases", headers=agent, json=new_case_body())
            assert opened.status == 201
            written[(await opened.json())["case_id"]] = time.monotonic()
            _note_arrivals(processes, seen)
            await asyncio.sleep(EVERY)
        deadline = time.monotonic() + 60
        while not written.keys() <= seen.keys():
            assert time.monotonic() < deadline, "a case was never delivered"
            await asyncio.sleep(0.05)
            _note_arrivals(processes, seen)
        waits = [seen[case] - at for case, at in written.items()]
        # Then deliveries come in bursts, a delay apart: a case written just after one waits for
        # the next (a niced sender that never rests posts each within milliseconds)
        assert max(waits) >= DELAY / 2, waits
        # And no case waits much longer than the delay, however busy the CPUs stay
        assert max(waits) < DELAY + 30, waits
    finally:
        for spinner in spinners:
            spinner.kill()
            await spinner.wait()


def _note_arrivals(processes: Processes, seen: dict[str, float]) -> None:
    for body in _bodies(processes):
        seen.setdefault(json.loads(body)["data"]["case_id"], time.monotonic())


def _bodies(processes: Processes) -> list[str]:
    return [item["body"] for item in processes.received()]


async def _holds(processes: Processes, count: int) -> bool:
    return len(_bodies(processes)) >= count
