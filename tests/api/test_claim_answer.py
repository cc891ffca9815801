"""A claim answers with the case it assigned, exactly as a read of the case shows it.

The claim builds that answer from what it read beside its hold (case file row,
snapshot, stream tail) plus the assignment, without reading the case again, so
these tests compare it, byte for byte after decoding, with GET of the case and
its timeline at the claim's position: for a case the projection has folded, a
case with a snapshot (over 100 events), and a case the projection has not
folded the newest events of.
"""

from __future__ import annotations

import uuid
from functools import partial
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from casedesk.domain import decisions as d
from casedesk.domain.values import Card, Customer, Money, PhoneNumber
from casedesk.services.case_service import SNAPSHOT_EVERY, CaseService
from casedesk.services.http.app import create_app
from casedesk.services.http.app_keys import CASES, RUNNER
from casedesk.services.settings import Settings
from casedesk.services.tokens import Principal
from tests.api.conftest import SECRET, with_schema
from tests.conftest import new_schema

BOSS = Principal(sub="sup", name="M. Sato", role="supervisor", departments=("fraud",), exp=2**40)
PHONE = PhoneNumber(masked="•••• 0000", key="k")


@pytest.fixture
async def client(aiohttp_client: Any, tmp_path: Any, database_dsn: str) -> TestClient:
    """The app on a schema of its own, its projections moved by hand (`project`), never by themselves."""
    settings = Settings(token_secret=SECRET, pii_key="test-pii-key", data_dir=tmp_path, projections="off")
    return await aiohttp_client(create_app(settings, dsn=with_schema(database_dsn, await new_schema(database_dsn))))


async def project(client: Any) -> None:
    runner = client.app[RUNNER]
    for projection in runner.projections:
        while await runner.catch_up(projection):
            pass


async def _queued_case(client: Any, dept: str, notes: int = 0) -> uuid.UUID:
    """A case escalated to `dept` (so it waits in its queue once projected), with `notes` notes before that."""
    cases = client.app[CASES]
    opened = await cases.open(BOSS, partial(
        d.open_case, case_id=uuid.uuid4(), reason="unrecognized_charge", channel="phone", summary="claim me",
        customer=Customer(customer_id="c1", name_masked="X", name_key="x", phone=PHONE),
        cards=(Card(card_id="p", last4="1234", network="visa", kind="primary"),),
        amount_at_risk=Money(amount="12", currency="USD"), contact=None))
    for n in range(notes):
        await _note(client, opened.case.id, f"note {n}")
    await cases.change(BOSS, opened.case.id, partial(d.escalate, to_department=dept, reason="r", priority=3))
    return opened.case.id


async def _note(client: Any, case_id: uuid.UUID, text: str) -> None:
    await client.app[CASES].change(BOSS, case_id, partial(d.add_handoff_note, note_id=uuid.uuid4(), text=text))


async def _claim(client: Any, auth: Any, dept: str, case_id: uuid.UUID) -> dict[str, Any]:
    r = await client.post(f"/v1/queues/{dept}/claim", headers=auth(departments=(dept,), name="N. Ueda"))
    assert r.status == 200, await r.text()
    claimed: dict[str, Any] = await r.json()
    assert claimed["case_id"] == str(case_id)
    assert r.headers["ETag"] == f'"{claimed["version"]}"'
    assert claimed["case"]["assignee"]["name"] == "N. Ueda"
    assert claimed["timeline"]["entries"][-1]["kind"] == "case_assigned"
    return claimed


async def _same_as_a_read(client: Any, auth: Any, dept: str, claimed: dict[str, Any]) -> None:
    await project(client)
    h = auth(departments=(dept,))
    case_id = claimed["case_id"]
    view = await client.get(f"/v1/cases/{case_id}", headers=h)
    timeline = await client.get(f"/v1/cases/{case_id}/timeline", headers=h)
    assert claimed["case"] == await view.json()
    assert claimed["timeline"] == await timeline.json()


async def test_a_claimed_case_the_projection_has_folded(client: Any, auth: Any) -> None:
    dept = f"d_{uuid.uuid4().hex[:8]}"
    case_id = await _queued_case(client, dept, notes=3)
    await project(client)
    claimed = await _claim(client, auth, dept, case_id)
    assert claimed["version"] == 6  # opened, 3 notes, escalated, assigned
    await _same_as_a_read(client, auth, dept, claimed)


