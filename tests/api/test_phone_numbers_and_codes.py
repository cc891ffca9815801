"""Phone numbers match however they are written (and as written before E.164); every call we place
carries a reference for the customer to check it."""

from __future__ import annotations

import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial

from casedesk.domain import decisions as d
from casedesk.domain.values import Card, ContactStart, Customer, PhoneNumber
from casedesk.services import call_codes
from casedesk.services.http.app_keys import CALL_CODES, CASES, PERSONAL_DATA
from casedesk.services.tokens import Principal
from tests.api.conftest import new_case_body
from tests.api.test_call_verification import call, caught_up, open_case, tokyo_number


async def test_lookup_finds_the_customer_and_our_call_whichever_way_each_number_was_written(client, auth) -> None:
    international, national, full_width = tokyo_number()
    agent = auth()
    case_id = await open_case(client, agent, full_width)
    contact = await call(client, agent, case_id, international)
    await caught_up(client, auth, contact["position"])
    for written in (international, national, full_width, national.replace("-", "")):
        r = await client.get("/v1/lookup", params={"phone": written}, headers=agent)
        found = await r.json()
        assert r.status == 200, found
        assert [c["case_id"] for c in found["customers"][0]["open_cases"]] == [case_id], written
        assert [c["case_id"] for c in found["recent_outbound"]] == [case_id], written


async def test_lookup_still_finds_rows_whose_digests_were_written_before_e164(client, auth) -> None:
    """Written as the old code did: a digest of the digits as typed (here '03…' and '81 3…')."""
    international, national, _ = tokyo_number()
    pii, cases = client.app[PERSONAL_DATA], client.app[CASES]
    registered = PhoneNumber(masked="•••• " + national[-4:], key=pii.digest("phone", national.replace("-", "")))
    dialled = PhoneNumber(masked="•••• " + national[-4:],
                          key=pii.digest("phone", "".join(c for c in international if c.isdigit())))
    customer = Customer(customer_id=f"cust-{uuid.uuid4().hex[:8]}", name_masked="T••• Y•••••",
                        name_key=pii.name_key("Taro Yamada"), phone=registered)
    opened = partial(d.open_case, case_id=uuid.uuid4(), customer=customer,
                     cards=(Card(card_id="card-p", last4="4242", network="visa", kind="primary"),),
                     reason="fraud_alert", channel="phone", summary="flagged charge",
                     contact=ContactStart(contact_id=uuid.uuid4(), direction="outbound", channel="phone",
                                          phone=dialled, department="fraud", purpose="confirm a charge"))
    principal = Principal(sub="old-agent", name="K. Takano", role="agent", departments=("fraud",),
                          exp=int(time.time()) + 600)
    outcome = await cases.open(principal, opened)
    case_id = str(outcome.case.id)
    assert outcome.position is not None
    await caught_up(client, auth, outcome.position)

    r = await client.get("/v1/lookup", params={"phone": international}, headers=auth())
    found = await r.json()
    assert [c["case_id"] for c in found["customers"][0]["open_cases"]] == [case_id]
    assert [c["case_id"] for c in found["recent_outbound"]] == [case_id]
    r = await client.post("/v1/call-verifications", json={"phone": national}, headers=auth(role="ivr"))
    assert (await r.json())["called"] is True
    # A call placed now to the number registered then is still a call to the registered number.
    old_call = outcome.events[-1].contact_id
    r = await client.post(f"/v1/cases/{case_id}/contacts/{old_call}/end", headers=auth(),
                          json={"outcome": "no_answer", "summary": "no answer"})
    assert r.status == 200
    contact = await call(client, auth(), case_id, international, direction="callback")
    r = await client.get(f"/v1/cases/{case_id}", headers=auth())
    assert [c["to_registered_number"] for c in (await r.json())["contacts"]] == [False, True]
    assert contact["verification_code"]


async def test_a_number_that_is_not_one_is_422_naming_the_field(client, auth) -> None:
    body = new_case_body()
    body["customer"]["registered_phone"] = "+999 1234 5678"
    r = await client.post("/v1/cases", json=body, headers=auth())
    assert r.status == 422 and [e["field"] for e in (await r.json())["errors"]] == ["customer.registered_phone"]
    case_id = await open_case(client, auth(), tokyo_number()[0])
    r = await client.post(f"/v1/cases/{case_id}/contacts", headers=auth(), json={
        "direction": "outbound", "channel": "phone", "phone": "03-12", "department": "fraud"})
    assert r.status == 422 and [e["field"] for e in (await r.json())["errors"]] == ["phone"]
    r = await client.get("/v1/lookup", params={"phone": "+81 1"}, headers=auth())
    assert r.status == 422 and [e["field"] for e in (await r.json())["errors"]] == ["phone"]


async def test_every_call_we_place_answers_a_six_digit_reference_and_no_two_are_alike(client, auth) -> None:
    agent = auth()
    codes = []
    for direction in ("outbound", "callback") * 10:
        case_id = await open_case(client, agent, tokyo_number()[0])
        contact = await call(client, agent, case_id, tokyo_number()[1], direction=direction)
        codes.append(contact["verification_code"])
    assert all(len(c) == 6 and c.isdigit() for c in codes) and len(set(codes)) == len(codes)


async def test_an_inbound_contact_has_no_reference_and_a_case_opened_on_a_call_we_place_has_one(client, auth) -> None:
    number = tokyo_number()[0]
    body = new_case_body(contact={"direction": "outbound", "channel": "phone", "phone": number, "department": "fraud"})
    r = await client.post("/v1/cases", json=body, headers=auth())
    assert r.status == 201 and len((await r.json())["verification_code"]) == 6
    body = new_case_body(contact={"direction": "inbound", "channel": "phone", "phone": number, "department": "fraud"})
    r = await client.post("/v1/cases", json=body, headers=auth())
    assert r.status == 201 and "verification_code" not in await r.json()


async def test_a_reference_is_given_again_only_once_its_call_is_14_days_old(client, monkeypatch) -> None:
    codes, now = client.app[CALL_CODES], datetime.now(UTC)
    drawn = random.sample(range(1_000_000), 3)
    script = iter([drawn[0], drawn[0], drawn[1], drawn[0], drawn[2]])
    monkeypatch.setattr(call_codes.secrets, "randbelow", lambda _: next(script))
    first = await codes.issue(contact_id=uuid.uuid4(), case_id=uuid.uuid4(), at=now - timedelta(days=13))
    second = await codes.issue(contact_id=uuid.uuid4(), case_id=uuid.uuid4(), at=now)
    assert (first, second) == (f"{drawn[0]:06d}", f"{drawn[1]:06d}")  # drawn[0] was taken: drawn again
    later = await codes.issue(contact_id=uuid.uuid4(), case_id=uuid.uuid4(), at=now + timedelta(days=1, minutes=1))
    assert later == f"{drawn[0]:06d}"  # its call is now over 14 days old
