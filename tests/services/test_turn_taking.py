"""Long work gives way to quick requests in flight, never for longer than LONGEST_WAIT, and not to streams."""

from __future__ import annotations

import asyncio

import pytest

from casedesk.services import turn_taking
from casedesk.services.settings import SettingsError, load_settings
from casedesk.services.turn_taking import TurnTaking, give_way, not_quick, quick_request
from tests.loop_turns import LoopTurns


async def turns_of_the_loop(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def long_work(turns: TurnTaking, slices: int, done: list[int]) -> None:
    with quick_request(turns):
        for n in range(slices):
            await give_way()
            done.append(n)


async def quick(turns: TurnTaking, finish: asyncio.Event) -> None:
    with quick_request(turns):
        await finish.wait()


async def test_long_work_waits_while_a_quick_request_is_in_flight_and_goes_on_when_it_ends(monkeypatch) -> None:
    monkeypatch.setattr(turn_taking, "LONGEST_WAIT", 60.0)  # only the quick request's end can let it go on
    turns, finish, done = TurnTaking(), asyncio.Event(), []
    # Given a quick request in flight
    agent = asyncio.create_task(quick(turns, finish))
    await turns_of_the_loop(2)
    assert turns.quick_in_flight == 1
    # When long work starts
    audit = asyncio.create_task(long_work(turns, 3, done))
    await turns_of_the_loop(50)
    # Then it has declared itself long work and waits for the agent at its first slice
    assert done == [] and turns.quick_in_flight == 1 and turns.gave_way == 1
    finish.set()
    await asyncio.wait_for(asyncio.gather(agent, audit), 5)
    assert done == [0, 1, 2] and turns.quick_in_flight == 0


async def test_long_work_never_waits_longer_than_the_longest_wait(monkeypatch) -> None:
    monkeypatch.setattr(turn_taking, "LONGEST_WAIT", 0.001)
    turns, finish, done = TurnTaking(), asyncio.Event(), []
    agent = asyncio.create_task(quick(turns, finish))
    await turns_of_the_loop(2)
    try:
        # Given an agent's request that never ends, long work still finishes, waiting once per slice
        await asyncio.wait_for(long_work(turns, 5, done), 5)
        assert done == [0, 1, 2, 3, 4] and turns.gave_way == 5
    finally:
        finish.set()
        await agent


async def test_with_nothing_quick_in_flight_long_work_only_hands_the_loop_over(monkeypatch) -> None:
    monkeypatch.setattr(turn_taking, "LONGEST_WAIT", 60.0)
    turns, done = TurnTaking(), []
    await asyncio.wait_for(long_work(turns, 4, done), 5)
    assert done == [0, 1, 2, 3] and turns.gave_way == 0 and turns.quick_in_flight == 0


async def test_a_stream_is_not_waited_for(monkeypatch) -> None:
    monkeypatch.setattr(turn_taking, "LONGEST_WAIT", 60.0)
    turns, finish, done = TurnTaking(), asyncio.Event(), []

    async def stream() -> None:
        with quick_request(turns):
            not_quick()
            not_quick()  # said twice, counted off once
            await finish.wait()

    watcher = asyncio.create_task(stream())
    await turns_of_the_loop(2)
    try:
        assert turns.quick_in_flight == 0
        await asyncio.wait_for(long_work(turns, 3, done), 5)
        assert done == [0, 1, 2] and turns.gave_way == 0
    finally:
        finish.set()
        await watcher


async def test_outside_a_request_giving_way_is_one_turn_of_the_loop() -> None:
    with LoopTurns() as turns:
        await asyncio.sleep(0)
        before = turns.count
        await give_way()
        assert turns.count == before + 1


async def test_a_request_that_fails_is_counted_off(monkeypatch) -> None:
    turns = TurnTaking()
    with pytest.raises(RuntimeError), quick_request(turns):
        assert turns.quick_in_flight == 1
        raise RuntimeError("the handler failed")
    assert turns.quick_in_flight == 0


async def test_a_task_a_request_started_giving_way_after_the_request_ended_counts_nothing_off() -> None:
    turns, tasks = TurnTaking(), []

    async def request() -> None:
        with quick_request(turns):
            tasks.append(asyncio.create_task(later()))  # carries the request's turn in its context

    async def later() -> None:
        await turns_of_the_loop(5)
        await give_way()

    await request()
    await tasks[0]
    assert turns.quick_in_flight == 0
    with quick_request(turns):  # and the count still works afterwards
        assert turns.quick_in_flight == 1
    assert turns.quick_in_flight == 0


async def test_bulk_work_with_a_share_rests_in_proportion_to_each_slice(monkeypatch) -> None:
    rests: list[float] = []
    real_sleep = asyncio.sleep

    async def noted_sleep(seconds: float) -> None:
        if seconds:
            rests.append(seconds)
        await real_sleep(0)

    clock = iter([10.0, 10.004, 10.004, 10.010, 10.010])  # resumed, then slices of 4 and 6 ms
    monkeypatch.setattr(turn_taking.time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(turn_taking.asyncio, "sleep", noted_sleep)
    turns = TurnTaking()
    with quick_request(turns):
        pass  # an agent's read just answered: agents are about
    with quick_request(turns):
        await give_way(0.25)  # the first slice's start is not known: no rest
        await give_way(0.25)
        await give_way(0.25)
    # share 0.25: three times as long as the slice
    assert rests == pytest.approx([0.012, 0.018])


class HandClock:
    """perf_counter as a test moves it, and every rest taken, by the task that took it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.rests: list[tuple[str, float]] = []

    def rested(self, task: str | None = None) -> list[float]:
        return [seconds for name, seconds in self.rests if task is None or name == task]


@pytest.fixture
def hand_clock(monkeypatch) -> HandClock:
    clock = HandClock()
    real_sleep = asyncio.sleep

    async def noted_sleep(seconds: float) -> None:
        if seconds:
            clock.rests.append((asyncio.current_task().get_name(), round(seconds, 6)))
        await real_sleep(0)

    monkeypatch.setattr(turn_taking.time, "perf_counter", lambda: clock.now)
    monkeypatch.setattr(turn_taking.asyncio, "sleep", noted_sleep)
    return clock


async def test_two_tasks_of_one_bulk_request_each_rest_for_their_own_slices(hand_clock) -> None:
    # A breach list is checked in one task while its last chunk is written in another: the writing's
    # slice, a wait for the database, is rested for in full though the checking gave way meanwhile.
    committed = asyncio.Event()

    async def check() -> None:
        await give_way(0.25)
        for _ in range(5):
            hand_clock.now += 0.002  # 2 ms of checking lines
            await give_way(0.25)
        committed.set()

    async def write() -> None:
        await give_way(0.25)
        await committed.wait()  # the chunk's appends committing: 10 ms by the clock
        await give_way(0.25)

    turns = TurnTaking()
    with quick_request(turns):
        pass  # an agent's read just answered
    with quick_request(turns):
        await asyncio.gather(asyncio.create_task(write(), name="write"), asyncio.create_task(check(), name="check"))
    assert sorted(hand_clock.rests) == [("check", 0.006)] * 5 + [("write", 0.03)]


async def test_a_request_does_not_rest_for_the_last_request_on_its_connection(hand_clock) -> None:
    # A connection's requests are served one after another in one task.
    turns = TurnTaking()
    with quick_request(turns):
        pass
    with quick_request(turns):
        await give_way(0.25)  # an upload ends here
    hand_clock.now += 10.0
    with quick_request(turns):
        await give_way(0.25)  # the next upload's first hand-over: its slice's start is not known
        hand_clock.now += 0.004
        await give_way(0.25)
    assert hand_clock.rested() == [0.012]


async def test_a_hand_over_at_the_full_share_inside_a_bulk_slice_does_not_end_it(hand_clock) -> None:
    turns = TurnTaking()
    with quick_request(turns):
        pass
    with quick_request(turns):
        await give_way(0.25)
        hand_clock.now += 0.004
        await give_way()  # the chunk's customer keys, made a few at a time
        hand_clock.now += 0.004
        await give_way(0.25)
    assert hand_clock.rested() == [0.024]  # three times the whole 8 ms slice


async def test_a_slice_never_rests_longer_than_the_longest_rest(monkeypatch) -> None:
    rests: list[float] = []

    async def noted_sleep(seconds: float) -> None:
        rests.append(seconds)

    clock = iter([0.0, 30.0, 30.0])  # a 30 s slice (a stalled database)
    monkeypatch.setattr(turn_taking.time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(turn_taking.asyncio, "sleep", noted_sleep)
    turns = TurnTaking()
    with quick_request(turns):
        pass
    with quick_request(turns):
        await give_way(0.5)
        await give_way(0.5)
    assert max(rests) == turn_taking.LONGEST_REST


async def test_with_no_agent_about_bulk_work_goes_at_full_speed(monkeypatch) -> None:
    rests: list[float] = []

    async def noted_sleep(seconds: float) -> None:
        rests.append(seconds)

    clock = iter([0.0, 5.0, 5.0, 10.0, 10.0])
    monkeypatch.setattr(turn_taking.time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(turn_taking.asyncio, "sleep", noted_sleep)
    turns = TurnTaking()
    with quick_request(turns):  # the bulk work's own request: it declares itself long work, not an agent
        await give_way(0.5)
        await give_way(0.5)
        await give_way(0.5)
    assert rests == [0, 0, 0]  # one hand-over per slice, no rest
    assert not turns.agents_about()


@pytest.mark.parametrize(("value", "share"), [(None, 0.25), ("", 0.25), ("0.5", 0.5), ("1", 1.0)])
def test_the_bulk_share_is_read_from_the_environment(tmp_path, value, share) -> None:
    env = {"CASEDESK_DATA_DIR": str(tmp_path)} | ({"CASEDESK_BULK_SHARE": value} if value is not None else {})
    assert load_settings(env).bulk_share == share


@pytest.mark.parametrize("value", ["0", "-0.5", "1.5", "half", "nan"])
def test_a_bulk_share_out_of_range_stops_the_process_before_it_serves(tmp_path, value) -> None:
    with pytest.raises(SettingsError, match="CASEDESK_BULK_SHARE"):
        load_settings({"CASEDESK_DATA_DIR": str(tmp_path), "CASEDESK_BULK_SHARE": value})