async def test_a_claimed_case_with_a_snapshot_read_by_a_process_that_never_had_it(client: Any, auth: Any) -> None:
    dept = f"d_{uuid.uuid4().hex[:8]}"
    case_id = await _queued_case(client, dept, notes=SNAPSHOT_EVERY + 5)
    await project(client)
    client.app[CASES].forget(case_id)  # snapshot plus the stream after it
    claimed = await _claim(client, auth, dept, case_id)
    assert claimed["version"] == SNAPSHOT_EVERY + 8
    await _same_as_a_read(client, auth, dept, claimed)


async def test_a_claimed_case_whose_newest_events_are_not_yet_projected(client: Any, auth: Any) -> None:
    dept = f"d_{uuid.uuid4().hex[:8]}"
    case_id = await _queued_case(client, dept)
    await project(client)
    for n in range(3):  # the case file row stays two events behind the stream from here on
        await _note(client, case_id, f"late note {n}")
    client.app[CASES].forget(case_id)
    claimed = await _claim(client, auth, dept, case_id)
    assert claimed["version"] == 6
    assert sum(e["text"].endswith(": late note 2") for e in claimed["timeline"]["entries"]) == 1
    await _same_as_a_read(client, auth, dept, claimed)


async def test_a_claimed_case_never_projected_beyond_its_queue_entry_before_a_snapshot(client: Any, auth: Any) -> None:
    """Snapshot newer than the case file row: the answer still folds every event after the row."""
    dept = f"d_{uuid.uuid4().hex[:8]}"
    case_id = await _queued_case(client, dept)
    await project(client)
    for n in range(SNAPSHOT_EVERY):
        await _note(client, case_id, f"late note {n}")
    client.app[CASES].forget(case_id)
    claimed = await _claim(client, auth, dept, case_id)
    assert claimed["version"] == SNAPSHOT_EVERY + 3
    await _same_as_a_read(client, auth, dept, claimed)


async def test_a_write_between_the_hold_and_the_assignment_is_in_the_answer(client: Any, auth: Any) -> None:
    """Another process writes to the case after the claim read it: the assignment is redone on
    fresh state, and the answer (read afresh, the claim's own read being short) shows that write."""
    dept = f"d_{uuid.uuid4().hex[:8]}"
    case_id = await _queued_case(client, dept, notes=1)
    await project(client)
    cases = client.app[CASES]
    elsewhere = CaseService(cases.store, cases.mapper)  # another API process on the same store
    change = cases.change

    async def written_elsewhere_first(*args: Any, **kwargs: Any) -> Any:
        await elsewhere.change(BOSS, case_id, partial(d.add_handoff_note, note_id=uuid.uuid4(),
                                                      text="pinned meanwhile", pinned=True))
        return await change(*args, **kwargs)

    cases.change = written_elsewhere_first
    try:
        claimed = await _claim(client, auth, dept, case_id)
    finally:
        del cases.change
    assert claimed["version"] == 5  # opened, note, escalated, the note written elsewhere, assigned
    assert claimed["timeline"]["entries"][0]["text"].endswith(": pinned meanwhile")  # pinned: shown first
    assert claimed["case"]["pinned_note"]["text"] == "pinned meanwhile"
    await _same_as_a_read(client, auth, dept, claimed)


async def test_a_claimed_case_with_a_pinned_note(client: Any, auth: Any) -> None:
    dept = f"d_{uuid.uuid4().hex[:8]}"
    case_id = await _queued_case(client, dept, notes=2)
    await client.app[CASES].change(BOSS, case_id, partial(d.add_handoff_note, note_id=uuid.uuid4(),
                                                          text="call back after 17:00", pinned=True))
    await project(client)
    await _note(client, case_id, "unpinned, later")
    client.app[CASES].forget(case_id)
    claimed = await _claim(client, auth, dept, case_id)
    entries = claimed["timeline"]["entries"]
    assert entries[0]["text"].endswith(": call back after 17:00") and len(entries) == claimed["version"] + 1
    await _same_as_a_read(client, auth, dept, claimed)
