"""'Did my bank just call me?': the IVR checks a number (and the agent's reference) over real HTTP.

Only an `ivr` token may ask, and it may ask nothing else; the answer has one
shape whether or not we called; 5 checks a number an hour; each check is
recorded on the case for the agent who takes the returning call.
"""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from casedesk.services.http.app_keys import CALL_VERIFIER, CASES
from tests.api.conftest import new_case_body

CHECK = "/v1/call-verifications"
ANSWER_KEYS = {"called", "calls", "code_matches"}


def tokyo_number() -> tuple[str, str, str]:
    """One fresh Tokyo number written three ways: international, national, full-width."""
    a, b = f"{random.randrange(10_000):04d}", f"{random.randrange(10_000):04d}"
    national = f"03-{a}-{b}"
    return f"+81 3-{a}-{b}", national, national.translate(str.maketrans("0123456789-", "０１２３４５６７８９－"))


async def open_case(client: Any, agent: dict[str, str], phone: str, **body: Any) -> str:
    case = new_case_body(**body)
    case["customer"]["registered_phone"] = phone
    r = await client.post("/v1/cases", json=case, headers=agent)
    assert r.status == 201, await r.text()
    return str((await r.json())["case_id"])


async def call(client: Any, agent: dict[str, str], case_id: str, phone: str,
               direction: str = "outbound") -> dict[str, Any]:
    r = await client.post(f"/v1/cases/{case_id}/contacts", headers=agent, json={
        "direction": direction, "channel": "phone", "phone": phone, "department": "fraud",
        "purpose": "confirm a JPY 190000 charge at LUXE BAGS"})
    assert r.status == 201, await r.text()
    return dict(await r.json())


async def check(client: Any, ivr: dict[str, str], phone: str,
                code: str | None = None) -> tuple[int, dict[str, Any], Any]:
    r = await client.post(CHECK, headers=ivr, json={"phone": phone} | ({"code": code} if code else {}))
    return r.status, await r.json(), r.headers


async def caught_up(client: Any, auth: Any, position: int) -> None:
    """The IVR reads the outbound calls' projection: wait for it as a reader would."""
    r = await client.get("/v1/queues", params={"min_position": position}, headers=auth())
    assert r.status == 200


async def test_a_number_we_called_is_confirmed_however_the_customer_writes_it(client, auth) -> None:
    international, national, full_width = tokyo_number()
    agent, ivr = auth(), auth(role="ivr", departments=())
    case_id = await open_case(client, agent, international)
    contact = await call(client, agent, case_id, national)
    await caught_up(client, auth, contact["position"])

    status, answer, _ = await check(client, ivr, full_width)
    assert status == 200, answer
    assert set(answer) == ANSWER_KEYS and answer["called"] is True and answer["code_matches"] is None
    [seen] = answer["calls"]
    assert set(seen) == {"at", "department", "purpose_category"}
    assert (seen["department"], seen["purpose_category"]) == ("fraud", "card_security")
    assert "LUXE" not in str(answer) and case_id not in str(answer)  # never the free text, nor the case


async def test_the_reference_the_agent_gave_matches_and_another_does_not(client, auth) -> None:
    international, national, _ = tokyo_number()
    agent, ivr = auth(), auth(role="ivr", departments=())
    case_id = await open_case(client, agent, international)
    contact = await call(client, agent, case_id, national)
    await caught_up(client, auth, contact["position"])
    code = contact["verification_code"]
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"

    assert (await check(client, ivr, international, code))[1]["code_matches"] is True
    assert (await check(client, ivr, international, wrong))[1]["code_matches"] is False
    # Our reference, said from another phone (an impostor who heard it), is no match.
    status, answer, _ = await check(client, ivr, tokyo_number()[0], code)
    assert status == 200 and answer == {"called": False, "calls": [], "code_matches": False}


async def test_a_number_never_called_gets_the_same_shape_and_nothing_more(client, auth) -> None:
    ivr = auth(role="ivr", departments=())
    never, _, _ = tokyo_number()
    status, answer, _ = await check(client, ivr, never)
    assert status == 200 and answer == {"called": False, "calls": [], "code_matches": None}
    status, answer, _ = await check(client, ivr, never, "123456")
    assert status == 200 and answer == {"called": False, "calls": [], "code_matches": False}


