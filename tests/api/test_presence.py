"""Presence and the per-case stream over HTTP, across two API apps on one database (issue 19).

Two apps built by create_app on the same database stand for two API processes:
each has its own pools, its own LISTEN connection and its own case feed, so
whatever one agent's app learns reaches the other's only through PostgreSQL.
(tests/cli/test_case_presence_processes.py does the same with two `casedesk serve`.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from jsonschema import Draft202012Validator

from casedesk.services.http import case_stream
from casedesk.services.http.app import create_app
from casedesk.services.http.case_stream import CASE_FEED
from casedesk.services.settings import Settings
from tests.api.conftest import SECRET, Auth, new_case_body, with_schema
from tests.api.test_dashboard import next_event, token_of


@pytest.fixture
async def other(aiohttp_client: Any, tmp_path: Any, database_dsn: str, shared_schema: str) -> TestClient:
    """A second API app on the same database (projections run by the first)."""
    settings = Settings(token_secret=SECRET, pii_key="test-pii-key", data_dir=tmp_path, pool_min=1, pool_max=8,
                        projections="off")
    return await aiohttp_client(create_app(settings, dsn=with_schema(database_dsn, shared_schema)))


@pytest.fixture
async def brief(aiohttp_client: Any, tmp_path: Any, database_dsn: str, shared_schema: str) -> TestClient:
    """An app whose agents leave a case 1 s after their last heartbeat (CASEDESK_PRESENCE_EXPIRY=1)."""
    settings = Settings(token_secret=SECRET, pii_key="test-pii-key", data_dir=tmp_path, pool_min=1, pool_max=8,
                        projections="off", presence_expiry=1.0)
    return await aiohttp_client(create_app(settings, dsn=with_schema(database_dsn, shared_schema)))


async def open_case(client: TestClient, headers: dict[str, str]) -> tuple[str, int]:
    r = await client.post("/v1/cases", json=new_case_body(), headers=headers)
    body = await r.json()
    assert r.status == 201, body
    return body["case_id"], body["version"]


async def beat(client: TestClient, case_id: str, headers: dict[str, str], activity: str = "viewing") -> None:
    r = await client.post(f"/v1/cases/{case_id}/presence", json={"activity": activity}, headers=headers)
    assert r.status == 204, await r.text()


async def stream_of(client: TestClient, case_id: str, headers: dict[str, str]) -> ClientResponse:
    r = await client.get(f"/v1/cases/{case_id}/stream", params={"access_token": token_of(headers)})
    assert (r.status, r.headers["Content-Type"]) == (200, "text/event-stream"), await r.text()
    return r


async def until(response: ClientResponse, name: str, check: Callable[[dict[str, Any]], bool],
                timeout: float) -> dict[str, Any]:
    """The first `name` event that passes `check` within `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while True:
            event, body = await next_event(response, timeout)
            if event == name and check(body):
                return body


def names(body: dict[str, Any]) -> set[str]:
    return {item["agent_id"] for item in body["items"]}


@pytest.fixture
def two_agents(auth: Auth) -> tuple[dict[str, str], dict[str, str], str, str]:
    a, b = f"agent-a-{uuid.uuid4().hex[:6]}", f"agent-b-{uuid.uuid4().hex[:6]}"
    return auth(sub=a, name="A. Aoki"), auth(sub=b, name="B. Baba"), a, b


async def test_two_agents_on_two_apps_see_each_other_within_a_second(client, other, two_agents) -> None:
    ha, hb, a, b = two_agents
    case_id, _ = await open_case(client, ha)
    await beat(client, case_id, ha)
    sa, sb = await stream_of(client, case_id, ha), await stream_of(other, case_id, hb)
    first = await until(sb, "presence", lambda _: True, 5)
    assert names(first) == {a}  # B's stream on the other app starts with who is there already
    await until(sa, "presence", lambda body: names(body) == {a}, 5)

    started = time.monotonic()
    await beat(other, case_id, hb, "editing")
    seen = await until(sa, "presence", lambda body: b in names(body), 1.0)
    assert time.monotonic() - started < 1.0
    assert {(i["agent_id"], i["name"], i["activity"]) for i in seen["items"]} == {
        (a, "A. Aoki", "viewing"), (b, "B. Baba", "editing")}
    r = await client.get(f"/v1/cases/{case_id}/presence", headers=ha)  # GET on either app says the same
    assert names(await r.json()) == {a, b}
    r = await other.get(f"/v1/cases/{case_id}/presence", headers=hb)
    assert names(await r.json()) == {a, b}


async def test_a_note_added_on_one_app_reaches_the_other_apps_stream_within_a_second(client, other,
                                                                                    two_agents) -> None:
    ha, hb, _, _ = two_agents
    case_id, version = await open_case(client, ha)
    sb = await stream_of(other, case_id, hb)
    await until(sb, "presence", lambda _: True, 5)
    started = time.monotonic()
    r = await client.post(f"/v1/cases/{case_id}/notes", json={"text": "Customer calls back at 3"}, headers=ha)
    written = await r.json()
    event = await until(sb, "case-event", lambda _: True, 1.0)
    assert time.monotonic() - started < 1.0
    assert (event["type"], event["version"], event["position"]) == (
        "HandoffNoteAdded", version + 1, written["position"])
    entry = event["entry"]
    assert entry["version"] == version + 1 and "Customer calls back at 3" in entry["text"]
    assert entry["actor"]["name"] == "A. Aoki"
    timeline = await (await other.get(f"/v1/cases/{case_id}/timeline", headers=hb)).json()
    assert timeline["entries"][-1] == entry  # the entry as the timeline route shows it


async def test_the_stream_sends_every_event_in_order_also_those_of_one_command(client, other, two_agents) -> None:
    ha, hb, _, _ = two_agents
    case_id, version = await open_case(client, ha)
    sb = await stream_of(other, case_id, hb)
    await until(sb, "presence", lambda _: True, 5)
    for text in ("one", "two", "three"):
        assert (await client.post(f"/v1/cases/{case_id}/notes", json={"text": text}, headers=ha)).status == 201
    seen = [await until(sb, "case-event", lambda _: True, 2.0) for _ in range(3)]
    assert [e["version"] for e in seen] == [version + 1, version + 2, version + 3]
    assert [e["position"] for e in seen] == sorted(e["position"] for e in seen)


async def test_an_agent_who_stops_heartbeating_is_gone_when_the_expiry_has_passed(brief, two_agents) -> None:
    ha, hb, a, b = two_agents
    case_id, _ = await open_case(brief, ha)
    await beat(brief, case_id, ha)
    await beat(brief, case_id, hb)
    sa = await stream_of(brief, case_id, ha)
    await until(sa, "presence", lambda body: names(body) == {a, b}, 5)
    for _ in range(3):  # A keeps beating, B's browser has closed
        await asyncio.sleep(0.4)
        await beat(brief, case_id, ha)
    gone = await until(sa, "presence", lambda body: names(body) == {a}, 2.0)
    assert names(gone) == {a}
    assert names(await (await brief.get(f"/v1/cases/{case_id}/presence", headers=ha)).json()) == {a}


async def test_activity_since_is_kept_across_heartbeats_and_restarts_on_a_change(client, two_agents) -> None:
    ha, _, a, _ = two_agents
    case_id, _ = await open_case(client, ha)
    await beat(client, case_id, ha)
    first = (await (await client.get(f"/v1/cases/{case_id}/presence", headers=ha)).json())["items"][0]
    assert first["agent_id"] == a
    await beat(client, case_id, ha)
    again = (await (await client.get(f"/v1/cases/{case_id}/presence", headers=ha)).json())["items"][0]
    assert again == first
    await beat(client, case_id, ha, "editing")
    editing = (await (await client.get(f"/v1/cases/{case_id}/presence", headers=ha)).json())["items"][0]
    assert editing["activity"] == "editing" and editing["since"] > first["since"]


async def test_presence_is_not_a_case_event(client, two_agents) -> None:
    ha, _, _, _ = two_agents
    case_id, version = await open_case(client, ha)
    await beat(client, case_id, ha, "editing")
    r = await client.get(f"/v1/cases/{case_id}/timeline", headers=ha)
    body = await r.json()
    assert body["version"] == version and r.headers["ETag"] == f'"{version}"'  # no history, no new version
    assert len(body["entries"]) == 1


async def test_a_stale_if_match_names_who_changed_the_case_since(client, other, two_agents) -> None:
    ha, hb, _, _ = two_agents
    case_id, version = await open_case(client, ha)
    r = await other.post(f"/v1/cases/{case_id}/notes", json={"text": "B was here"}, headers=hb)
    assert r.status == 201
    r = await client.post(f"/v1/cases/{case_id}/notes", json={"text": "A too"},
                          headers={**ha, "If-Match": f'"{version}"'})
    problem = await r.json()
    assert (r.status, r.content_type) == (412, "application/problem+json")
    assert problem["current_version"] == version + 1
    [change] = problem["changed_by"]
    assert (change["name"], change["type"], change["version"]) == ("B. Baba", "HandoffNoteAdded", version + 1)
    assert change["agent_id"] and change["at"]
    assert "changed since by B. Baba" in problem["detail"]
    assert (await client.get(f"/v1/cases/{case_id}", headers=ha)).headers["ETag"] == f'"{version + 1}"'


# ---- refusals ----

@pytest.mark.parametrize("body", [{"activity": "typing"}, {}, {"activity": "viewing", "extra": 1},
                                  {"activity": None}, []])
async def test_a_heartbeat_with_a_bad_body_is_422_and_changes_nothing(client, auth, body) -> None:
    headers = auth()
    case_id, _ = await open_case(client, headers)
    r = await client.post(f"/v1/cases/{case_id}/presence", json=body, headers=headers)
    assert (r.status, r.content_type) == (422, "application/problem+json")
    assert (await (await client.get(f"/v1/cases/{case_id}/presence", headers=headers)).json())["items"] == []


async def test_a_heartbeat_that_is_not_json_or_has_no_token_changes_nothing(client, auth) -> None:
    headers = auth()
    case_id, _ = await open_case(client, headers)
    r = await client.post(f"/v1/cases/{case_id}/presence", data=b"{not json",
                          headers={**headers, "Content-Type": "application/json"})
    assert (r.status, r.content_type) == (400, "application/problem+json")
    r = await client.post(f"/v1/cases/{case_id}/presence", data=b"viewing", headers={**headers, "Content-Type": "text/plain"})
    assert (r.status, r.content_type) == (415, "application/problem+json")
    r = await client.post(f"/v1/cases/{case_id}/presence", json={"activity": "viewing"})
    assert (r.status, r.content_type) == (401, "application/problem+json")
    assert (await (await client.get(f"/v1/cases/{case_id}/presence", headers=headers)).json())["items"] == []


async def test_a_case_the_caller_may_not_see_is_404_for_presence_and_stream(client, auth) -> None:
    case_id, _ = await open_case(client, auth())
    elsewhere = auth(departments=("disputes",))
    for r in (await client.post(f"/v1/cases/{case_id}/presence", json={"activity": "viewing"}, headers=elsewhere),
              await client.get(f"/v1/cases/{case_id}/presence", headers=elsewhere),
              await client.get(f"/v1/cases/{case_id}/stream", params={"access_token": token_of(elsewhere)})):
        assert (r.status, r.content_type) == (404, "application/problem+json")
    unknown = uuid.uuid4()
    for path in (f"/v1/cases/{unknown}/presence", f"/v1/cases/{unknown}/stream", "/v1/cases/not-a-case/presence"):
        assert (await client.get(path, headers=auth())).status == 404


async def test_the_stream_needs_a_token_and_takes_it_in_the_url(client, auth) -> None:
    case_id, _ = await open_case(client, auth())
    assert (await client.get(f"/v1/cases/{case_id}/stream")).status == 401
    assert (await client.get(f"/v1/cases/{case_id}/presence", params={"access_token": token_of(auth())})).status == 401
    assert (await client.get(f"/v1/cases/{case_id}/stream", params={"access_token": "nonsense"})).status == 401


async def test_auditors_may_be_present_and_watch(client, auth) -> None:
    case_id, _ = await open_case(client, auth())
    auditor = auth("auditor")
    await beat(client, case_id, auditor)
    r = await stream_of(client, case_id, auditor)
    await until(r, "presence", lambda body: len(body["items"]) == 1, 5)


async def test_a_closed_stream_is_let_go(client, auth) -> None:
    headers = auth()
    case_id, _ = await open_case(client, headers)
    r = await stream_of(client, case_id, headers)
    await until(r, "presence", lambda _: True, 5)
    assert client.app[CASE_FEED].watches
    r.close()
    async with asyncio.timeout(3):
        while uuid.UUID(case_id) in client.app[CASE_FEED].watches:
            await asyncio.sleep(0.05)


async def test_events_appended_by_the_streams_own_app_are_sent_once_each(client, auth, monkeypatch) -> None:
    """This app's own appends are handed out at once, and its feed's reads bring them again: sent once."""
    monkeypatch.setattr(case_stream, "LOOK_AGAIN_SECONDS", 0.2)  # the feed reads again and again meanwhile
    headers = auth()
    case_id, version = await open_case(client, headers)
    r = await stream_of(client, case_id, auth())
    await until(r, "presence", lambda _: True, 5)
    for text in ("one", "two", "three"):
        assert (await client.post(f"/v1/cases/{case_id}/notes", json={"text": text}, headers=headers)).status == 201
    versions = []
    with contextlib.suppress(TimeoutError):
        while True:
            event, body = await next_event(r, 1.0)
            if event == "case-event":
                versions.append(body["version"])
    assert versions == [version + 1, version + 2, version + 3]


async def test_the_desk_page_is_served_without_a_token_under_a_strict_policy(client) -> None:
    r = await client.get(f"/desk/cases/{uuid.uuid4()}")
    assert (r.status, r.content_type) == (200, "text/html")
    policy = r.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src 'sha256-" in policy and "unsafe" not in policy
    assert "/stream?access_token=" in await r.text()
    assert (await client.get("/desk/cases/not-a-case")).status == 404


async def test_on_a_projected_case_heartbeats_follow_the_reading_rules(client, auth) -> None:
    """Once case_files holds the case, the heartbeat checks access in its own statement: the same rules."""
    r = await client.post("/v1/cases", json=new_case_body(), headers=auth())
    opened = await r.json()
    case_id = opened["case_id"]
    assert (await client.get(f"/v1/cases/{case_id}", params={"min_position": opened["position"]},
                              headers=auth())).status == 200  # projected now
    beat_as = [("agent", ("disputes",), 404), ("agent", ("fraud",), 204), ("agent", ("disputes", "fraud"), 204),
               ("supervisor", (), 204), ("auditor", (), 204)]
    for role, departments, status in beat_as:
        r = await client.post(f"/v1/cases/{case_id}/presence", json={"activity": "viewing"},
                              headers=auth(role, departments=departments))
        assert r.status == status, (role, departments, await r.text())
    present = await (await client.get(f"/v1/cases/{case_id}/presence", headers=auth())).json()
    assert len(present["items"]) == 4


async def raw_events(response: ClientResponse, count: int, timeout: float) -> list[dict[str, Any]]:
    """The next `count` events as the wire has them: each field a string (retry an integer), as readers of
    a stream meet them and as schemathesis checks them against the document, event by event."""
    events: list[dict[str, Any]] = []
    event: dict[str, Any] = {}
    async with asyncio.timeout(timeout):
        while len(events) < count:
            line = (await response.content.readline()).decode().rstrip("\r\n")
            if line == "":
                if "data" in event:
                    events.append(event)
                event = {}
            elif not line.startswith(":"):  # `: ping` keeps the line open and is no event
                field, _, value = line.partition(":")
                value = value.removeprefix(" ")
                event[field] = int(value) if field == "retry" else event.get(field, "") + value
    return events


async def test_every_event_on_the_wire_fits_the_documents_event_schema(client, auth) -> None:
    """The fuzz suite found the document calling each event a bare string: an integrator's validator refused
    every event. Each event is an object with `event`, `data` (one JSON document) and maybe `retry`."""
    doc = await (await client.get("/v1/openapi.json")).json()
    headers = auth()
    case_id, _ = await open_case(client, headers)
    for path in (f"/v1/cases/{case_id}/stream", "/v1/dashboard/stream"):
        media = doc["paths"][path.replace(case_id, "{case_id}")]["get"]["responses"]["200"]["content"]
        validator = Draft202012Validator(media["text/event-stream"]["schema"])
        reader = auth(role="supervisor") if "dashboard" in path else headers
        r = await client.get(path, params={"access_token": token_of(reader)})
        assert r.status == 200, await r.text()
        if "dashboard" not in path:
            await client.post(f"/v1/cases/{case_id}/notes", json={"text": "seen on the wire"}, headers=headers)
        events = await raw_events(r, 2 if "dashboard" not in path else 1, 5)
        for event in events:
            assert not list(validator.iter_errors(event)), event
            assert isinstance(json.loads(event["data"]), dict)
        if "dashboard" not in path:
            assert [e["event"] for e in events] == ["presence", "case-event"]
        r.close()
