"""No caller learns the id of a case it may not see, from any answer (issue 15, the role table).

An agent sees the cases of its departments and those assigned to it; the
other roles see every case. Every route a caller may read (and the claim, and
lookup in each of its forms) is called by each kind of caller; every UUID in
an answer that names a case must name one the caller may see. The ids the
caller sent itself (in the path) are not learnt from the answer.

The database is shared with the rest of the suite, so lookups by a common
phone and the fraud queues carry many other tests' cases too: the property
holds for all of them, not only for the cases made here.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import asyncpg
import pytest

from casedesk.services.case_access import may_see
from casedesk.services.http.routes import ROUTES
from casedesk.services.tokens import Principal
from tests.api.conftest import new_case_body
from tests.api.test_role_matrix import request_for
from tests.clock import ago

UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
NOT_JSON = ("/stream", "/metrics")  # the stream never ends; the metrics are counts without ids


@pytest.fixture
async def story(client, auth) -> dict[str, Any]:
    """Two cases of one customer: one fraud's only, one escalated to a department of its own (dept)."""
    dept = f"d_{uuid.uuid4().hex[:6]}"
    phone = f"+81 90 {uuid.uuid4().int % 10_000:04d} {uuid.uuid4().int % 10_000:04d}"
    name = f"Hanako {uuid.uuid4().hex[:6]}"
    fraud = auth(departments=("fraud",))
    ids: dict[str, Any] = {"dept": dept, "phone": phone, "name": name}
    for which in ("hidden", "shared"):
        body = new_case_body(contact={"direction": "outbound", "channel": "phone", "phone": phone,
                                      "department": "fraud", "purpose": f"about the {which} case"})
        body["customer"].update(registered_phone=phone, name=name)
        r = await client.post("/v1/cases", json=body, headers=fraud)
        opened = await r.json()
        assert r.status == 201, opened
        ids[which], ids[f"{which}_contact"], ids["position"] = opened["case_id"], opened["contact_id"], opened["position"]
    r = await client.post(f"/v1/cases/{ids['shared']}/escalations", headers=fraud,
                          json={"to_department": dept, "reason": "a credit decision", "priority": 2})
    assert r.status == 200, await r.text()
    ids["position"] = (await r.json())["position"]
    r = await client.post("/v1/breaches", headers=auth(role="supervisor"), json={
        "merchant": "WEBTEL", "window_start": ago(days=30), "window_end": ago(days=29),
        "data_exposed": ["card_number"], "reissue_fee_bearer": "merchant"})
    assert r.status == 201, await r.text()
    ids["breach"] = (await r.json())["breach_id"]
    return ids


def callers(auth, dept: str) -> dict[str, tuple[dict[str, str], Principal]]:
    kinds = {"agent_of_dept": ("agent", (dept,)), "agent_of_fraud": ("agent", ("fraud",)),
             "agent_elsewhere": ("agent", ("collections",)), "supervisor": ("supervisor", ("fraud",)),
             "auditor": ("auditor", ()), "admin": ("admin", ())}
    out = {}
    for kind, (role, departments) in kinds.items():
        sub = f"{kind}-{uuid.uuid4().hex[:6]}"
        out[kind] = (auth(role=role, departments=departments, sub=sub),
                     Principal(sub=sub, name="n", role=role, departments=departments, exp=0))  # type: ignore[arg-type]
    return out


def reads_of(story: dict[str, Any], caller_queue: str) -> list[tuple[str, str, dict[str, str]]]:
    """(method, path, query) of every read route, aimed at the shared case, plus the claim and lookups."""
    calls: list[tuple[str, str, dict[str, str]]] = []
    position = {"min_position": str(story["position"])}
    for route in ROUTES:
        if route.method != "GET" or route.roles is None or route.path.endswith(NOT_JSON):
            continue
        path = (route.path.replace("{case_id}", story["shared"]).replace("{queue}", caller_queue)
                .replace("{breach_id}", story["breach"]).replace("{webhook_id}", str(uuid.uuid4())))
        calls.append(("GET", path, position if "min_position" in route.query else {}))
    calls += [("GET", "/v1/lookup", {"phone": story["phone"], **position}),
              ("GET", "/v1/lookup", {"phone": "+81 90 1234 5678", **position}),  # many cases, most not made here
              ("GET", "/v1/lookup", {"name": story["name"], "phone": story["phone"], **position}),
              ("GET", "/v1/lookup", {"name": story["name"], "last4": "4242", **position}),
              ("GET", "/v1/queues/fraud_alerts/items", position),
              ("POST", f"/v1/queues/{caller_queue}/claim", {})]
    return calls


