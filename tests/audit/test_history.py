"""Auditors replay a case as it stood at any version or moment, each event with its hash."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from urllib.parse import quote

import asyncpg

from tests.api.conftest import new_case_body
from tests.audit.conftest import open_case_with_story, post

TYPES = ["CaseOpened", "ContactStarted", "IdentityVerified", "ContactDetailsRecorded", "HandoffNoteAdded",
         "CardSuspended", "ContactEnded"]


async def history(client, headers: dict[str, str], case_id: uuid.UUID, query: str = "", status: int = 200) -> dict:
    r = await client.get(f"/v1/cases/{case_id}/history{query}", headers=headers)
    body = await r.json()
    assert r.status == status, body
    return body


async def test_history_lists_every_stored_event_with_actor_contact_position_and_hash(
    client, auth, own_pool: asyncpg.Pool
) -> None:
    case_id = await open_case_with_story(client, auth(sub="agent-kita", name="M. Kita"))
    answer = await history(client, auth(role="auditor"), case_id)
    events = answer["events"]
    assert answer["case_id"] == str(case_id)
    assert [e["type"] for e in events] == TYPES and [e["version"] for e in events] == list(range(1, 8))
    stored = await own_pool.fetch(
        "SELECT e.notification_id, encode(h.hash, 'hex') FROM case_events e JOIN case_event_hashes h"
        " USING (originator_id, originator_version) WHERE originator_id = $1 ORDER BY originator_version", case_id)
    assert [(e["position"], e["hash"]) for e in events] == [tuple(r) for r in stored]
    assert {e["actor"]["id"] for e in events} == {"agent-kita"} and events[0]["actor"]["name"] == "M. Kita"
    contact = events[1]["contact_id"]
    assert contact and all(e["contact_id"] == contact for e in events[1:4] + events[6:])
    assert events[4]["payload"]["text"] == "customer asked for a callback after 17:00"
    assert not {"originator_id", "originator_version", "timestamp", "actor", "contact_id"} & set(events[4]["payload"])
    assert all(datetime.fromisoformat(e["recorded_at"]).tzinfo for e in events)
    assert answer["state"]["version"] == 7 and answer["state"]["cards"][0]["state"] == "suspended"


async def test_history_shows_phones_only_masked(client, auth) -> None:
    case_id = await open_case_with_story(client, auth())
    answer = await history(client, auth(role="auditor"), case_id)
    events = {e["type"]: e["payload"] for e in answer["events"]}
    assert set(events["ContactDetailsRecorded"]["daytime_phone"]) == {"masked"}
    assert set(events["ContactStarted"]["phone"]) == {"masked"}
    assert set(events["CaseOpened"]["customer"]["phone"]) == {"masked"}
    assert "name_key" not in events["CaseOpened"]["customer"]
    text = str(answer)
    for digits in ("2222 3333", "22223333", "5555 0101", "55550101", "1234 5678", "12345678"):
        assert digits not in text


async def test_history_to_a_version_shows_the_case_as_it_stood_then(client, auth) -> None:
    case_id = await open_case_with_story(client, auth())
    answer = await history(client, auth(role="supervisor"), case_id, "?version=5")
    assert [e["version"] for e in answer["events"]] == [1, 2, 3, 4, 5]
    assert answer["state"]["version"] == 5 and answer["state"]["cards"][0]["state"] == "active"


async def test_history_as_of_a_moment_between_two_events_shows_the_earlier_one(client, auth) -> None:
    headers = auth()
    opened = await post(client, headers, "/v1/cases", new_case_body(), 201)
    case = f"/v1/cases/{opened['case_id']}"
    await asyncio.sleep(0.05)
    await post(client, headers, f"{case}/notes", {"text": "second"}, 201)
    events = (await history(client, auth(role="admin"), opened["case_id"]))["events"]
    first, second = (datetime.fromisoformat(e["recorded_at"]) for e in events)
    between = first + (second - first) / 2
    answer = await history(client, auth(role="auditor"), opened["case_id"], f"?as_of={quote(between.isoformat())}")
    assert [e["version"] for e in answer["events"]] == [1] and answer["state"]["version"] == 1
    exactly = await history(client, auth(role="auditor"), opened["case_id"], f"?as_of={quote(second.isoformat())}")
    assert exactly["state"]["version"] == 2
    unescaped = await history(client, auth(role="auditor"), opened["case_id"],
                              f"?as_of={between.astimezone().isoformat()}")  # '+' arrives as a space
    assert unescaped["state"]["version"] == 1
    before = await history(client, auth(role="auditor"), opened["case_id"],
                           f"?as_of={quote((first - timedelta(days=1)).isoformat())}")
    assert before["events"] == [] and before["state"] is None


async def test_a_bad_as_of_or_version_is_refused(client, auth) -> None:
    case_id = await open_case_with_story(client, auth())
    auditor = auth(role="auditor")
    for query in ("?version=0", "?version=-1", "?version=two", "?version=99999999999999999999", "?as_of=yesterday", "?as_of=2024-12-10T03:12:00",
                  "?as_of=2024-12-10T03:12:00Z&version=2"):
        problem = await history(client, auditor, case_id, query, status=422)
        assert problem["errors"][0]["field"] in ("as_of", "version"), query


async def test_history_of_an_unknown_case_is_404_and_agents_may_not_read_it(client, auth) -> None:
    case_id = await open_case_with_story(client, auth())
    await history(client, auth(role="auditor"), uuid.uuid4(), status=404)
    await history(client, auth(), case_id, status=403)


async def test_history_at_the_last_version_shows_the_case_exactly_as_the_case_view(client, auth) -> None:
    """History folds the view alone (no timeline sentences): it must still be the view agents read."""
    agent = auth(sub="agent-kita", name="M. Kita")
    case_id = await open_case_with_story(client, agent)
    answer = await history(client, auth(role="auditor"), case_id)
    r = await client.get(f"/v1/cases/{case_id}", params={"min_position": answer["events"][-1]["position"]},
                         headers=agent)
    view = await r.json()
    for item in view["handoff"]["pending"]:
        item.pop("age_seconds", None)  # moves with the clock: a read adds it to the view from `since`
    assert answer["state"] == view


async def test_history_read_again_after_a_row_was_changed_shows_the_row_as_stored_now(
    client, auth, own_pool: asyncpg.Pool
) -> None:
    # Rows read lately are answered without decoding them again: keyed by their bytes, so a row
    # changed in the database since (here behind the chain's back) is shown as it is stored now.
    case_id = await open_case_with_story(client, auth())
    before = await history(client, auth(role="auditor"), case_id)
    assert [e["payload"]["reason"] for e in before["events"] if e["type"] == "CardSuspended"] == ["fraud"]
    changed = await own_pool.execute(
        "UPDATE case_events SET state = convert_to(replace(convert_from(state, 'UTF8'), '\"reason\":\"fraud\"',"
        " '\"reason\":\"stolen\"'), 'UTF8') WHERE originator_id = $1 AND topic LIKE '%CardSuspended'", case_id)
    assert changed == "UPDATE 1"
    after = await history(client, auth(role="auditor"), case_id)
    assert [e["payload"]["reason"] for e in after["events"] if e["type"] == "CardSuspended"] == ["stolen"]
    assert [e["hash"] for e in after["events"]] == [e["hash"] for e in before["events"]]  # the stored hashes
