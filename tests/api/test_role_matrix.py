"""Every route × every kind of caller gets the answer CONTRACT.md's role table implies.

Allowed means the request passes authentication and authorisation (it may
still be refused by a rule, 409, or by validation, 422); refused means 401
for a missing, expired or forged token, 403 for a role not allowed and 404 for
a case the caller may not see (as for an unknown id: a 403 would tell it exists).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from casedesk.services.http.routes import ROUTES
from tests.api.conftest import SECRET, new_case_body
from tests.api.test_bad_input import routes as case_bodies

CALLERS = ["agent_of_case", "agent_other_dept", "assigned_agent", "supervisor", "auditor", "admin", "ivr",
           "no_token", "expired", "forged"]
CASE_LEVEL = "{case_id}"


AGENT_WORK = ("agent", "supervisor", "admin")  # "every case command ...": agents, and all an agent may
CASE_READS = ("agent", "supervisor", "auditor", "admin")  # cases and timeline: the auditor reads them too
SUPERVISORS = ("supervisor", "admin")


def contract_roles(method: str, path: str) -> tuple[str, ...] | None:
    """CONTRACT.md's role table, written out here apart from routes.py so that the two are compared.

    Where the table is silent (queue listings, flagged merchants, the unmasked phone, clocks) the
    decision is README's "Who may call what": queue listings and flagged merchants are reads for every
    staff role; the unmasked phone is for those who work the case; clocks read like the case.
    """
    if path in ("/healthz", "/readyz", "/metrics", "/dashboard", "/cases/{case_id}", "/desk/cases/{case_id}",
                "/v1/openapi.json"):
        return None  # public
    if path == "/v1/call-verifications":
        return ("ivr",)  # the IVR's service token only (CONTRACT.md "Call verification")
    if path.startswith("/v1/webhooks") or path.endswith("/erasure"):
        return ("admin",)  # webhooks; erasure of a customer's data (issue 21)
    if path.startswith("/v1/approvals"):
        return SUPERVISORS  # "GET /v1/approvals ... (supervisor)", approve and reject: four eyes
    if path.startswith(("/v1/breaches", "/v1/merchants/flags")) or path.endswith("/identity-unlock"):
        return SUPERVISORS  # "supervisor: ... identity unlock, breaches, merchant flags"
    if path.startswith("/v1/dashboard"):
        return ("supervisor", "auditor", "admin")
    if path.endswith("/history"):
        return ("auditor", "supervisor", "admin")  # the cases table: "auditor, supervisor or admin"
    if path.endswith(("/verify", "/access-log")):
        return ("auditor", "admin")  # "auditor: ... verify"; the access log is the auditors' too
    if path.endswith(("/presence", "/stream")):
        return CASE_READS  # presence and the case stream: whoever may read the case (README "Presence")
    if method == "GET" and (path in ("/v1/cases/{case_id}", "/v1/cases/{case_id}/timeline",
                                     "/v1/cases/{case_id}/clocks", "/v1/queues", "/v1/queues/{queue}/items",
                                     "/v1/merchants/flagged")):
        return CASE_READS
    if path.startswith("/v1/cases") or path in ("/v1/queues/{queue}/claim", "/v1/lookup"):
        return AGENT_WORK  # case commands (and the unmasked phone), claims, lookup
    raise AssertionError(f"{method} {path} is not in the role table: add it here and to README")


def test_the_route_table_is_the_contracts_role_table() -> None:
    differ = [(r.method, r.path, r.roles, contract_roles(r.method, r.path)) for r in ROUTES
              if (None if r.roles is None else set(r.roles)) !=
              (None if contract_roles(r.method, r.path) is None else set(contract_roles(r.method, r.path) or ()))]
    assert differ == [], "\n".join(map(str, differ))


def expected(route: Any, caller: str) -> str:
    if route.roles is None:
        return "allowed"
    if caller in ("no_token", "expired", "forged"):
        return "401"
    role = {"agent_of_case": "agent", "agent_other_dept": "agent", "assigned_agent": "agent"}.get(caller, caller)
    if role not in route.roles:
        return "403"
    if caller == "agent_other_dept" and CASE_LEVEL in route.path:
        return "404"  # not its department's case, never assigned to it: answered as an unknown id
    if role == "agent" and caller != "agent_of_case" and route.path.startswith("/v1/queues/{queue}"):
        return "403"  # fraud_alerts is worked by department fraud only
    return "allowed"


def headers_for(auth, caller: str, assigned_sub: str) -> dict[str, str]:
    return {
        "agent_of_case": auth(departments=("fraud",)),
        "agent_other_dept": auth(departments=("collections",)),
        "assigned_agent": auth(departments=("collections",), sub=assigned_sub),
        "supervisor": auth(role="supervisor"),
        "auditor": auth(role="auditor"),
        "admin": auth(role="admin"),
        "ivr": auth(role="ivr", departments=()),
        "no_token": {},
        "expired": auth(ttl=-60),
        "forged": auth(secret="forged-" + SECRET),
    }[caller]


@pytest.fixture
async def assigned_case(client, auth) -> dict[str, str]:
    """A fraud case, held by an agent of another department (so only assignment admits them)."""
    sub = f"holder-{uuid.uuid4().hex[:6]}"
    r = await client.post("/v1/cases", json=new_case_body(contact={"direction": "inbound", "channel": "phone", "department": "fraud"}), headers=auth())
    opened = await r.json()
    dept = f"d_{uuid.uuid4().hex[:6]}"
    r = await client.post(f"/v1/cases/{opened['case_id']}/escalations", headers=auth(),
                          json={"to_department": dept, "reason": "r", "priority": 3})
    position = (await r.json())["position"]
    await client.get(f"/v1/queues/{dept}/items", params={"min_position": position}, headers=auth(role="supervisor"))
    r = await client.post(f"/v1/queues/{dept}/claim", headers=auth(departments=(dept,), sub=sub))
    assert r.status == 200, await r.text()
    # The holder is of dept; the matrix's assigned agent is the same sub with another department.
    return {"id": opened["case_id"], "contact": opened["contact_id"], "sub": sub}


def request_for(route: Any, case: dict[str, str]) -> tuple[str, dict[str, Any] | None]:
    path = route.path.replace("{case_id}", case["id"]).replace("{queue}", "fraud_alerts")
    for name in ("contact_id", "dispute_id", "callback_id", "credit_id", "breach_id",
                 "webhook_id", "approval_id", "customer_id"):
        path = path.replace("{" + name + "}", case["contact"] if name == "contact_id" else str(uuid.uuid4()))
    path = path.replace("{card_id}", "card-p").replace("{department}", "credit_management")
    if route.method == "GET":
        return path, None
    if path.endswith("/presence"):  # a heartbeat, no command: its own bad input is in test_presence
        return path, {"activity": "viewing"}
    bodies = {p.replace(case["id"], "{id}"): b for p, b in case_bodies(case)}
    key = path.replace(case["id"], "{id}")
    for known, body in bodies.items():
        if known.split("/")[-1] == key.split("/")[-1] and known.count("/") == key.count("/"):
            return path, body
    return path, {"/v1/cases": new_case_body(), "/v1/merchants/flags": {"merchant": "M", "reason": "r"},
                  "/v1/call-verifications": {"phone": "+81 3 5555 0101"}}.get(path, {})


@pytest.mark.parametrize("caller", CALLERS)
async def test_every_route_answers_each_caller_as_the_role_table_says(client, auth, assigned_case, caller) -> None:
    mismatches = []
    # Release last: once the assigned agent lets go, the case is no longer theirs.
    for route in sorted(ROUTES, key=lambda r: r.path.endswith("/release")):
        if route.path.endswith("/stream"):
            continue  # a stream; its auth is tested in test_dashboard
        path, body = request_for(route, assigned_case)
        h = headers_for(auth, caller, assigned_case["sub"])
        r = await (client.get(path, headers=h) if route.method == "GET"
                   else client.request(route.method, path, json=body, headers=h))
        hidden = r.status == 404 and (await r.json())["title"] == "No such case"  # the case exists
        got = "401" if r.status == 401 else "403" if r.status == 403 else "404" if hidden else "allowed"
        if got != expected(route, caller):
            mismatches.append((route.method, route.path, r.status, expected(route, caller)))
    assert mismatches == [], "\n".join(map(str, mismatches))
