"""The role table, exactly (issue 15): URL tokens on streams only, no nameless tokens, hidden cases unknown.

- `?access_token=` authenticates the streams only (a browser's EventSource
  cannot send headers); anywhere else a token in the URL is 401.
- A token whose `sub` is empty names nobody: 401.
- A case of another department answers exactly as an unknown id does (404),
  so that an agent cannot tell which ids exist.
"""

from __future__ import annotations

import time
import uuid

import jwt
import pytest

from casedesk.services.http.routes import ROUTES
from tests.api.conftest import SECRET, new_case_body
from tests.api.test_role_matrix import request_for


def token_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


@pytest.fixture
async def fraud_case(client, auth) -> dict[str, str]:
    body = new_case_body(contact={"direction": "inbound", "channel": "phone", "department": "fraud"})
    r = await client.post("/v1/cases", json=body, headers=auth())
    opened = await r.json()
    assert r.status == 201, opened
    return {"id": opened["case_id"], "contact": opened["contact_id"], "version": opened["version"]}


async def test_a_url_token_is_refused_on_every_route_but_the_streams(client, auth, fraud_case) -> None:
    url_token = {"access_token": token_of(auth(role="supervisor"))}
    case = f"/v1/cases/{fraud_case['id']}"
    r = await client.post(f"{case}/notes", params=url_token, json={"text": "written with a URL token"})
    problem = await r.json()
    assert r.status == 401 and r.headers["Content-Type"].startswith("application/problem+json")
    assert "streams only" in problem["detail"]
    for path in (case, f"{case}/timeline", "/v1/queues", "/v1/dashboard"):
        assert (await client.get(path, params=url_token)).status == 401, path
    r = await client.get(case, headers=auth(role="supervisor"))
    assert (await r.json())["version"] == fraud_case["version"]  # the note was not written
    stream = await client.get("/v1/dashboard/stream", params=url_token)
    assert (stream.status, stream.headers["Content-Type"]) == (200, "text/event-stream")
    stream.close()


async def test_no_route_but_the_streams_takes_a_url_token(client, auth, fraud_case) -> None:
    """Every route with a role gate, writes and reads, each with an admin's (or the IVR's) valid token in the URL."""
    taken, streams = [], 0
    for route in ROUTES:
        if route.roles is None:
            continue
        token = token_of(auth(role="ivr", departments=()) if route.roles == ("ivr",) else auth(role="admin"))
        path, body = request_for(route, fraud_case)
        r = await client.request(route.method, path, params={"access_token": token},
                                 json=None if route.method == "GET" else body)
        if route.path.endswith("/stream"):
            streams += 1
            assert r.status == 200, (route.path, r.status)
        elif r.status != 401:
            taken.append((route.method, route.path, r.status))
        r.close()
    assert taken == [], taken
    assert streams >= 1
    r = await client.get(f"/v1/cases/{fraud_case['id']}", headers=auth(role="supervisor"))
    assert (await r.json())["version"] == fraud_case["version"]  # no write went through


async def test_a_header_token_beside_a_url_token_is_the_one_taken(client, auth, fraud_case) -> None:
    r = await client.get(f"/v1/cases/{fraud_case['id']}", headers=auth(), params={"access_token": "anything"})
    assert r.status == 200


async def test_a_token_without_a_subject_is_401(client, fraud_case: dict[str, str]) -> None:
    claims = {"sub": " ", "name": "Nobody", "role": "supervisor", "departments": ["fraud"], "exp": int(time.time()) + 60}
    for sub in ("", " "):
        token = jwt.encode({**claims, "sub": sub}, SECRET, algorithm="HS256")
        r = await client.get(f"/v1/cases/{fraud_case['id']}", headers={"Authorization": f"Bearer {token}"})
        problem = await r.json()
        assert r.status == 401 and problem["detail"] == "the sub claim is empty"


async def test_a_case_of_another_department_answers_as_an_unknown_id(client, auth, fraud_case) -> None:
    other = auth(departments=("collections",))
    unknown = str(uuid.uuid4())
    for suffix, body in (("", None), ("/timeline", None), ("/contact-details", None),
                         ("/notes", {"text": "peek"}), ("/release", {})):
        answers = []
        for case_id in (fraud_case["id"], unknown):
            path = f"/v1/cases/{case_id}{suffix}"
            r = await (client.get(path, headers=other) if body is None else client.post(path, json=body, headers=other))
            answers.append((r.status, (await r.text()).replace(case_id, "<id>")))
        assert answers[0] == answers[1], (suffix, answers)
        assert answers[0][0] == 404
    r = await client.get(f"/v1/cases/{fraud_case['id']}", headers=auth())
    assert r.status == 200 and (await r.json())["version"] == fraud_case["version"]  # and nothing was written
