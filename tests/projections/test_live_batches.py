"""A live worker gathers a steady stream of commands into batches, and folds a quiet system's first at once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from functools import partial

import asyncpg
import pytest

from casedesk.domain import decisions as d
from casedesk.domain.events import CaseEvent
from casedesk.projections import runner as runner_module
from casedesk.projections.case_files import CaseFiles
from casedesk.projections.runner import ProjectionRunner
from casedesk.services.case_service import CaseService
from casedesk.services.store.event_mapper import CaseEventMapper
from casedesk.services.store.event_store import EventStore
from tests.projections.helpers import AGENT, running, wait_until_caught_up, write_mixed_cases


class CountedCaseFiles(CaseFiles):
    """The case files, counting the batches folded."""

    batches = 0

    async def apply(self, conn: asyncpg.Connection, events: Sequence[CaseEvent]) -> None:
        await super().apply(conn, events)
        self.batches += 1


async def test_notes_arriving_steadily_are_folded_in_few_batches_and_a_quiet_systems_first_at_once(
        empty_pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner_module, "LIVE_BATCH_INTERVAL", 0.5)
    store = EventStore(empty_pool)
    cases = CaseService(store, CaseEventMapper())
    projection = CountedCaseFiles()
    live = ProjectionRunner(store, empty_pool, [projection])
    async with running(live):
        [case_id] = await write_mixed_cases(cases, 1)
        await wait_until_caught_up(live, "case_files")
        await asyncio.sleep(0.6)  # quiet for longer than the interval

        # Given a quiet system, when a note is added, then it is folded at once, not after the interval.
        loop = asyncio.get_running_loop()
        started = loop.time()
        await cases.change(AGENT, case_id, partial(d.add_handoff_note, note_id=uuid.uuid4(), text="first",
                                                   for_department=None, pinned=False))
        await wait_until_caught_up(live, "case_files")
        assert loop.time() - started < 0.4

        # When eight more notes come 20 ms apart (each append wakes the worker), then they are folded
        # in at most two batches, not one each.
        before = projection.batches
        for n in range(8):
            await cases.change(AGENT, case_id, partial(d.add_handoff_note, note_id=uuid.uuid4(), text=f"note {n}",
                                                       for_department=None, pinned=False))
            await asyncio.sleep(0.02)
        await wait_until_caught_up(live, "case_files")
        assert projection.batches - before <= 2
    await store.close()
