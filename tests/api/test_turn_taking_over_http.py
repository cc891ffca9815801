"""The server counts every request as quick while it runs, streams never, and history gives way to them."""

from __future__ import annotations

import uuid

from casedesk.services import turn_taking
from casedesk.services.http.app_keys import TURNS
from casedesk.services.store import event_store
from casedesk.services.turn_taking import quick_request
from tests.api.conftest import new_case_body
from tests.api.test_dashboard import next_event, token_of


async def test_every_answer_counts_its_request_off_and_an_open_stream_is_not_counted(client, auth) -> None:
    turns = client.app[TURNS]
    agent = auth()
    assert (await client.post("/v1/cases", json=new_case_body(), headers=agent)).status == 201
    assert (await client.get(f"/v1/cases/{uuid.uuid4()}", headers=agent)).status == 404
    assert (await client.get(f"/v1/cases/{uuid.uuid4()}")).status == 401
    assert (await client.post("/v1/cases", data=b"{", headers={**agent, "Content-Type": "application/json"})).status == 400
    assert turns.quick_in_flight == 0
    stream = await client.get("/v1/dashboard/stream", params={"access_token": token_of(auth("supervisor"))})
    try:
        assert (await next_event(stream, timeout=5))[0] == "dashboard"
        # The stream stays open; long work must not wait for it.
        assert turns.quick_in_flight == 0
    finally:
        stream.close()


async def test_an_audit_history_read_gives_way_to_a_quick_request_in_flight(client, auth, monkeypatch) -> None:
    agent = auth()
    r = await client.post("/v1/cases", json=new_case_body(), headers=agent)
    case_id = (await r.json())["case_id"]
    for n in range(4):
        r = await client.post(f"/v1/cases/{case_id}/notes", json={"text": f"called back, try {n}"}, headers=agent)
        assert r.status == 201, await r.text()
    monkeypatch.setattr(event_store, "AUDITED_PER_TURN", 1)  # a slice per stored row
    monkeypatch.setattr(turn_taking, "LONGEST_WAIT", 0.001)
    turns = client.app[TURNS]
    # Given an agent's request in flight in this server
    with quick_request(turns):
        # When an auditor reads the case's history
        r = await client.get(f"/v1/cases/{case_id}/history", headers=auth("auditor"))
        assert r.status == 200
        events = (await r.json())["events"]
    # Then its slices waited for the agent (one per row after the first)
    assert len(events) >= 5
    assert turns.gave_way >= len(events) - 1
    assert turns.quick_in_flight == 0