async def test_a_number_is_checked_5_times_an_hour_then_429_with_retry_after(client, auth) -> None:
    ivr = auth(role="ivr", departments=())
    number, national, _ = tokyo_number()
    for _ in range(5):
        assert (await check(client, ivr, number))[0] == 200
    status, problem, headers = await check(client, ivr, national)  # the same number, written otherwise
    assert status == 429 and problem["type"].endswith("/too-many-call-verifications")
    assert headers["Content-Type"].startswith("application/problem+json")
    assert 0 < int(headers["Retry-After"]) <= 3600
    other, _, _ = tokyo_number()
    assert (await check(client, ivr, other))[0] == 200  # another number is not held up


async def test_after_5_wrong_references_none_matches_for_an_hour_and_the_case_shows_it(client, auth) -> None:
    cases = client.app[CASES]
    start = datetime.now(UTC)
    international, national, _ = tokyo_number()
    agent, ivr = auth(), auth(role="ivr", departments=())
    case_id = await open_case(client, agent, international)
    contact = await call(client, agent, case_id, national)
    await caught_up(client, auth, contact["position"])
    code = contact["verification_code"]
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for minute in (1, 10, 20, 30, 50):  # five wrong references within the hour
        cases.clock = lambda m=minute: start + timedelta(minutes=m)
        assert (await check(client, ivr, national, wrong))[1]["code_matches"] is False
    cases.clock = lambda: start + timedelta(minutes=75)  # the rate window has room again, the lock holds
    status, answer, _ = await check(client, ivr, national, code)
    assert status == 200 and answer["code_matches"] is False
    cases.clock = lambda: start + timedelta(minutes=115)  # an hour after the fifth wrong reference
    status, answer, _ = await check(client, ivr, national, code)
    assert status == 200 and answer["code_matches"] is True

    r = await client.get(f"/v1/cases/{case_id}", headers=agent)
    view = await r.json()
    assert [c["code"] for c in view["call_checks"]] == ["wrong"] * 5 + ["locked", "matched"]
    newest_first = view["handoff"]["call_checks"]
    assert [c["kind"] for c in newest_first[:3]] == ["call_check_matched", "call_check_locked", "call_check_wrong"]
    assert "did NOT match" in newest_first[2]["text"] and "impostor" in newest_first[2]["text"]
    assert "none can match for an hour" in newest_first[1]["text"]


async def test_each_check_is_recorded_on_the_case_for_the_agent_who_takes_the_returning_call(client, auth) -> None:
    international, national, _ = tokyo_number()
    agent, ivr = auth(name="S. Aoki"), auth(role="ivr", departments=(), name="IVR")
    case_id = await open_case(client, agent, international)
    contact = await call(client, agent, case_id, national)
    await caught_up(client, auth, contact["position"])
    status, _, _ = await check(client, ivr, international, contact["verification_code"])
    assert status == 200

    r = await client.get(f"/v1/cases/{case_id}/timeline", headers=agent)
    entries = (await r.json())["entries"]
    checked = next(e for e in entries if e["kind"] == "call_verified")
    called_at = datetime.fromisoformat(next(e for e in entries if e["kind"] == "contact_started")["at"])
    assert checked["contact_id"] == contact["contact_id"]
    assert f"checked our {called_at:%H:%M} outbound call to •••• {national[-4:]} through the IVR at" in checked["text"]
    assert "matched" in checked["text"] and contact["verification_code"] not in checked["text"]
    r = await client.get(f"/v1/cases/{case_id}", headers=agent)
    [first] = (await r.json())["handoff"]["call_checks"]
    assert first["kind"] == "call_check_matched" and first["text"] == checked["text"][6:]


async def test_only_ivr_may_verify_calls_and_ivr_may_do_nothing_else(client, auth) -> None:
    number, _, _ = tokyo_number()
    for role in ("agent", "supervisor", "auditor", "admin"):
        r = await client.post(CHECK, json={"phone": number}, headers=auth(role=role))
        assert r.status == 403, role
    ivr = auth(role="ivr", departments=())
    case_id = await open_case(client, auth(), number)
    for method, path in (("GET", f"/v1/cases/{case_id}"), ("GET", f"/v1/cases/{case_id}/timeline"),
                         ("GET", "/v1/lookup?phone=0312345678"), ("POST", "/v1/cases"),
                         ("POST", f"/v1/cases/{case_id}/notes"), ("GET", "/v1/queues")):
        r = await client.request(method, path, headers=ivr, json={} if method == "POST" else None)
        assert r.status == 403, (method, path)