async def case_ids_learnt(pool: asyncpg.Pool, answer: str, sent: str) -> dict[str, tuple[list[str], str | None]]:
    """The case ids in an answer that were not in the request, with each case's departments and assignee."""
    found = set(UUID_TEXT.findall(answer)) - set(UUID_TEXT.findall(sent))
    rows = await pool.fetch("SELECT case_id::text, departments, assignee FROM case_files WHERE case_id = ANY($1::uuid[])",
                            list(found))
    return {r["case_id"]: (list(r["departments"]), r["assignee"]) for r in rows}


@pytest.mark.parametrize("kind", ["agent_of_dept", "agent_of_fraud", "agent_elsewhere", "supervisor", "auditor",
                                  "admin"])
async def test_no_answer_carries_the_id_of_a_case_the_caller_may_not_see(client, auth, pool, story, kind) -> None:
    headers, principal = callers(auth, story["dept"])[kind]
    queue = story["dept"] if kind == "agent_of_dept" else "fraud_alerts"
    leaks, answered = [], 0
    for method, path, query in reads_of(story, queue):
        r = await client.request(method, path, params=query, headers={**headers, "X-Access-Reason": "audit"})
        text = await r.text()
        if r.status in (200, 201):
            answered += 1
        for case_id, (departments, assignee) in (await case_ids_learnt(pool, text, path)).items():
            if not may_see(principal, departments, assignee):
                leaks.append((method, path, query, r.status, case_id, departments))
    assert leaks == [], "\n".join(map(str, leaks))
    assert answered >= 5, "the sweep reached too few routes to prove anything"


async def test_lookup_gives_an_agent_only_the_cases_it_may_see(client, auth, story) -> None:
    position = {"min_position": str(story["position"])}
    found = {}
    for kind in ("agent_of_dept", "agent_of_fraud", "agent_elsewhere", "supervisor"):
        headers, _ = callers(auth, story["dept"])[kind]
        r = await client.get("/v1/lookup", params={"phone": story["phone"], **position}, headers=headers)
        answer = await r.json()
        assert r.status == 200, answer
        assert len(answer["customers"]) == 2  # each case was opened with a customer id of its own
        found[kind] = ({c["case_id"] for customer in answer["customers"] for c in customer["open_cases"]},
                       sorted((a["case_id"] or "-", a["purpose"] or "-") for a in answer["recent_outbound"]))
    both = {story["hidden"], story["shared"]}
    assert found["agent_of_fraud"][0] == found["supervisor"][0] == both
    assert found["agent_of_dept"][0] == {story["shared"]}
    assert found["agent_elsewhere"][0] == set()
    # The calls are still told (who rang, when), but not which case they were about, nor the agent's words.
    assert found["agent_of_dept"][1] == sorted([("-", "-"), (story["shared"], "about the shared case")])
    assert found["agent_elsewhere"][1] == [("-", "-"), ("-", "-")]
    assert len(found["agent_of_fraud"][1]) == 2 and ("-", "-") not in found["agent_of_fraud"][1]


async def test_a_case_the_caller_may_not_see_is_404_on_every_case_route(client, auth, story) -> None:
    """Every route under /v1/cases/{id} that an agent's role admits answers a hidden case as an unknown id."""
    headers, _ = callers(auth, story["dept"])["agent_elsewhere"]
    unknown = str(uuid.uuid4())
    differ = []
    # With an If-Match that is not the case's version and a key: neither may be judged before access is.
    headers = {**headers, "If-Match": '"999"'}
    for route in ROUTES:
        if not route.path.startswith("/v1/cases/{case_id}") or "agent" not in (route.roles or ()):
            continue
        answers = []
        for case_id in (story["hidden"], unknown):
            path, body = request_for(route, {"id": case_id, "contact": story["hidden_contact"]})
            r = await client.request(route.method, path, json=body, headers={
                **headers, "X-Access-Reason": "r", "Idempotency-Key": f"k-{uuid.uuid4()}"})
            answers.append((r.status, (await r.text()).replace(case_id, "<id>")))
        if answers[0] != answers[1] or answers[0][0] != 404:
            differ.append((route.method, route.path, answers))
    assert differ == [], "\n".join(map(str, differ))
