"""An integrator's first hour: a client generated from the served document runs a case.

`openapi-python-client` generates a typed client from `/v1/openapi.json`; the
walk-through below uses only that client (its request models, its functions,
its parsed answers) against the real server and PostgreSQL. A route, field or
answer the document describes wrongly fails here as it would fail the integrator.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from casedesk.services.tokens import issue_token
from tests.api.conftest import SECRET, new_case_body


def generate(document: dict[str, Any], folder: Path) -> None:
    spec = folder / "openapi.json"
    spec.write_text(json.dumps(document))
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    made = subprocess.run(
        [Path(sys.executable).parent / "openapi-python-client", "generate", "--path", spec, "--meta", "none",
         "--output-path", folder / "casedesk_client"], capture_output=True, text=True, env=env, timeout=180)
    assert made.returncode == 0, made.stdout + made.stderr


@pytest.fixture
async def generated(client: Any, tmp_path: Path) -> Any:
    r = await client.get("/v1/openapi.json")
    generate(await r.json(), tmp_path)
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module("casedesk_client")
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n == "casedesk_client" or n.startswith("casedesk_client.")]:
            del sys.modules[name]


def part(package: ModuleType, name: str) -> Any:
    return importlib.import_module(f"{package.__name__}.{name}")


def token(role: str, departments: tuple[str, ...]) -> str:
    return issue_token(SECRET, sub=f"agent-{uuid.uuid4().hex[:8]}", name="K. Takano", role=role,
                       departments=departments, ttl=3600)


async def test_a_generated_client_runs_a_case_from_opening_to_claim(client: Any, generated: ModuleType) -> None:
    department = f"dept_{uuid.uuid4().hex[:8]}"
    base = str(client.make_url("")).rstrip("/")
    api = part(generated, "client").AuthenticatedClient(base_url=base, token=token("agent", ("fraud",)))
    models = part(generated, "models")

    opened = await part(generated, "api.cases.open_case").asyncio_detailed(client=api, body=models.OpenCase.from_dict(
        new_case_body(contact={"direction": "inbound", "channel": "phone", "department": "fraud"})))
    assert opened.status_code == 201 and isinstance(opened.parsed, models.CommandAnswer), opened.content
    case_id, contact_id = opened.parsed.case_id, opened.parsed.contact_id
    assert opened.headers["Location"] == f"/v1/cases/{case_id}"

    checked = await part(generated, "api.cases.check_identity").asyncio(case_id, client=api, body=models.CheckIdentity
        .from_dict({"contact_id": str(contact_id), "method": "knowledge_based", "passed": True,
                    "factors": ["date_of_birth"]}))
    noted = await part(generated, "api.cases.add_note").asyncio(case_id, client=api, body=models.AddNote.from_dict(
        {"text": "Customer travels often; call after 6pm", "pinned": True}))
    suspended = await part(generated, "api.cases.suspend_card").asyncio(
        case_id, "card-p", client=api, body=models.SuspendCard.from_dict({"reason": "fraud", "include_linked": True}))
    escalated = await part(generated, "api.cases.escalate").asyncio(case_id, client=api, body=models.Escalate
        .from_dict({"to_department": department, "reason": "needs a decision", "priority": 2}))
    for answer in (checked, noted, suspended, escalated):
        assert isinstance(answer, models.CommandAnswer), answer
    assert suspended.suspended == ["card-p"]

    view = await part(generated, "api.cases.get_case").asyncio(case_id, client=api, min_position=escalated.position)
    assert isinstance(view, models.CaseView), view
    assert view.status == "open" and [c.state for c in view.cards] == ["suspended"]
    timeline = await part(generated, "api.cases.get_timeline").asyncio(case_id, client=api,
                                                                       min_position=escalated.position)
    assert isinstance(timeline, models.TimelineAnswer), timeline
    assert any("call after 6pm" in entry.text for entry in timeline.entries)

    desk = part(generated, "client").AuthenticatedClient(base_url=base, token=token("agent", (department,)))
    claimed = await part(generated, "api.queues.claim").asyncio(department, client=desk)
    assert isinstance(claimed, models.ClaimAnswer), claimed
    assert claimed.case_id == case_id and isinstance(claimed.case, models.CaseView)
    assert claimed.case.assignee is not None

    found = await part(generated, "api.lookup.lookup").asyncio(client=api, phone="+81 90 1234 5678",
                                                               min_position=claimed.position)
    assert isinstance(found, models.LookupAnswer), found
    assert str(case_id) in {str(c.case_id) for customer in found.customers for c in customer.open_cases}
