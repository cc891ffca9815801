"""The five real cases of SPEC §1, replayed over HTTP by the people who worked them.

Each test is one story: who called whom, what they checked and did, and then
what the next operator reads in the case view and the handoff timeline. The
accounts themselves are in /work/shared/seeds (see its README).
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import TestClient

from tests.api.conftest import new_case_body
from tests.clock import ago, from_now

REGISTERED_PHONE = "+81 90 1234 5678"
NO_FEE = {"amount": {"amount": "0", "currency": "JPY"}, "bearer": "issuer"}


class Desk:
    """One person at the issuer, working cases over the API with their own token.

    Desks of one story share `written`, the position of the last event anyone
    wrote, and read with it as `min_position` (read-your-writes, CONTRACT.md).
    """

    def __init__(self, client: TestClient, headers: dict[str, str], written: dict[str, int]) -> None:
        self.client, self.headers, self.written = client, headers, written

    async def post(self, path: str, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
        """POST, assert the status (and, when it succeeded, that ETag is the version)."""
        r = await self.client.post(path, json=body, headers=self.headers)
        answer = await r.json()
        assert r.status == status, (path, answer)
        if status < 300:
            assert r.headers["ETag"] == f'"{answer["version"]}"', path
            self.written["position"] = max(self.written["position"], answer["position"])
        return answer

    async def refused(self, path: str, body: dict[str, Any], status: int, rule: str = "") -> None:
        problem = await self.post(path, body, status)
        assert problem["type"].endswith(f"/rules/{rule}" if rule else ""), problem

    async def get(self, path: str) -> dict[str, Any]:
        params = {"min_position": str(self.written["position"])}
        r = await self.client.get(path, headers=self.headers, params=params)
        answer = await r.json()
        assert r.status == 200, (path, answer)
        if "version" in answer:  # case reads carry the case version as ETag
            assert r.headers["ETag"] == f'"{answer["version"]}"', path
        return answer

    async def view(self, case: str) -> dict[str, Any]:
        return await self.get(case)

    async def timeline(self, case: str) -> list[dict[str, Any]]:
        return (await self.get(f"{case}/timeline"))["entries"]

    async def lookup(self, **query: str) -> dict[str, Any]:
        return await self.get("/v1/lookup?" + urlencode(query))


Staff = Callable[..., Desk]


@pytest.fixture
def staff(client: TestClient, auth: Callable[..., dict[str, str]]) -> Staff:
    """staff("K. Takano", departments=("credit_management",)) -> their Desk."""
    written = {"position": 0}

    def person(name: str, role: str = "agent", departments: tuple[str, ...] = ("fraud",)) -> Desk:
        sub = f"{name.lower().replace('. ', '-')}-{uuid.uuid4().hex[:6]}"
        return Desk(client, auth(role=role, departments=departments, sub=sub, name=name), written)

    return person


# --- small steps every story takes ---------------------------------------------------


def types(answer: dict[str, Any]) -> list[str]:
    return [e["type"] for e in answer["events"]]


def own_phone() -> str:
    """A mobile number no other test uses, so lookups by phone find only this story."""
    return f"+81 80 {random.randrange(10_000):04d} {random.randrange(10_000):04d}"


def soon(hours: float) -> str:
    return from_now(hours=hours)


async def open_case(desk: Desk, **body: Any) -> tuple[str, dict[str, Any]]:
    """Open a case; return its path and the answer."""
    answer = await desk.post("/v1/cases", new_case_body(**body), 201)
    return f"/v1/cases/{answer['case_id']}", answer


async def start_contact(desk: Desk, case: str, direction: str, department: str,
                        phone: str | None = None, channel: str = "phone", purpose: str | None = None) -> str:
    body: dict[str, Any] = {"direction": direction, "channel": channel, "department": department}
    body |= {"phone": phone} if phone else {}
    body |= {"purpose": purpose} if purpose else {}
    answer = await desk.post(f"{case}/contacts", body, 201)
    assert types(answer) == ["ContactStarted"]
    return answer["contact_id"]


async def end_contact(desk: Desk, case: str, contact: str, outcome: str, summary: str) -> None:
    answer = await desk.post(f"{case}/contacts/{contact}/end", {"outcome": outcome, "summary": summary})
    assert types(answer) == ["ContactEnded"]


async def verify(desk: Desk, case: str, contact: str, method: str, factors: list[str]) -> None:
    body = {"contact_id": contact, "method": method, "passed": True, "factors": factors}
    assert types(await desk.post(f"{case}/identity-checks", body)) == ["IdentityVerified"]


async def suspend(desk: Desk, case: str, card: str, reason: str, include_linked: bool = False) -> list[str]:
    answer = await desk.post(f"{case}/cards/{card}/suspend", {"reason": reason, "include_linked": include_linked})
    assert types(answer) == ["CardSuspended"] * len(answer["suspended"])
    return answer["suspended"]


async def reissue(desk: Desk, case: str, card: str, contact: str, delivery: str = "mail",
                  expedite: bool = False, fee: dict[str, Any] = NO_FEE) -> dict[str, str]:
    body = {"contact_id": contact, "delivery": delivery, "expedite": expedite, "fee": fee}
    answer = await desk.post(f"{case}/cards/{card}/reissue", body)
    assert types(answer) == ["ReplacementCardIssued"]
    return answer["new_card"]


def card(view: dict[str, Any], card_id: str) -> dict[str, Any]:
    return next(c for c in view["cards"] if c["card_id"] == card_id)


def entry(entries: list[dict[str, Any]], kind: str, *words: str) -> dict[str, Any]:
    """The first timeline entry of `kind` whose sentence mentions every word."""
    found = [e for e in entries if e["kind"] == kind and all(w in e["text"] for w in words)]
    assert found, (kind, words, [e["text"] for e in entries])
    return found[0]


def kinds(items: list[dict[str, Any]]) -> list[str]:
    return [i["kind"] for i in items]


def agents_pending(view: dict[str, Any]) -> list[dict[str, Any]]:
    """What is pending for people: no card processor runs here, so its instructions wait too
    (tests/effects/processor has them confirmed by a real one)."""
    return [i for i in view["handoff"]["pending"] if i["kind"] != "processor_instruction"]


# --- 1. WEBTEL $19.95: escalation, callback, merchant-only stop, branch destroys the card ---


async def test_webtel_charge_escalated_to_credit_management_called_back_and_card_destroyed_at_branch(
    staff: Staff,
) -> None:
    kita = staff("M. Kita")  # the "communicator" who took the first call
    takano = staff("K. Takano", departments=("credit_management",))
    counter = staff("S. Ono", departments=("branch_counter",))

    case, opened = await open_case(kita, contact={
        "direction": "inbound", "channel": "phone", "phone": "+81 3 5555 0101", "department": "fraud"})
    assert types(opened) == ["CaseOpened", "ContactStarted"]
    first_call = opened["contact_id"]
    await verify(kita, case, first_call, "knowledge_based", ["name", "date_of_birth"])
    await kita.post(f"{case}/transactions/reviewed", {"contact_id": first_call, "transactions": [
        {"transaction_id": "tx-webtel", "merchant": "WEBTEL", "amount": {"amount": "19.95", "currency": "USD"},
         "occurred_at": ago(days=3), "answer": "unrecognized"}]})

    # She cannot decide: escalate with a pinned note, promise a callback at home, end the call.
    escalated = await kita.post(f"{case}/escalations", {
        "to_department": "credit_management", "priority": 2,
        "reason": "WEBTEL is a suspected fraud billing company; needs a decision on stopping it"})
    assert types(escalated) == ["CaseEscalated"]
    note = await kita.post(f"{case}/notes", {
        "text": "Stop ONLY WEBTEL charges - not all overseas: customer pays legitimate overseas subscriptions.",
        "for_department": "credit_management", "pinned": True}, 201)
    assert types(note) == ["HandoffNoteAdded"] and note["note_id"]
    due = soon(hours=2)
    promised = await kita.post(f"{case}/callbacks", {
        "due_at": due, "phone": "registered", "department": "credit_management",
        "reason": "decide the WEBTEL stop and the card number change"}, 201)
    assert types(promised) == ["CallbackScheduled"]
    callback = promised["callback_id"]
    await end_contact(kita, case, first_call, "connected",
                      "Customer held 6 minutes; credit management will call back at home after 17:00")

    # Credit management picks it up: the pinned note and the promise are what they see first.
    view = await takano.view(case)
    assert "credit_management" in view["departments"]
    assert view["pinned_note"]["text"].startswith("Stop ONLY WEBTEL")
    assert view["pinned_note"]["by"]["name"] == "M. Kita"
    assert kinds(view["handoff"]["promised"]) == ["callback"]
    assert datetime.fromisoformat(view["handoff"]["promised"][0]["due_at"]) == datetime.fromisoformat(due)
    assert "callback_due" in kinds(view["handoff"]["pending"])

    call = await start_contact(takano, case, "callback", "credit_management", phone=REGISTERED_PHONE,
                               purpose="callback promised by M. Kita")
    await verify(takano, case, call, "callback_to_registered_number", ["name", "date_of_birth"])
    stop = await takano.post(f"{case}/payment-stops", {"contact_id": call, "scope": "merchant", "merchant": "WEBTEL"})
    assert types(stop) == ["PaymentStopped"]
    assert await suspend(takano, case, "card-p", "card number known to a fraud billing company") == ["card-p"]
    new = await reissue(takano, case, "card-p", call, delivery="branch_pickup", expedite=True)
    await takano.post(f"{case}/callbacks/{callback}/complete", {"note": "Reached the customer at home at 17:00"})
    await takano.post(f"{case}/escalations", {
        "to_department": "branch_counter", "priority": 3,
        "reason": "Customer comes to the counter: destroy the old card, hand over the new one"})
    await takano.post(f"{case}/notes", {"for_department": "branch_counter", "text":
        "Accident handling (fraud). Confirm with K. Takano or Bikai in credit management before destroying."}, 201)
    # Credit management's part ends with its decision: the case leaves its queue (issue 14.5).
    decided = await takano.post(f"{case}/escalations/credit_management/conclude",
                                {"decision": "Stop WEBTEL only; replace the card, pickup at the counter"})
    assert types(decided) == ["EscalationConcluded"]
    await end_contact(takano, case, call, "connected", "WEBTEL stopped; card replaced, pickup at the counter")

    # Next day at the branch counter: staff see what HQ decided, destroy the old card.
    seen = await counter.view(case)
    assert card(seen, "card-p")["state"] == "replaced"
    assert card(seen, "card-p")["replaced_by"] == new["card_id"]
    assert "for pickup at the branch" in entry(await counter.timeline(case), "replacement_card_issued")["text"]
    visit = await start_contact(counter, case, "inbound", "branch_counter", channel="branch")
    await verify(counter, case, visit, "id_document_at_branch", ["photo_id"])
    destroyed = await counter.post(f"{case}/cards/card-p/destroyed",
                                   {"branch": "Ikebukuro counter", "certificate_id": "CERT-2024-1224-0042"})
    assert types(destroyed) == ["CardDestroyed"]
    await end_contact(counter, case, visit, "connected", "Old card cut; customer signed the certificate")
    await counter.post(f"{case}/escalations/branch_counter/conclude", {"decision": "Old card destroyed, new one handed over"})

    view = await takano.view(case)
    assert card(view, "card-p")["state"] == "destroyed"
    assert card(view, new["card_id"])["state"] == "active"
    assert card(view, new["card_id"])["last4"] == new["last4"]
    [only_stop] = view["payment_stops"]
    assert (only_stop["scope"], only_stop["merchant"]) == ("merchant", "WEBTEL")
    assert (only_stop["by"]["name"], only_stop["by"]["department"]) == ("K. Takano", "credit_management")
    [done] = view["callbacks"]
    assert (done["callback_id"], done["status"], done["phone"]) == (callback, "completed", "registered")
    assert view["handoff"]["verified"]["method"] == "id_document_at_branch"
    assert view["handoff"]["last_contact"]["by"]["name"] == "S. Ono"
    assert agents_pending(view) == []
    assert {"payment_stop", "reissue"} <= set(kinds(view["handoff"]["promised"]))
    assert [d["text"] for d in view["handoff"]["decisions"]] == [
        "Credit management decided: Stop WEBTEL only; replace the card, pickup at the counter",
        "Branch counter decided: Old card destroyed, new one handed over"]

    entries = await takano.timeline(case)
    assert entries[0]["kind"] == "handoff_note_added" and "Stop ONLY WEBTEL" in entries[0]["text"]
    entry(entries, "case_escalated", "credit management", "M. Kita")
    entry(entries, "callback_scheduled", "the registered number", "credit management")
    entry(entries, "contact_started", "Callback call to •••• 5678", "K. Takano (credit management)")
    entry(entries, "identity_verified", "callback to registered number")
    entry(entries, "payment_stopped", "merchant WEBTEL only", "K. Takano")
    entry(entries, "replacement_card_issued", "expedited for pickup at the branch")
    entry(entries, "card_destroyed", "Ikebukuro counter", "CERT-2024-1224-0042", "S. Ono (branch counter)")
    entry(entries, "callback_completed", "K. Takano")
    entry(entries, "escalation_concluded", "credit management", "K. Takano", "Stop WEBTEL only")


# --- 2. A missed outbound call: the caller is told who called before being asked anything ---


async def test_customer_returning_a_missed_call_is_told_who_called_and_verified_by_calling_back(
    staff: Staff,
) -> None:
    aoki, ikeda = staff("S. Aoki"), staff("M. Ikeda")
    kato = staff("Y. Kato", role="supervisor")
    mobile = own_phone()

    case, opened = await open_case(
        aoki, reason="fraud_alert", summary="Fraud system flagged a card-not-present charge",
        customer={"customer_id": f"cust-{uuid.uuid4().hex[:8]}", "name": "Megumi Ikeda", "registered_phone": mobile})
    dialled = await aoki.post(f"{case}/contacts", {
        "direction": "outbound", "channel": "phone", "department": "fraud", "phone": mobile,
        "purpose": "confirm a flagged charge with the cardholder"}, 201)
    attempt, reference = dialled["contact_id"], dialled["verification_code"]
    await end_contact(aoki, case, attempt, "no_answer", "No answer; message left with our reference")

    # Before returning the call, the customer checks through the IVR that it was us, with the reference
    # (and the number written the way the phone system gives it).
    await ikeda.get("/v1/queues")  # the outbound call is in the read tables
    ivr = staff("IVR", role="ivr", departments=())
    r = await ivr.client.post("/v1/call-verifications", headers=ivr.headers,
                              json={"phone": "0" + mobile.replace(" ", "")[3:], "code": reference})
    checked = await r.json()
    assert r.status == 200 and checked["called"] is True and checked["code_matches"] is True, checked
    assert [(c["department"], c["purpose_category"]) for c in checked["calls"]] == [("fraud", "card_security")]

    # The customer calls back. Before asking for anything, Ikeda sees they checked our call (recorded on the
    # case before the IVR got its answer, so a case read shows it), and who called.
    view = await ikeda.view(case)
    [seen] = view["handoff"]["call_checks"]
    called_at = datetime.fromisoformat(view["contacts"][0]["started_at"])
    assert seen["kind"] == "call_check_matched"
    assert seen["text"].startswith(f"The customer checked our {called_at:%H:%M} outbound call to •••• {mobile[-4:]}"
                                   " through the IVR at ")
    found = await ikeda.lookup(phone=mobile)
    [called] = found["recent_outbound"]
    assert (called["agent_name"], called["department"], called["case_id"]) == ("S. Aoki", "fraud", opened["case_id"])
    assert called["purpose"] == "confirm a flagged charge with the cardholder"
    assert [c["case_id"] for c in found["customers"][0]["open_cases"]] == [opened["case_id"]]
    last = (await ikeda.view(case))["handoff"]["last_contact"]
    assert (last["direction"], last["outcome"], last["by"]["name"], last["by"]["department"]) == (
        "outbound", "no_answer", "S. Aoki", "fraud")
    entries = await ikeda.timeline(case)
    missed = entry(entries, "contact_ended", f"Outbound call to •••• {mobile[-4:]}", "S. Aoki (fraud)", "no answer")
    entry(entries, "call_verified", "through the IVR", "the reference they gave matched")
    assert missed["actor"]["name"] == "S. Aoki" and missed["contact_id"] == attempt
    assert datetime.fromisoformat(missed["at"]) <= datetime.now(UTC)
    entry(entries, "contact_started", "confirm a flagged charge")
    returned = await start_contact(ikeda, case, "inbound", "fraud", phone=mobile)

    # Three failed checks lock identity checks; the fourth attempt is refused.
    fail = {"contact_id": returned, "method": "knowledge_based", "passed": False, "factors": ["date_of_birth"]}
    assert types(await ikeda.post(f"{case}/identity-checks", fail)) == ["IdentityVerificationFailed"]
    assert types(await ikeda.post(f"{case}/identity-checks", fail)) == ["IdentityVerificationFailed"]
    assert types(await ikeda.post(f"{case}/identity-checks", fail)) == ["IdentityVerificationFailed", "IdentityLocked"]
    await ikeda.refused(f"{case}/identity-checks", {**fail, "passed": True}, 409, "identity-locked")
    assert (await ikeda.view(case))["identity"]["locked"] is True

    # Only a supervisor unlocks.
    await ikeda.refused(f"{case}/identity-unlock", {"reason": "caller is the cardholder"}, 403)
    unlocked = await kato.post(f"{case}/identity-unlock",
                               {"reason": "agreed to verify by calling the registered number"})
    assert types(unlocked) == ["IdentityUnlocked"]

    # Calling back the registered number verifies; claiming it on the inbound call does not.
    callback_check = {"contact_id": returned, "method": "callback_to_registered_number", "passed": True,
                      "factors": ["registered_number_answered"]}
    await ikeda.refused(f"{case}/identity-checks", callback_check, 409, "callback-verification-needs-registered-number")
    await end_contact(ikeda, case, returned, "connected",
                      "Told caller S. Aoki (fraud) called earlier today; we call back on the registered number")
    call = await start_contact(ikeda, case, "callback", "fraud", phone=mobile,
                               purpose="verify by calling the registered number")
    await verify(ikeda, case, call, "callback_to_registered_number", ["registered_number_answered"])

    view = await ikeda.view(case)
    assert view["identity"] == {"verified_in_contact": call, "locked": False}
    assert (view["handoff"]["verified"]["method"], view["handoff"]["verified"]["contact_id"]) == (
        "callback_to_registered_number", call)
    assert [(c["direction"], c["by"]["name"]) for c in view["contacts"]] == [
        ("outbound", "S. Aoki"), ("inbound", "M. Ikeda"), ("callback", "M. Ikeda")]
    entries = await ikeda.timeline(case)
    entry(entries, "identity_locked", "supervisor must unlock")
    entry(entries, "identity_unlocked", "Y. Kato")
    entry(entries, "identity_verified", "M. Ikeda", "callback to registered number")


# --- 3. Fraud alert on a family card: both cards stopped, walk through charges, owe nothing ---


async def test_family_card_fraud_alert_suspends_both_cards_reviews_charges_and_waives_liability(
    staff: Staff,
) -> None:
    mori = staff("J. Mori")
    cards = [{"card_id": "card-p", "last4": "4242", "network": "jcb", "kind": "primary"},
             {"card_id": "card-f", "last4": "4257", "network": "jcb", "kind": "family", "primary_card_id": "card-p"}]
    case, opened = await open_case(
        mori, reason="fraud_alert", cards=cards, amount_at_risk={"amount": "190000", "currency": "JPY"},
        summary="Fraud system flagged JPY 190000 at a luxury bag shop on the family card")
    assert types(opened) == ["CaseOpened"]

    alert_call = await start_contact(mori, case, "outbound", "fraud", phone=REGISTERED_PHONE,
                                     purpose="fraud alert on the family card")
    await end_contact(mori, case, alert_call, "connected",
                      "Primary holder knows nothing of the bag; will call back together with the family-card holder")
    # They call back together; Mori offers to call them to save their phone bill.
    call = await start_contact(mori, case, "callback", "fraud", phone=REGISTERED_PHONE,
                               purpose="both cardholders on the line")
    await verify(mori, case, call, "callback_to_registered_number", ["name", "date_of_birth"])

    async def review(transaction_id: str, merchant: str, yen: str, answer: str) -> None:
        tx = {"transaction_id": transaction_id, "merchant": merchant, "amount": {"amount": yen, "currency": "JPY"},
              "occurred_at": ago(days=2), "answer": answer}
        reviewed = await mori.post(f"{case}/transactions/reviewed", {"contact_id": call, "transactions": [tx]})
        assert types(reviewed) == ["TransactionReviewed"]

    await review("tx-bag", "LOUIS VUITTON GINZA", "190000", "unrecognized")
    suspended = await suspend(mori, case, "card-f", "confirmed fraud on the family card", include_linked=True)
    assert suspended == ["card-f", "card-p"]
    await review("tx-shop", "FIRST SHOP", "3280", "recognized")
    await review("tx-super", "SUPERMARKET MARUETSU", "5400", "recognized")

    leak = await mori.post(f"{case}/compromise", {
        "source": "merchant_site", "domain": "hedgehog-sand.xyz",
        "detail": "small online shop asked for the card number twice"})
    assert types(leak) == ["CompromiseSuspected"]
    waived = await mori.post(f"{case}/liability-waivers",
                             {"contact_id": call, "note": "confirmed fraud: the customer owes nothing"})
    assert types(waived) == ["CustomerLiabilityWaived"]
    new_primary = await reissue(mori, case, "card-p", call)
    new_family = await reissue(mori, case, "card-f", call)
    await end_contact(mori, case, call, "connected", "Both cards stopped and reissued; cut the old cards")

    view = await mori.view(case)
    assert (view["reason"], view["amount_at_risk"]) == ("fraud_alert", {"amount": "190000", "currency": "JPY"})
    states = {c["card_id"]: c["state"] for c in view["cards"]}
    assert states == {"card-p": "replaced", "card-f": "replaced",
                      new_primary["card_id"]: "active", new_family["card_id"]: "active"}
    assert card(view, "card-f")["suspended_reason"] == "confirmed fraud on the family card"
    assert view["compromise"] == ["merchant_site: hedgehog-sand.xyz"]
    assert agents_pending(view) == []
    assert kinds(view["handoff"]["promised"]) == ["liability_waiver", "reissue", "reissue"]
    assert all("by mail" in p["text"] for p in view["handoff"]["promised"] if p["kind"] == "reissue")
    assert card(view, new_family["card_id"])["primary_card_id"] == new_primary["card_id"]

    entries = await mori.timeline(case)
    entry(entries, "case_opened", "fraud alert", "family card •••• 4257", "JPY 190000 at risk")
    entry(entries, "contact_ended", "Outbound call to •••• 5678", "J. Mori (fraud)", "connected")
    entry(entries, "card_suspended", "card-f", "J. Mori")
    entry(entries, "card_suspended", "card-p", "(linked card)")
    assert [e["text"].split(": ")[-1] for e in entries if e["kind"] == "transaction_reviewed"] == [
        "unrecognized", "recognized", "recognized"]
    entry(entries, "transaction_reviewed", "LOUIS VUITTON GINZA", "JPY 190000", "unrecognized")
    entry(entries, "compromise_suspected", "merchant site hedgehog-sand.xyz", "card number twice")
    entry(entries, "customer_liability_waived", "owe nothing on this case")
    assert len([e for e in entries if e["kind"] == "replacement_card_issued"]) == 2


# --- 4. Merchant data breach: the breached merchant pays for the reissue ---------------------


async def test_breach_affected_card_is_reissued_at_the_breached_merchants_expense(staff: Staff) -> None:
    supervisor, ishida = staff("M. Kondo", role="supervisor"), staff("R. Ishida")
    customer_id, phone = f"cust-{uuid.uuid4().hex[:8]}", own_phone()
    card_id = f"card-{uuid.uuid4().hex[:8]}"

    # The merchant reports the breach; a supervisor records it and takes in its list of cards.
    breach = await supervisor.client.post("/v1/breaches", headers=supervisor.headers, json={
        "merchant": "GLOBALDATA", "window_start": "2011-03-01T00:00:00+09:00",
        "window_end": "2013-04-30T23:59:59+09:00", "data_exposed": ["card_number", "security_code", "expiry_date"],
        "reissue_fee_bearer": "merchant"})
    assert breach.status == 201, await breach.text()
    breach_id = (await breach.json())["breach_id"]
    listed = {"customer_id": customer_id, "name": "Hanako Suzuki", "registered_phone": phone,
              "card_id": card_id, "last4": "1881", "network": "visa"}
    intake = await supervisor.client.post(
        f"/v1/breaches/{breach_id}/affected-cards", data=(json.dumps(listed) + "\n").encode(),
        headers={**supervisor.headers, "Content-Type": "application/x-ndjson"})
    report = await intake.json()
    assert (intake.status, report["cases_opened"]) == (202, 1), report
    supervisor.written["position"] = report["position"]

    # The customer calls after the merchant's form email; the card is found by name + phone or + last 4.
    for query in ({"name": "Hanako Suzuki", "phone": phone}, {"name": "hanako  SUZUKI", "last4": "1881"}):
        customers = (await ishida.lookup(**query))["customers"]
        mine = next(c for c in customers if c["customer_id"] == customer_id)
        assert mine["name"] == "H••••• S•••••"
        [open_case_found] = mine["open_cases"]
    case = f"/v1/cases/{open_case_found['case_id']}"
    assert (await ishida.view(case))["compromise"] == [f"data_breach: {breach_id}"]
    call = await start_contact(ishida, case, "inbound", "fraud", phone=phone,
                               purpose="customer received the GLOBALDATA breach email")
    await verify(ishida, case, call, "knowledge_based", ["name", "card_last4", "date_of_birth"])
    assert await suspend(ishida, case, card_id, "security code exposed in a merchant breach") == [card_id]
    # Nobody has to remember who pays: the breach record says the merchant does.
    new = await reissue(ishida, case, card_id, call, fee={"amount": {"amount": "1100", "currency": "JPY"}})
    await end_contact(ishida, case, call, "connected", "Card replaced; GLOBALDATA pays the reissue fee")

    view = await ishida.view(case)
    assert view["reason"] == "data_breach"
    assert card(view, card_id)["state"] == "replaced"
    assert card(view, new["card_id"])["state"] == "active"
    reissued = entry(await ishida.timeline(case), "replacement_card_issued", f"•••• {new['last4']}", card_id)
    assert reissued["text"].endswith("fee JPY 1100 borne by GLOBALDATA")
    assert reissued["actor"]["name"] == "R. Ishida"
    entry(await ishida.timeline(case), "compromise_suspected", "data breach", "GLOBALDATA data breach")


# --- 5. "Amazon Services International": the second agent already knows the whole story ------


async def test_second_agent_continues_the_amazon_charge_without_the_customer_repeating_it(
    staff: Staff,
) -> None:
    sasaki, fujita = staff("T. Sasaki"), staff("N. Fujita")
    daytime = "+81 3 6789 0123"

    case, opened = await open_case(
        sasaki, amount_at_risk={"amount": "1480", "currency": "JPY"},
        summary="Customer does not recognise a charge from Amazon Services International",
        contact={"direction": "inbound", "channel": "phone", "phone": REGISTERED_PHONE, "department": "fraud"})
    first_call = opened["contact_id"]
    await sasaki.post(f"{case}/notes",
                      {"text": "Told the customer to ask the merchant (Amazon) whether an order exists"}, 201)
    await end_contact(sasaki, case, first_call, "connected",
                      "Advised to ask the merchant; customer will call again with Amazon's answer")

    # The customer calls again and reaches someone else, who reads before speaking.
    handoff = (await fujita.view(case))["handoff"]
    assert handoff["last_contact"]["by"]["name"] == "T. Sasaki"
    assert "ask the merchant" in handoff["last_contact"]["summary"]
    assert handoff["pending"] == []
    entries = await fujita.timeline(case)
    entry(entries, "case_opened", "Amazon Services International", "JPY 1480 at risk")
    entry(entries, "handoff_note_added", "T. Sasaki (fraud)", "ask the merchant (Amazon)")
    entry(entries, "contact_ended", "T. Sasaki", "Advised to ask the merchant")

    call = await start_contact(fujita, case, "inbound", "fraud", phone=REGISTERED_PHONE,
                               purpose="merchant found no order")
    await verify(fujita, case, call, "knowledge_based", ["name", "date_of_birth"])
    assert await suspend(fujita, case, "card-p", "charge the customer and the merchant cannot explain") == ["card-p"]
    online = await fujita.post(f"{case}/online-access/suspend", {"reason": "possible account takeover"})
    assert types(online) == ["OnlineAccessSuspended"]
    dispute = await fujita.post(f"{case}/disputes", {
        "contact_id": call, "transaction_id": "tx-amazon", "merchant": "Amazon Services International",
        "amount": {"amount": "1480", "currency": "JPY"}, "reason_code": "10.4", "network": "visa"}, 201)
    assert types(dispute) == ["ChargeDisputed"]
    dispute_id = dispute["dispute_id"]
    await fujita.post(f"{case}/liability-waivers", {
        "contact_id": call, "dispute_id": dispute_id, "note": "not payable while the issuer investigates"})
    new = await reissue(fujita, case, "card-p", call)
    details = await fujita.post(f"{case}/contact-details", {"contact_id": call, "daytime_phone": daytime})
    assert types(details) == ["ContactDetailsRecorded"]
    await end_contact(fujita, case, call, "connected", "Card and online access stopped; dispute opened")

    view = await fujita.view(case)
    assert card(view, "card-p")["state"] == "replaced" and card(view, new["card_id"])["state"] == "active"
    assert view["online_access_suspended"] is True
    [disputed] = view["disputes"]
    assert (disputed["dispute_id"], disputed["status"], disputed["liability_waived"]) == (dispute_id, "open", True)
    assert view["daytime_phone"] == "•••• 0123"
    assert "liability_waiver" in kinds(view["handoff"]["promised"])
    assert kinds(agents_pending(view)) == ["dispute"]
    timeline = await fujita.timeline(case)
    entry(timeline, "contact_details_recorded", "•••• 0123", "N. Fujita")
    entry(timeline, "customer_liability_waived", "for the disputed charge")
    for shown in (str(view), str(timeline)):
        assert "6789 0123" not in shown and "67890123" not in shown

    # Resolution waits for the dispute; then the case takes only notes.
    await fujita.refused(f"{case}/resolve", {"resolution": "fraud_confirmed", "summary": "done"},
                         409, "dispute-still-open")
    await fujita.post(f"{case}/disputes/{dispute_id}/resolve", {"outcome": "upheld", "note": "merchant found no order"})
    resolved = await fujita.post(f"{case}/resolve", {
        "resolution": "fraud_confirmed", "summary": "Card replaced, charge charged back, customer owes nothing"})
    assert types(resolved) == ["CaseResolved"]
    await fujita.refused(f"{case}/online-access/suspend", {"reason": "again"}, 409, "case-resolved")
    await fujita.refused(f"{case}/contacts", {"direction": "inbound", "channel": "phone", "department": "fraud"},
                         409, "case-resolved")
    late = await fujita.post(f"{case}/notes", {"text": "Customer called to say thanks"}, 201)
    assert types(late) == ["HandoffNoteAdded"]
    assert (await fujita.view(case))["status"] == "resolved"
