"""Breach response over HTTP: the record, the affected-cards list, the outreach cases it opens."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest

from casedesk.services.breach_intake import MAX_LINE_BYTES

PAN = "4111 1111 1111 1111"
NDJSON = {"Content-Type": "application/x-ndjson"}
CSV = {"Content-Type": "text/csv"}


def breach_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "merchant": "ShopNet", "window_start": "2024-01-01T00:00:00Z", "window_end": "2024-03-31T23:59:59Z",
        "data_exposed": ["card_number", "security_code", "expiry_date"], "reissue_fee_bearer": "merchant",
    }
    body.update(overrides)
    return body


async def new_breach(client, auth, **overrides: Any) -> str:  # type: ignore[no-untyped-def]
    r = await client.post("/v1/breaches", json=breach_body(**overrides), headers=auth("supervisor"))
    assert r.status == 201, await r.text()
    return (await r.json())["breach_id"]


def card_line(n: int, tag: str, **overrides: Any) -> dict[str, str]:
    line = {"customer_id": f"cust-{tag}-{n}", "name": f"Hanako Suzuki{n}", "registered_phone": f"+81 90 {n:08d}",
            "card_id": f"card-{tag}-{n}", "last4": f"{n % 10_000:04d}", "network": "visa"}
    line.update(overrides)
    return line


async def read_after(client, url: str, headers: dict[str, str]) -> Any:  # type: ignore[no-untyped-def]
    """GET with min_position, retrying a 503 as its Retry-After says (a loaded machine may lag > 5 s)."""
    for _ in range(10):
        r = await client.get(url, headers=headers)
        if r.status != 503:
            assert r.status == 200, await r.text()
            return await r.json()
        await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
    raise AssertionError(f"{url} still behind after 10 tries")


def ndjson(lines: list[Any]) -> bytes:
    return b"".join((x if isinstance(x, bytes) else json.dumps(x).encode()) + b"\n" for x in lines)


async def test_a_supervisor_records_a_breach_and_supervisors_read_it(client, auth) -> None:
    r = await client.post("/v1/breaches", json=breach_body(), headers=auth("supervisor", name="Y. Kato"))
    assert r.status == 201
    answer = await r.json()
    assert r.headers["Location"] == f"/v1/breaches/{answer['breach_id']}"
    assert (answer["merchant"], answer["reissue_fee_bearer"], answer["recorded_by"]) == ("ShopNet", "merchant", "Y. Kato")
    read = await client.get(r.headers["Location"], headers=auth("supervisor"))
    assert read.status == 200
    assert (await read.json())["data_exposed"] == ["card_number", "security_code", "expiry_date"]


async def test_recording_a_breach_is_for_supervisors(client, auth) -> None:
    r = await client.post("/v1/breaches", json=breach_body(), headers=auth("agent"))
    assert r.status == 403
    assert r.content_type == "application/problem+json"


async def test_a_breach_record_is_idempotent_under_its_key(client, auth) -> None:
    headers = {**auth("supervisor", sub="sup-idem"), "Idempotency-Key": uuid.uuid4().hex}
    first = await client.post("/v1/breaches", json=breach_body(), headers=headers)
    again = await client.post("/v1/breaches", json=breach_body(), headers=headers)
    assert (first.status, again.status) == (201, 201)
    assert await first.read() == await again.read()
    assert again.headers["Location"] == first.headers["Location"]


@pytest.mark.parametrize(("change", "status", "says"), [
    ({"window_start": "2024-04-01T00:00:00Z"}, 409, "invalid-exposure-window"),
    ({"window_start": "2024-01-01T00:00:00"}, 422, "window_start"),
    ({"data_exposed": ["card_number", "pin_code"]}, 422, "data_exposed"),
    ({"data_exposed": []}, 422, "data_exposed"),
    ({"merchant": PAN}, 422, "merchant"),
    ({"reissue_fee_bearer": "nobody"}, 422, "reissue_fee_bearer"),
    ({"cvv": "123"}, 422, "cvv"),
])
async def test_a_breach_record_that_makes_no_sense_is_refused(client, auth, change, status, says) -> None:
    r = await client.post("/v1/breaches", json=breach_body(**change), headers=auth("supervisor"))
    assert r.status == status
    assert r.content_type == "application/problem+json"
    assert says in await r.text()
    assert PAN not in await r.text()


async def test_each_affected_card_opens_one_outreach_case_and_each_bad_line_is_named(client, auth) -> None:
    breach_id = await new_breach(client, auth)
    tag = uuid.uuid4().hex[:8]
    lines: list[Any] = [card_line(n, tag) for n in range(1, 4)]
    lines += [
        b'{"customer_id": "c", "name": broken',                       # 4: not JSON
        card_line(5, tag, card_id=PAN.replace(" ", "")),              # 5: a card number as card id
        card_line(6, tag, last4="12a4"),                              # 6
        {**card_line(7, tag), "cvv": "123"},                          # 7: a security code column
        {k: v for k, v in card_line(8, tag).items() if k != "name"},  # 8: a field missing
        card_line(9, tag, registered_phone="12"),                     # 9
        b"",                                                          # 10: blank, skipped
        card_line(11, tag),
        card_line(1, tag),                                            # 12: card 1 again
        b'{"x": "' + b"y" * 9000 + b'"}',                             # 13: over the line limit
    ]
    r = await client.post(f"/v1/breaches/{breach_id}/affected-cards", data=ndjson(lines),
                          headers={**auth("supervisor"), **NDJSON})
    assert r.status == 202, await r.text()
    report = await r.json()
    assert (report["accepted"], report["cases_opened"], report["already_known"]) == (5, 4, 1)
    assert [x["line"] for x in report["rejected"]] == [4, 5, 6, 7, 8, 9, 13]
    reasons = {x["line"]: x["reason"] for x in report["rejected"]}
    assert "card number" in reasons[5] and "cvv" in reasons[7] and "name" in reasons[8]
    assert PAN.replace(" ", "") not in await r.text()

    for n in (1, 2, 3, 11):
        case_id = str(uuid.uuid5(uuid.UUID(breach_id), f"card-{tag}-{n}"))
        view = await client.get(f"/v1/cases/{case_id}", headers=auth("agent"))
        assert view.status == 200
        case = await view.json()
        assert case["reason"] == "data_breach"
        assert [c["last4"] for c in case["cards"]] == [f"{n:04d}"]
        assert "Hanako" not in json.dumps(case)  # the name is kept masked
        timeline = await (await client.get(f"/v1/cases/{case_id}/timeline", headers=auth("agent"))).json()
        assert any("ShopNet data breach" in e["text"] for e in timeline["entries"])

    queue = await read_after(client, f"/v1/queues/breach_outreach/items?limit=500&min_position={report['position']}",
                             auth("agent"))
    waiting = {i["case_id"] for i in queue["items"]}
    assert str(uuid.uuid5(uuid.UUID(breach_id), f"card-{tag}-2")) in waiting


async def test_the_customer_of_a_breach_is_found_by_name_and_phone_or_name_and_last4(client, auth) -> None:
    breach_id = await new_breach(client, auth)
    tag = uuid.uuid4().hex[:8]
    line = card_line(4321, tag, name=f"Jiro Tanaka{tag}", registered_phone="+81 3 5555 0199")
    r = await client.post(f"/v1/breaches/{breach_id}/affected-cards", data=ndjson([line]),
                          headers={**auth("supervisor"), **NDJSON})
    assert (await r.json())["cases_opened"] == 1
    case_id = str(uuid.uuid5(uuid.UUID(breach_id), line["card_id"]))
    position = (await r.json())["position"]
    by_phone = await read_after(client, f"/v1/lookup?name=jiro%20%20tanaka{tag}&phone=%2B81-3-5555-0199"
                                        f"&min_position={position}", auth("agent"))
    by_last4 = await read_after(client, f"/v1/lookup?name=Jiro%20Tanaka{tag}&last4=4321&min_position={position}",
                                auth("agent"))
    for found in (by_phone, by_last4):
        assert case_id in json.dumps(found)


async def test_a_csv_list_counts_lines_as_an_editor_shows_them(client, auth) -> None:
    breach_id = await new_breach(client, auth)
    tag = uuid.uuid4().hex[:8]
    rows = ["network,card_id,last4,name,registered_phone,customer_id"]  # any column order
    rows += [f"visa,card-{tag}-{n},{n:04d},\"Suzuki, Hanako\",+81 90 {n:08d},cust-{n}" for n in range(1, 3)]
    rows += [f"visa,card-{tag}-x,12,Suzuki,+81 90 00000000,cust-x", "visa,only-three,1234"]
    r = await client.post(f"/v1/breaches/{breach_id}/affected-cards", data="\r\n".join(rows).encode(),
                          headers={**auth("supervisor"), **CSV})
    report = await r.json()
    assert (report["accepted"], report["cases_opened"]) == (2, 2)
    assert [x["line"] for x in report["rejected"]] == [4, 5]


async def test_a_csv_header_with_a_security_code_column_is_refused_before_anything_is_opened(
        client, auth, pool) -> None:
    breach_id = await new_breach(client, auth)
    body = "customer_id,name,registered_phone,card_id,last4,network,cvv\nc1,A B,+81 90 1111 2222,card-z,1111,visa,123\n"
    r = await client.post(f"/v1/breaches/{breach_id}/affected-cards", data=body.encode(),
                          headers={**auth("supervisor"), **CSV})
    assert r.status == 422
    assert "cvv" in await r.text()
    case_id = uuid.uuid5(uuid.UUID(breach_id), "card-z")
    assert await pool.fetchval("SELECT count(*) FROM case_events WHERE originator_id = $1", case_id) == 0


@pytest.mark.parametrize("body", [b"", b"\n", b"\n  \n"])
async def test_an_empty_list_is_refused_as_a_clients_mistake_not_taken_as_no_cards(client, auth, body) -> None:
    breach_id = await new_breach(client, auth)
    r = await client.post(f"/v1/breaches/{breach_id}/affected-cards", data=body,
                          headers={**auth("supervisor"), **NDJSON})
    assert r.status == 422 and r.content_type == "application/problem+json"
    assert "holds no line" in await r.text()


async def test_a_list_of_only_over_long_lines_is_taken_with_each_line_named(client, auth) -> None:
    breach_id = await new_breach(client, auth)
    r = await client.post(f"/v1/breaches/{breach_id}/affected-cards", data=b"x" * (MAX_LINE_BYTES + 1000) + b"\n",
                          headers={**auth("supervisor"), **NDJSON})
    assert r.status == 202, await r.text()
    report = await r.json()
    assert report["accepted"] == 0 and [x["line"] for x in report["rejected"]] == [1]


@pytest.mark.parametrize(("path", "headers", "status"), [
    ("/v1/breaches/{id}/affected-cards", {"Content-Type": "application/json"}, 415),
    (f"/v1/breaches/{uuid.uuid4()}/affected-cards", NDJSON, 404),
    ("/v1/breaches/not-a-uuid/affected-cards", NDJSON, 404),
])
async def test_an_unusable_upload_is_a_clear_problem(client, auth, path, headers, status) -> None:
    breach_id = await new_breach(client, auth)
    r = await client.post(path.format(id=breach_id), data=ndjson([card_line(1, "u")]),
                          headers={**auth("supervisor"), **headers})
    assert r.status == status
    assert r.content_type == "application/problem+json"


async def test_an_agent_cannot_upload_a_breach_list_and_a_case_id_is_not_a_breach(client, auth) -> None:
    breach_id = await new_breach(client, auth)
    r = await client.post(f"/v1/breaches/{breach_id}/affected-cards", data=ndjson([card_line(1, "a")]),
                          headers={**auth("agent"), **NDJSON})
    assert r.status == 403
    opened = await client.post("/v1/cases", json={
        "customer": {"customer_id": "c", "name": "A B", "registered_phone": "+81 90 1234 5678"},
        "cards": [{"card_id": "card-p", "last4": "4242", "network": "visa", "kind": "primary"}],
        "reason": "fraud_alert", "channel": "phone", "summary": "alert"}, headers=auth("agent"))
    case_id = (await opened.json())["case_id"]
    assert (await client.get(f"/v1/breaches/{case_id}", headers=auth("supervisor"))).status == 404


async def test_a_breach_record_is_read_by_supervisors_and_admins_only(client, auth) -> None:
    """The role table gives breaches to supervisors (and admins); agents and auditors are not shown them."""
    breach_id = await new_breach(client, auth)
    for role, status in (("agent", 403), ("auditor", 403), ("supervisor", 200), ("admin", 200)):
        r = await client.get(f"/v1/breaches/{breach_id}", headers=auth(role))
        assert r.status == status, (role, await r.text())


async def reach_and_verify(client, auth, case_id: str, phone: str) -> str:  # type: ignore[no-untyped-def]
    """An outbound call to the registered number, verified; the card suspended. Returns the contact id."""
    headers = auth("agent")
    contact = await client.post(f"/v1/cases/{case_id}/contacts", json={
        "direction": "outbound", "channel": "phone", "department": "fraud", "phone": phone,
        "purpose": "breach outreach"},
        headers=headers)
    assert contact.status == 201, await contact.text()
    contact_id = (await contact.json())["contact_id"]
    checked = await client.post(f"/v1/cases/{case_id}/identity-checks", json={
        "contact_id": contact_id, "method": "knowledge_based", "passed": True, "factors": ["date_of_birth"]},
        headers=headers)
    assert checked.status == 200, await checked.text()
    return contact_id


async def test_a_reissue_on_a_breach_case_is_borne_by_the_breached_merchant_by_default(client, auth) -> None:
    breach_id = await new_breach(client, auth, merchant="ShopNet Japan")
    tag = uuid.uuid4().hex[:8]
    line = card_line(77, tag)
    await client.post(f"/v1/breaches/{breach_id}/affected-cards", data=ndjson([line]),
                      headers={**auth("supervisor"), **NDJSON})
    case_id = str(uuid.uuid5(uuid.UUID(breach_id), line["card_id"]))
    contact_id = await reach_and_verify(client, auth, case_id, line["registered_phone"])
    card = line["card_id"]
    suspended = await client.post(f"/v1/cases/{case_id}/cards/{card}/suspend", json={"reason": "in breach"},
                                  headers=auth("agent"))
    assert suspended.status == 200, await suspended.text()
    charged = await client.post(f"/v1/cases/{case_id}/cards/{card}/reissue", json={
        "contact_id": contact_id, "delivery": "mail", "fee": {"amount": {"amount": "1100", "currency": "JPY"},
                                                             "bearer": "customer"}}, headers=auth("agent"))
    assert charged.status == 409
    assert "breach-reissue-not-charged-to-customer" in await charged.text()
    r = await client.post(f"/v1/cases/{case_id}/cards/{card}/reissue", json={
        "contact_id": contact_id, "delivery": "mail", "fee": {"amount": {"amount": "1100", "currency": "JPY"}}},
        headers=auth("agent"))
    assert r.status == 200, await r.text()
    timeline = await (await client.get(f"/v1/cases/{case_id}/timeline", headers=auth("agent"))).json()
    assert any("borne by ShopNet Japan" in e["text"] for e in timeline["entries"])


async def test_a_compromise_naming_a_recorded_breach_takes_its_fee_bearer(client, auth) -> None:
    breach_id = await new_breach(client, auth, merchant="LeakyMart")
    opened = await client.post("/v1/cases", json={
        "customer": {"customer_id": "c", "name": "A B", "registered_phone": "+81 90 1234 5678"},
        "cards": [{"card_id": "card-p", "last4": "4242", "network": "visa", "kind": "primary"}],
        "reason": "data_breach", "channel": "phone", "summary": "customer says the card was in a breach"},
        headers=auth("agent"))
    case_id = (await opened.json())["case_id"]
    unknown = await client.post(f"/v1/cases/{case_id}/compromise", json={
        "source": "data_breach", "detail": "told by the customer", "breach_id": str(uuid.uuid4())},
        headers=auth("agent"))
    assert unknown.status == 422
    named = await client.post(f"/v1/cases/{case_id}/compromise", json={
        "source": "data_breach", "detail": "told by the customer", "breach_id": breach_id}, headers=auth("agent"))
    assert named.status == 200, await named.text()
    contact_id = await reach_and_verify(client, auth, case_id, "+81 90 1234 5678")
    await client.post(f"/v1/cases/{case_id}/cards/card-p/suspend", json={"reason": "breach"}, headers=auth("agent"))
    r = await client.post(f"/v1/cases/{case_id}/cards/card-p/reissue", json={
        "contact_id": contact_id, "delivery": "mail", "fee": {"amount": {"amount": "0", "currency": "JPY"}}},
        headers=auth("agent"))
    assert r.status == 200, await r.text()
    timeline = await (await client.get(f"/v1/cases/{case_id}/timeline", headers=auth("agent"))).json()
    assert any("borne by LeakyMart" in e["text"] for e in timeline["entries"])


async def test_a_nul_character_in_a_listed_line_is_rejected_not_stored(client, auth) -> None:
    breach_id = await new_breach(client, auth)
    tag = uuid.uuid4().hex[:8]
    r = await client.post(f"/v1/breaches/{breach_id}/affected-cards",
                          data=ndjson([card_line(1, tag, name="Hanako\x00Suzuki"), card_line(2, tag)]),
                          headers={**auth("supervisor"), **NDJSON})
    report = await r.json()
    assert (report["cases_opened"], [x["line"] for x in report["rejected"]]) == (1, [1])
    assert "NUL" in report["rejected"][0]["reason"]
    # The read side still moves: a read that waits for the upload's position answers.
    queue = await read_after(client, f"/v1/queues/breach_outreach/items?limit=1&min_position={report['position']}",
                             auth("agent"))
    assert "items" in queue


async def test_card_data_inside_a_field_rejects_that_line_only_and_is_never_repeated(client, auth) -> None:
    breach_id = await new_breach(client, auth)
    tag = uuid.uuid4().hex[:8]
    pan = PAN.replace(" ", "")
    lines: list[Any] = [
        card_line(1, tag, card_id=f"card {pan}"),                 # a card number inside the id
        card_line(2, tag, customer_id=f"{pan}/123"),
        card_line(3, tag, network="visa cvv 123"),                 # a labelled security code
        {**card_line(4, tag), pan: "1"},                           # a card number as a key
        card_line(5, tag),
    ]
    r = await client.post(f"/v1/breaches/{breach_id}/affected-cards", data=ndjson(lines),
                          headers={**auth("supervisor"), **NDJSON})
    assert r.status == 202, await r.text()
    report = await r.json()
    assert (report["cases_opened"], [x["line"] for x in report["rejected"]]) == (1, [1, 2, 3, 4])
    assert pan not in await r.text() and "123" not in json.dumps(report["rejected"])


async def test_a_csv_list_without_a_header_is_refused_without_repeating_its_first_row(client, auth) -> None:
    breach_id = await new_breach(client, auth)
    pan = PAN.replace(" ", "")
    body = f"C1,Taro Yamada,0312345678,{pan},123,visa\n".encode()
    r = await client.post(f"/v1/breaches/{breach_id}/affected-cards", data=body, headers={**auth("supervisor"), **CSV})
    assert r.status == 422
    text = await r.text()
    assert pan not in text and "Taro" not in text and "0312345678" not in text
