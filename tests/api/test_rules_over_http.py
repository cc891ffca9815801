"""The case's rules as a client meets them over HTTP.

A refused command is 409 with the rule's name at the end of `type` and leaves
the case at its version; If-Match guards the version (412 with
`current_version`); every command answer carries the version as ETag; an
Idempotency-Key replays the first answer and never writes twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.api.conftest import new_case_body
from tests.clock import ago, from_now

REGISTERED_PHONE = "+81 90 1234 5678"
USD = {"amount": "19.95", "currency": "USD"}
NO_FEE = {"amount": {"amount": "0", "currency": "JPY"}, "bearer": "issuer"}
INBOUND = {"direction": "inbound", "channel": "phone", "phone": REGISTERED_PHONE, "department": "fraud"}


@dataclass
class Case:
    """A case set up for a row: its path, its open (or last) contact, its dispute if any."""

    path: str
    contact: str
    dispute: str = ""
    position: int = 0


Body = Callable[[Case], dict[str, Any]]


# --- request bodies -------------------------------------------------------------------


def dispute(c: Case) -> dict[str, Any]:
    return {"contact_id": c.contact, "transaction_id": "tx-1", "merchant": "WEBTEL", "amount": USD,
            "reason_code": "10.4", "network": "visa"}


def reissue(c: Case, fee: dict[str, Any] = NO_FEE) -> dict[str, Any]:
    return {"contact_id": c.contact, "delivery": "mail", "expedite": False, "fee": fee}


def merchant_pays_unnamed(c: Case) -> dict[str, Any]:
    return reissue(c, {"amount": {"amount": "1100", "currency": "JPY"}, "bearer": "merchant"})


def stop(c: Case, merchant: str | None = "WEBTEL") -> dict[str, Any]:
    return {"contact_id": c.contact, "scope": "merchant"} | ({"merchant": merchant} if merchant else {})


def waiver(c: Case, dispute_id: str | None = None) -> dict[str, Any]:
    return {"contact_id": c.contact, "note": "owes nothing"} | ({"dispute_id": dispute_id} if dispute_id else {})


def details(c: Case) -> dict[str, Any]:
    return {"contact_id": c.contact, "daytime_phone": "+81 3 6789 0123"}


def review(c: Case) -> dict[str, Any]:
    return {"contact_id": c.contact, "transactions": [{
        "transaction_id": "tx-1", "merchant": "WEBTEL", "amount": USD,
        "occurred_at": ago(days=3), "answer": "unrecognized"}]}


def check(c: Case, method: str = "knowledge_based", contact: str | None = None) -> dict[str, Any]:
    return {"contact_id": contact or c.contact, "method": method, "passed": True, "factors": ["date_of_birth"]}


def constant(body: dict[str, Any]) -> Body:
    return lambda _: body


SUSPEND = constant({"reason": "fraud", "include_linked": False})
CALL = constant(INBOUND)
def CALLBACK(_: Case) -> dict[str, Any]:
    return {"due_at": from_now(days=7), "phone": "registered", "reason": "r", "department": "fraud"}
RESOLVE = constant({"resolution": "fraud_confirmed", "summary": "done"})


# --- the cases the rows start from --------------------------------------------------------


async def send(client: TestClient, headers: dict[str, str], path: str, body: dict[str, Any],
               status: int = 200) -> dict[str, Any]:
    r = await client.post(path, json=body, headers=headers)
    answer = await r.json()
    assert r.status == status, (path, answer)
    return answer


async def given(client: TestClient, headers: dict[str, str], state: str) -> Case:
    """A new case in `state`: on_a_call, locked, verified, disputed, suspended,
    suspended_unverified or resolved (always on card-p, registered phone +81 90 1234 5678)."""
    opened = await send(client, headers, "/v1/cases", new_case_body(contact=INBOUND), 201)
    c = Case(f"/v1/cases/{opened['case_id']}", opened["contact_id"], position=opened["position"])

    async def do(suffix: str, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
        answer = await send(client, headers, c.path + suffix, body, status)
        c.position = answer["position"]
        return answer

    if state == "locked":
        for _ in range(3):
            await do("/identity-checks", check(c) | {"passed": False})
    if state in ("verified", "disputed", "suspended"):
        await do("/identity-checks", check(c))
    if state == "disputed":
        c.dispute = (await do("/disputes", dispute(c), 201))["dispute_id"]
    if state in ("suspended", "suspended_unverified"):
        await do("/cards/card-p/suspend", SUSPEND(c))
    if state == "resolved":
        await do(f"/contacts/{c.contact}/end", {"outcome": "connected", "summary": "done"})
        await do("/resolve", RESOLVE(c))
    return c


@dataclass(frozen=True)
class Refusal:
    given: str
    route: str  # after /v1/cases/{id}; {contact}, {dispute} and {unknown} are filled in
    body: Body
    rule: str
    role: str = "agent"

    def __str__(self) -> str:
        return f"{self.rule}:{self.given}:{self.route}"


REFUSALS = [
    # Sensitive actions need a passed identity check in the open contact.
    Refusal("on_a_call", "/disputes", dispute, "identity-not-verified"),
    Refusal("suspended_unverified", "/cards/card-p/reissue", reissue, "identity-not-verified"),
    Refusal("on_a_call", "/payment-stops", stop, "identity-not-verified"),
    Refusal("on_a_call", "/liability-waivers", waiver, "identity-not-verified"),
    Refusal("on_a_call", "/contact-details", details, "identity-not-verified"),
    Refusal("on_a_call", "/transactions/reviewed", review, "identity-not-verified"),
    # Identity checks.
    Refusal("locked", "/identity-checks", check, "identity-locked"),
    Refusal("locked", "/payment-stops", stop, "identity-locked"),
    Refusal("on_a_call", "/identity-checks", lambda c: check(c, "callback_to_registered_number"),
            "callback-verification-needs-registered-number"),
    Refusal("on_a_call", "/identity-checks", lambda c: check(c, "id_document_at_branch"), "id-document-needs-branch"),
    Refusal("on_a_call", "/identity-unlock", constant({"reason": "nothing is locked"}), "identity-not-locked",
            role="supervisor"),
    # Cards.
    Refusal("verified", "/cards/card-p/reissue", reissue, "card-not-suspended"),
    Refusal("suspended", "/cards/card-p/suspend", SUSPEND, "card-already-suspended"),
    Refusal("suspended", "/cards/card-p/reissue", merchant_pays_unnamed, "fee-merchant-mismatch"),
    Refusal("suspended", "/cards/card-p/destroyed", constant({"branch": "Ikebukuro", "certificate_id": "C-1"}),
            "card-not-replaced"),
    Refusal("on_a_call", "/cards/card-x/suspend", SUSPEND, "unknown-card"),
    # Charges.
    Refusal("disputed", "/disputes", dispute, "duplicate-dispute"),
    Refusal("verified", "/payment-stops", lambda c: stop(c, merchant=None), "payment-stop-needs-merchant"),
    # Unknown ids.
    Refusal("on_a_call", "/contacts/{unknown}/end", constant({"outcome": "connected", "summary": "s"}),
            "unknown-contact"),
    Refusal("on_a_call", "/identity-checks", lambda c: check(c, contact=str(uuid.uuid4())), "unknown-contact"),
    Refusal("verified", "/disputes/{unknown}/resolve", constant({"outcome": "upheld", "note": "n"}), "unknown-dispute"),
    Refusal("verified", "/liability-waivers", lambda c: waiver(c, str(uuid.uuid4())), "unknown-dispute"),
    Refusal("on_a_call", "/callbacks/{unknown}/complete", constant({"note": "n"}), "unknown-callback"),
    Refusal("on_a_call", "/callbacks/{unknown}/missed", constant({}), "unknown-callback"),
    # Contacts and the life of the case.
    Refusal("on_a_call", "/contacts", CALL, "contact-already-open"),
    Refusal("on_a_call", "/resolve", RESOLVE, "contact-still-open"),
    Refusal("on_a_call", "/reopen", constant({"reason": "r"}), "case-not-resolved"),
    Refusal("on_a_call", "/release", constant({}), "not-assigned"),
    Refusal("resolved", "/contacts", CALL, "case-resolved"),
    Refusal("resolved", "/cards/card-p/suspend", SUSPEND, "case-resolved"),
    Refusal("resolved", "/online-access/suspend", constant({"reason": "r"}), "case-resolved"),
    Refusal("resolved", "/escalations", constant({"to_department": "credit_management", "reason": "r", "priority": 2}),
            "case-resolved"),
    Refusal("resolved", "/callbacks", CALLBACK, "case-resolved"),
    Refusal("resolved", "/compromise", constant({"source": "unknown", "detail": "d"}), "case-resolved"),
    Refusal("resolved", "/identity-checks", check, "case-resolved"),
    Refusal("resolved", "/disputes", dispute, "case-resolved"),
    Refusal("resolved", "/resolve", RESOLVE, "case-resolved"),
    Refusal("resolved", "/identity-unlock", constant({"reason": "r"}), "case-resolved", role="supervisor"),
]


async def version_of(client: TestClient, headers: dict[str, str], c: Case) -> int:
    r = await client.get(c.path, headers=headers, params={"min_position": str(c.position)})
    view = await r.json()
    assert r.status == 200, view
    return view["version"]


@pytest.mark.parametrize("refusal", REFUSALS, ids=str)
async def test_a_broken_rule_is_409_naming_the_rule_and_changes_nothing(client, auth, refusal: Refusal) -> None:
    agent = auth(departments=("fraud",))
    c = await given(client, agent, refusal.given)
    before = await version_of(client, agent, c)
    path = c.path + refusal.route.format(contact=c.contact, dispute=c.dispute, unknown=uuid.uuid4())
    headers = agent if refusal.role == "agent" else auth(role=refusal.role)

    r = await client.post(path, json=refusal.body(c), headers=headers)
    problem = await r.json()

    assert r.status == 409, problem
    assert r.headers["Content-Type"].startswith("application/problem+json")
    assert problem["type"].endswith(f"/rules/{refusal.rule}"), problem
    assert problem["status"] == 409 and problem["title"] and problem["detail"]
    assert "ETag" not in r.headers
    assert await version_of(client, agent, c) == before


# --- If-Match and ETag --------------------------------------------------------------------


async def test_a_stale_if_match_is_412_with_the_current_version_and_changes_nothing(client, auth) -> None:
    agent = auth()
    c = await given(client, agent, "on_a_call")
    note = {"text": "customer asked for a callback after 17:00"}
    current = await version_of(client, agent, c)

    r = await client.post(f"{c.path}/notes", json=note, headers=agent | {"If-Match": f'"{current - 1}"'})
    problem = await r.json()
    assert r.status == 412, problem
    assert problem["type"].endswith("/version-mismatch") and problem["current_version"] == current
    assert await version_of(client, agent, c) == current

    r = await client.post(f"{c.path}/notes", json=note, headers=agent | {"If-Match": f'"{current}"'})
    answer = await r.json()
    assert r.status == 201, answer
    assert answer["version"] == current + 1 and r.headers["ETag"] == f'"{current + 1}"'


async def test_every_case_command_answers_with_the_case_version_as_its_etag(client, auth) -> None:
    """Every POST route on a case, once, in an order the rules accept."""
    desk = f"desk_{uuid.uuid4().hex[:8]}"  # a queue of its own, so the claim below takes this case
    agent, supervisor = auth(departments=("fraud", desk)), auth(role="supervisor")
    version = 0

    async def command(path: str, body: dict[str, Any], status: int = 200,
                      who: dict[str, str] = agent) -> dict[str, Any]:
        nonlocal version
        r = await client.post(path, json=body, headers=who)
        answer = await r.json()
        assert r.status == status, (path, answer)
        assert r.headers["ETag"] == f'"{answer["version"]}"', path
        assert answer["version"] == version + len(answer["events"]), path
        assert [e["version"] for e in answer["events"]] == list(range(version + 1, answer["version"] + 1))
        assert isinstance(answer["position"], int), path
        version = answer["version"]
        return answer

    opened = await command("/v1/cases", new_case_body(contact=INBOUND), 201)
    c = Case(f"/v1/cases/{opened['case_id']}", opened["contact_id"])
    p = c.path
    await command(f"{p}/identity-checks", check(c))
    await command(f"{p}/transactions/reviewed", review(c))
    c.dispute = (await command(f"{p}/disputes", dispute(c), 201))["dispute_id"]
    await command(f"{p}/liability-waivers", waiver(c, c.dispute))
    await command(f"{p}/payment-stops", stop(c))
    await command(f"{p}/cards/card-p/suspend", SUSPEND(c))
    await command(f"{p}/cards/card-p/reissue", reissue(c))
    await command(f"{p}/cards/card-p/destroyed", {"branch": "Ikebukuro", "certificate_id": "CERT-1"})
    await command(f"{p}/online-access/suspend", {"reason": "fraud"})
    await command(f"{p}/compromise", {"source": "merchant_site", "detail": "asked twice", "domain": "shop.xyz"})
    await command(f"{p}/contact-details", details(c))
    await command(f"{p}/notes", {"text": "hello", "pinned": True}, 201)
    escalated = await command(f"{p}/escalations", {"to_department": desk, "reason": "decide", "priority": 2})
    await client.get(f"/v1/queues/{desk}/items", headers=agent, params={"min_position": str(escalated["position"])})
    claimed = await client.post(f"/v1/queues/{desk}/claim", headers=agent)
    taken = await claimed.json()
    assert claimed.status == 200 and taken["case_id"] == opened["case_id"], taken
    assert claimed.headers["ETag"] == f'"{taken["version"]}"' and taken["version"] == version + 1
    version = taken["version"]
    await command(f"{p}/release", {"note": "end of shift"})
    done = await command(f"{p}/callbacks", CALLBACK(c), 201)
    await command(f"{p}/callbacks/{done['callback_id']}/complete", {"note": "called"})
    missed = await command(f"{p}/callbacks", CALLBACK(c), 201)
    await command(f"{p}/callbacks/{missed['callback_id']}/missed", {})
    await command(f"{p}/callbacks/{missed['callback_id']}/reschedule", {"due_at": CALLBACK(c)["due_at"]})
    await command(f"{p}/callbacks/{missed['callback_id']}/waive", {"reason": "customer called in"})
    await command(f"{p}/escalations/{desk}/conclude", {"decision": "nothing for this desk"})
    await command(f"{p}/disputes/{c.dispute}/resolve", {"outcome": "upheld", "note": "charged back"})
    await command(f"{p}/contacts/{c.contact}/end", {"outcome": "connected", "summary": "done"})
    out = await command(f"{p}/contacts", INBOUND | {"direction": "outbound"}, 201)
    for _ in range(3):
        await command(f"{p}/identity-checks", check(c, contact=out["contact_id"]) | {"passed": False})
    await command(f"{p}/identity-unlock", {"reason": "verified at branch"}, who=supervisor)
    await command(f"{p}/contacts/{out['contact_id']}/end", {"outcome": "no_answer", "summary": "no answer"})
    await command(f"{p}/resolve", RESOLVE(c))
    await command(f"{p}/reopen", {"reason": "customer called again"})


# --- Idempotency-Key ----------------------------------------------------------------------


async def test_the_same_idempotency_key_and_body_replay_the_first_answer_and_write_once(client, auth) -> None:
    agent = auth(sub=f"agent-{uuid.uuid4().hex[:8]}")
    c = await given(client, agent, "on_a_call")
    keyed = agent | {"Idempotency-Key": f"note-{uuid.uuid4()}"}
    note = {"text": "customer will send the merchant's answer", "pinned": True}

    first = await client.post(f"{c.path}/notes", json=note, headers=keyed)
    first_body = await first.read()
    assert first.status == 201, first_body
    written = await first.json()
    await send(client, agent, f"{c.path}/notes", {"text": "a later note"}, 201)  # the case moves on

    again = await client.post(f"{c.path}/notes", json=note, headers=keyed)
    assert again.status == 201
    assert await again.read() == first_body
    assert again.headers["ETag"] == first.headers["ETag"] == f'"{written["version"]}"'

    c.position = written["position"] + 1
    assert await version_of(client, agent, c) == written["version"] + 1  # one note each, no third
    r = await client.get(f"{c.path}/timeline", headers=agent)
    texts = [e["text"] for e in (await r.json())["entries"]]
    assert sum("customer will send the merchant's answer" in t for t in texts) == 2  # pinned first + in order


async def test_the_same_idempotency_key_opens_one_case(client, auth) -> None:
    agent = auth(sub=f"agent-{uuid.uuid4().hex[:8]}")
    keyed = agent | {"Idempotency-Key": f"open-{uuid.uuid4()}"}
    body = new_case_body(contact=INBOUND)

    first = await send(client, keyed, "/v1/cases", body, 201)
    again = await send(client, keyed, "/v1/cases", body, 201)

    assert again == first
    assert (again["case_id"], again["contact_id"], again["version"], again["position"]) == (
        first["case_id"], first["contact_id"], 2, first["position"])


async def test_the_same_idempotency_key_with_another_body_is_422_and_changes_nothing(client, auth) -> None:
    agent = auth(sub=f"agent-{uuid.uuid4().hex[:8]}")
    c = await given(client, agent, "on_a_call")
    keyed = agent | {"Idempotency-Key": f"esc-{uuid.uuid4()}"}
    escalation = {"to_department": "credit_management", "reason": "needs a decision", "priority": 2}
    written = await send(client, keyed, f"{c.path}/escalations", escalation)
    c.position = written["position"]

    r = await client.post(f"{c.path}/escalations", json=escalation | {"priority": 1}, headers=keyed)
    problem = await r.json()

    assert r.status == 422, problem
    assert [e["field"] for e in problem["errors"]] == ["Idempotency-Key"]
    assert await version_of(client, agent, c) == written["version"]


async def test_a_key_older_than_24_hours_is_free_again(client, auth, pool) -> None:
    agent_sub = f"agent-{uuid.uuid4().hex[:8]}"
    agent = auth(sub=agent_sub)
    c = await given(client, agent, "on_a_call")
    key = f"old-{uuid.uuid4()}"
    keyed = agent | {"Idempotency-Key": key}
    first = await send(client, keyed, f"{c.path}/notes", {"text": "first use of the key"}, 201)
    aged = await pool.execute(  # the key is stored as a keyed digest: find it by its principal, unique here
        "UPDATE idempotency_keys SET created_at = created_at - interval '25 hours' WHERE principal = $1",
        agent_sub)
    assert aged == "UPDATE 1"

    again = await send(client, keyed, f"{c.path}/notes", {"text": "the key a day later"}, 201)
    assert again["version"] == first["version"] + 1  # a new command, not a replay and not 409
    replayed = await send(client, keyed, f"{c.path}/notes", {"text": "the key a day later"}, 201)
    assert replayed == again
