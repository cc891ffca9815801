from __future__ import annotations

from tests.api.conftest import new_case_body


async def test_open_case_add_note_and_read_it_back(client, auth) -> None:
    h = auth()
    r = await client.post("/v1/cases", json=new_case_body(contact={"direction": "inbound", "channel": "phone", "phone": "+81 90 1234 5678", "department": "fraud"}), headers=h)
    body = await r.json()
    assert r.status == 201, body
    case_id = body["case_id"]
    r = await client.post(f"/v1/cases/{case_id}/notes", json={"text": "card 4111 1111 1111 1111 told", "pinned": True}, headers=h)
    note = await r.json()
    assert r.status == 201, note
    assert "4111 1111 1111 1111" not in note["text"]
    r = await client.get(f"/v1/cases/{case_id}", headers=h)
    view = await r.json()
    assert r.status == 200, view
    assert r.headers["ETag"] == f'"{view["version"]}"'
    r = await client.get(f"/v1/cases/{case_id}/timeline", headers=h)
    tl = await r.json()
    print(tl)
    assert tl["entries"][0]["kind"] == "handoff_note_added"
