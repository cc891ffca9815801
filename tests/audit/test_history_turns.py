"""A long history is read a turn of events at a time, so one auditor's read never stalls other clients."""

from __future__ import annotations

import uuid
from datetime import UTC
from typing import Any

import msgspec

from casedesk.projections.timeline.history import history_document, history_of
from casedesk.services.http.app_keys import CASES
from tests.api.conftest import new_case_body
from tests.audit.conftest import post
from tests.loop_turns import LoopTurns

NOTES = 60
TURN = 10


async def long_case(client: Any, headers: dict[str, str]) -> uuid.UUID:
    opened = await post(client, headers, "/v1/cases", new_case_body(), 201)
    for n in range(NOTES):
        await post(client, headers, f"/v1/cases/{opened['case_id']}/notes", {"text": f"call {n}: no news"}, 201)
    return uuid.UUID(opened["case_id"])



async def test_history_hands_the_loop_back_at_least_once_per_turn_of_events(client, auth) -> None:
    case_id = await long_case(client, auth())
    cases = client.app[CASES]
    audited = await cases.store.read_stream_audited(case_id)  # the I/O done; what follows is CPU only
    assert len(audited) > NOTES
    with LoopTurns() as turns:
        answer = await history_of(audited, cases.mapper, case_id, UTC, turn=TURN)
        as_answer = turns.count
        document = await history_document(audited, cases.mapper, case_id, UTC, turn=TURN)
        as_document = turns.count - as_answer
    assert len(answer.events) == len(audited) and len(msgspec.json.decode(document)["events"]) == len(audited)
    assert as_answer >= len(audited) // TURN
    assert as_document >= len(audited) // TURN


async def test_history_made_a_turn_at_a_time_is_byte_for_byte_the_whole_answer_encoded_at_once(
    client, auth
) -> None:
    case_id = await long_case(client, auth())
    cases = client.app[CASES]
    audited = await cases.store.read_stream_audited(case_id, lte=NOTES)
    whole = msgspec.json.encode(await history_of(audited, cases.mapper, case_id, UTC, version=NOTES))
    for turn in (1, 7, TURN, NOTES, 1000):
        assert await history_document(audited, cases.mapper, case_id, UTC, version=NOTES, turn=turn) == whole
    r = await client.get(f"/v1/cases/{case_id}/history?version={NOTES}", headers=auth(role="auditor"))
    assert r.status == 200 and r.content_type == "application/json"
    assert cases.privacy is not None
    assert await r.read() == await cases.privacy.open_json(whole)  # the answer opens the sealed personal data
    middle = cases.mapper.to_domain_event(audited[NOTES // 2].stored).timestamp
    at_middle = await history_of(audited, cases.mapper, case_id, UTC, as_of=middle)
    assert at_middle.state is not None and at_middle.state.version == NOTES // 2 + 1
    assert await history_document(audited, cases.mapper, case_id, UTC, as_of=middle, turn=7) == (
        msgspec.json.encode(at_middle))


async def test_history_as_of_before_the_case_opened_is_no_events_and_no_state_turn_by_turn_too(client, auth) -> None:
    case_id = await long_case(client, auth())
    cases = client.app[CASES]
    audited = await cases.store.read_stream_audited(case_id)
    before = cases.mapper.to_domain_event(audited[0].stored).timestamp.replace(year=2000)
    answer = await history_of(audited, cases.mapper, case_id, UTC, as_of=before, turn=TURN)
    assert answer.events == [] and answer.state is None
    assert await history_document(audited, cases.mapper, case_id, UTC, as_of=before, turn=TURN) == (
        msgspec.json.encode(answer))
