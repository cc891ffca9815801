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


async def test_the_document_has_what_outside_tools_found_missing(client) -> None:
    """Issue 14, item 3: what schemathesis, Spectral, Redocly and a generated client found, each pinned."""
    doc = await (await client.get("/v1/openapi.json")).json()
    assert doc["servers"] and doc["info"]["contact"]
    operations = {(m.upper(), p): op for p, ops in doc["paths"].items() for m, op in ops.items()}
    for (method, path), op in operations.items():
        assert op["description"] and op["tags"], (method, path)
        assert "_" not in op["operationId"] and "handler" not in op["operationId"].lower(), op["operationId"]
        public = next(r for r in ROUTES if (r.method, r.path) == (method, path)).roles is None
        assert (op["security"] == []) == public, (method, path)
        for status, answer in op["responses"].items():
            for media, content in answer.get("content", {}).items():
                bare = content["schema"] == {"type": "object"}
                assert not (bare and path != "/v1/openapi.json"), (method, path, status, media)
    assert set(operations[("GET", "/v1/dashboard/stream")]["responses"]["200"]["content"]) == {"text/event-stream"}
    assert operations[("POST", "/v1/queues/{queue}/claim")]["responses"]["200"]["content"]["application/json"][
        "schema"]["$ref"].endswith("/ClaimAnswer")
    upload = operations[("POST", "/v1/breaches/{breach_id}/affected-cards")]["requestBody"]["content"]
    assert {"application/x-ndjson", "text/csv"} <= set(upload)
    assert all(media["schema"]["type"] == "string" for media in upload.values())  # lines, not a JSON array
    opened = operations[("POST", "/v1/cases")]["responses"]
    assert {"ETag", "Location"} <= set(opened["201"]["headers"]) and "200" in opened  # 200: the alert's case again
    assert "ETag" in operations[("GET", "/v1/cases/{case_id}")]["responses"]["200"]["headers"]
    assert "Retry-After" in operations[("POST", "/v1/call-verifications")]["responses"]["429"]["headers"]
    assert opened["201"]["links"]["getCase"]["parameters"] == {"case_id": "$response.body#/case_id"}
    assert "examples" in operations[("POST", "/v1/cases")]["requestBody"]["content"]["application/json"]
    history = {p["name"]: p for p in operations[("GET", "/v1/cases/{case_id}/history")]["parameters"]}
    assert "Not with `version`" in history["as_of"]["description"] and history["as_of"]["schema"]["format"] == "date-time"
    items = {p["name"]: p for p in operations[("GET", "/v1/queues/{queue}/items")]["parameters"]}
    assert "next_cursor" in items["cursor"]["description"]
    schemas = doc["components"]["schemas"]
    assert schemas["TimelineEntry"]["properties"]["at"]["format"] == "date-time"
    assert schemas["QueueItem"]["properties"]["enqueued_at"]["format"] == "date-time"
    assert schemas["ScheduleCallback"]["properties"]["due_at"]["format"] == "date-time"


async def test_a_request_without_a_token_is_told_why(client) -> None:
    r = await client.get("/v1/queues")
    problem = await r.json()
    assert r.status == 401 and r.content_type == "application/problem+json" and problem["detail"]


async def test_every_request_example_in_the_document_is_taken(client, auth) -> None:
    doc = await (await client.get("/v1/openapi.json")).json()
    examples = {(m.upper(), p): op["requestBody"]["content"]["application/json"]["examples"]["first"]["value"]
                for p, ops in doc["paths"].items() for m, op in ops.items()
                if "examples" in op.get("requestBody", {}).get("content", {}).get("application/json", {})}
    assert len(examples) >= 5
    r = await client.post("/v1/cases", json=examples.pop(("POST", "/v1/cases")), headers=auth())
    assert r.status == 201, await r.text()
    opened = await r.json()
    case_id = opened["case_id"]
    r = await client.post(f"/v1/cases/{case_id}/contacts/{opened['contact_id']}/end", headers=auth(),
                          json={"outcome": "connected", "summary": "told the customer what happens next"})
    assert r.status == 200, await r.text()
    for (method, path), body in sorted(examples.items(), key=lambda e: e[0][1]):
        r = await client.request(method, path.replace("{case_id}", case_id), json=body, headers=auth(role="supervisor"))
        assert r.status in (200, 201), (path, await r.text())
