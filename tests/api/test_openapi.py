"""The served OpenAPI document is valid 3.1 and describes every route with its schemas."""

from __future__ import annotations

from openapi_spec_validator import validate

from casedesk.services.http.routes import ROUTES


async def test_openapi_document_is_valid_and_complete(client) -> None:
    r = await client.get("/v1/openapi.json")
    assert r.status == 200
    doc = await r.json()
    validate(doc)
    assert doc["openapi"].startswith("3.1")
    for route in ROUTES:
        operation = doc["paths"][route.path][route.method.lower()]
        if route.body is not None:
            schema = operation["requestBody"]["content"]["application/json"]["schema"]
            assert schema["$ref"].endswith("/" + route.body.__name__)
            assert doc["components"]["schemas"][route.body.__name__]["additionalProperties"] is False
        assert str(route.status) in operation["responses"]
    problem = doc["components"]["schemas"]["ProblemBody"]
    assert {"type", "title", "status"} <= set(problem["required"])


async def test_a_card_number_in_the_path_is_refused_and_never_logged(client, auth, capsys) -> None:
    case = await client.post("/v1/cases", headers=auth(), json={
        "customer": {"customer_id": "c", "name": "A B", "registered_phone": "+81 90 0000 1111"},
        "cards": [{"card_id": "p", "last4": "1111", "network": "visa", "kind": "primary"}],
        "reason": "lost_or_stolen", "channel": "phone", "summary": "lost"})
    case_id = (await case.json())["case_id"]
    r = await client.post(f"/v1/cases/{case_id}/cards/4111111111111111/suspend", json={"reason": "x"}, headers=auth())
    assert r.status == 422
    logged = capsys.readouterr()
    assert "/cards/[card ••••1111]/suspend" in logged.out + logged.err  # the request line, redacted
    assert "4111111111111111" not in logged.out + logged.err
