"""The follow-up phone: masked in every view, unmasked only to those working the case, each read logged."""

from __future__ import annotations

from tests.api.conftest import new_case_body


async def test_the_daytime_phone_is_masked_in_views_and_each_unmasked_read_is_logged(client, auth) -> None:
    agent = auth(sub="agent-dial", name="S. Ito")
    r = await client.post("/v1/cases", headers=agent, json=new_case_body(
        contact={"direction": "inbound", "channel": "phone", "department": "fraud"}))
    opened = await r.json()
    case_id, contact = opened["case_id"], opened["contact_id"]
    await client.post(f"/v1/cases/{case_id}/identity-checks", headers=agent, json={
        "contact_id": contact, "method": "knowledge_based", "passed": True, "factors": ["date_of_birth"]})
    r = await client.post(f"/v1/cases/{case_id}/contact-details", headers=agent,
                          json={"contact_id": contact, "daytime_phone": "+81 3 5555 0123"})
    assert r.status == 200, await r.text()

    view = await (await client.get(f"/v1/cases/{case_id}", headers=agent)).json()
    assert view["daytime_phone"] == "•••• 0123"
    assert "5555" not in str(view)

    r = await client.get(f"/v1/cases/{case_id}/contact-details", headers={**agent, "X-Access-Reason": "calling back"})
    assert r.status == 200 and (await r.json())["daytime_phone"] == "+81355550123"  # E.164, ready to dial
    assert r.headers["Cache-Control"] == "no-store"
    assert (await client.get(f"/v1/cases/{case_id}/contact-details", headers=auth(role="auditor"))).status == 403
    assert (await client.get(f"/v1/cases/{case_id}/contact-details", headers=auth(departments=("x",)))).status == 403

    r = await client.get(f"/v1/cases/{case_id}/access-log", headers=auth(role="auditor"))
    [entry] = (await r.json())["items"]
    assert (entry["agent_id"], entry["why"]) == ("agent-dial", "calling back")
    assert "daytime phone" in entry["what"]