async def test_an_unreadable_number_is_422_naming_the_field(client, auth) -> None:
    ivr = auth(role="ivr", departments=())
    r = await client.post(CHECK, json={"phone": "+999 1234 5678"}, headers=ivr)
    assert r.status == 422 and [e["field"] for e in (await r.json())["errors"]] == ["phone"]
    r = await client.post(CHECK, json={"phone": "03-1234-5678", "code": "12345"}, headers=ivr)
    assert r.status == 422 and [e["field"] for e in (await r.json())["errors"]] == ["code"]


async def test_an_ivr_token_past_its_rate_a_minute_gets_429_whatever_the_number(client, auth) -> None:
    client.app[CALL_VERIFIER].token_per_minute = 3  # CASEDESK_IVR_TOKEN_RATE; three show the rule
    cases = client.app[CASES]
    minute = datetime.now(UTC).replace(second=5, microsecond=0) + timedelta(minutes=5)
    cases.clock = lambda: minute
    ivr = auth(role="ivr", departments=())
    for _ in range(3):
        assert (await check(client, ivr, tokyo_number()[0]))[0] == 200
    status, _, headers = await check(client, ivr, tokyo_number()[0])
    assert status == 429 and 0 < int(headers["Retry-After"]) <= 60
    assert (await check(client, auth(role="ivr", departments=()), tokyo_number()[0]))[0] == 200  # another token
    cases.clock = lambda: minute + timedelta(minutes=1)
    assert (await check(client, ivr, tokyo_number()[0]))[0] == 200


async def test_twenty_checks_of_one_number_at_once_let_exactly_five_through(client, auth) -> None:
    """Counted in PostgreSQL under a lock per number: no two checks both see '4 so far'."""
    ivr = auth(role="ivr", departments=())
    number = tokyo_number()[0]
    statuses = await asyncio.gather(*(check(client, ivr, number) for _ in range(20)))
    assert sorted(s for s, _, _ in statuses) == [200] * 5 + [429] * 15


async def test_the_reference_of_an_older_call_still_matches_when_more_calls_followed(client, auth) -> None:
    """The answer tells the five newest calls; the reference is checked against every call of 14 days."""
    international, national, _ = tokyo_number()
    agent, ivr = auth(), auth(role="ivr", departments=())
    case_id = await open_case(client, agent, international)
    contacts = []
    for _ in range(6):
        contacts.append(await call(client, agent, case_id, national))
        r = await client.post(f"/v1/cases/{case_id}/contacts/{contacts[-1]['contact_id']}/end", headers=agent,
                              json={"outcome": "no_answer", "summary": "no answer"})
        assert r.status == 200
    await caught_up(client, auth, (await r.json())["position"])
    status, answer, _ = await check(client, ivr, international, contacts[0]["verification_code"])
    assert status == 200 and len(answer["calls"]) == 5 and answer["code_matches"] is True
    r = await client.get(f"/v1/cases/{case_id}", headers=agent)
    [checked] = (await r.json())["call_checks"]
    assert (checked["contact_id"], checked["code"]) == (contacts[0]["contact_id"], "matched")


async def test_a_retry_with_the_same_idempotency_key_gets_the_same_answer_and_is_not_counted(client, auth) -> None:
    ivr = auth(role="ivr", departments=())
    number = tokyo_number()[0]
    retry = ivr | {"Idempotency-Key": "ivr-call-1"}
    first = await client.post(CHECK, json={"phone": number}, headers=retry)
    for _ in range(6):
        again = await client.post(CHECK, json={"phone": number}, headers=retry)
        assert again.status == 200 and await again.read() == await first.read()
    for _ in range(4):  # the retries took none of the number's five
        assert (await check(client, ivr, number))[0] == 200
    assert (await check(client, ivr, number))[0] == 429
    r = await client.post(CHECK, json={"phone": tokyo_number()[0]}, headers=retry)
    assert r.status == 422  # the same key with another body


async def test_a_number_called_for_another_customer_answers_in_the_same_shape_as_one_never_called(client, auth) -> None:
    # An impostor learns nothing from the answer's form: the same keys, and of a call only when, who and why.
    agent, ivr = auth(), auth(role="ivr", departments=())
    called, national, _ = tokyo_number()
    case_id = await open_case(client, agent, tokyo_number()[0])  # the customer's own number is another one
    contact = await call(client, agent, case_id, national)
    await caught_up(client, auth, contact["position"])
    _, answered, _ = await check(client, ivr, called)
    _, never, _ = await check(client, ivr, tokyo_number()[0])
    assert set(answered) == set(never) == {"called", "calls", "code_matches"}
    assert answered["called"] is True and [set(c) for c in answered["calls"]] == [{"at", "department",
                                                                                    "purpose_category"}]
    assert str(case_id) not in json.dumps(answered)
