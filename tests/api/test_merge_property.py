"""A property over HTTP: merging and unmerging never changes what either case is.

Two worlds on one served casedesk (real HTTP, real PostgreSQL). In the merge
world a survivor S and a duplicate A of one customer take commands (notes,
contacts, identity checks, disputes, callbacks, card suspensions, escalations)
interleaved with merges of A into S and unmerges. In the reference world two
cases take the same commands alone, never merged; a command the merged-away A
refused (409 case-merged) is not sent there. Every other command must be
answered alike in both worlds, and after the last unmerge each case's view and
timeline equal its twin's, modulo ids, times, versions and the merge entries.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
import requests
from hypothesis import HealthCheck, given, settings

from casedesk.services.tokens import issue_token
from tests.api.conftest import SECRET, new_case_body
from tests.clock import from_now
from tests.fuzz.served import ServedCasedesk

COMMANDS = ("note", "start_contact", "end_contact", "verify", "dispute", "callback", "suspend", "escalate")
MERGE_KINDS = {"case_merged", "case_merged_into", "case_unmerged"}
# Ids: UUIDs, and processor instruction tokens (32 hex digits drawn from the case and version).
UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\b[0-9a-f]{32}\b")
TIME_TEXT = re.compile(r"^\d{4}-\d\d-\d\dT")
CLOCK_TEXT = re.compile(r"\b\d{1,2}:\d\d\b")

Step = tuple[str, ...]
steps = st.lists(st.one_of(st.tuples(st.just("command"), st.sampled_from(("S", "A")), st.sampled_from(COMMANDS)),
                           st.just(("merge or unmerge",))), min_size=1, max_size=14)


@dataclass
class Served:
    url: str
    session: requests.Session
    headers: dict[str, str]
    position: int = 0
    due_at: str = field(default_factory=lambda: from_now(days=2))

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        r = self.session.post(self.url + path, json=body, headers=self.headers, timeout=30)
        answer = r.json()
        if r.status_code < 300:
            self.position = max(self.position, answer.get("position") or 0)
        return r.status_code, answer

    def get(self, path: str) -> dict[str, Any]:
        r = self.session.get(self.url + path, params={"min_position": str(self.position)}, headers=self.headers,
                             timeout=30)
        assert r.status_code == 200, r.text
        answer: dict[str, Any] = r.json()
        return answer


@pytest.fixture(scope="module")
def served(database_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    casedesk = ServedCasedesk(database_dsn, Path(tmp_path_factory.mktemp("merge")))
    url = casedesk.start()
    token = issue_token(SECRET, sub="agent-merge", name="K. Takano", role="agent", departments=("fraud",), ttl=3600)
    try:
        with requests.Session() as session:
            yield Served(url, session, {"Authorization": f"Bearer {token}"})
    finally:
        casedesk.stop()


@dataclass
class Case:
    id: str
    contact: str | None = None


def open_case(served: Served, customer_id: str) -> Case:
    status, answer = served.post("/v1/cases", new_case_body(
        customer={"customer_id": customer_id, "name": "Taro Yamada", "registered_phone": "+81 90 1234 5678"}))
    assert status == 201, answer
    return Case(answer["case_id"])


def command(served: Served, case: Case, name: str, n: int) -> tuple[int, str] | None:
    """Send command `name` (the n-th step) to `case`: (status, problem type or ""); None when not sendable."""
    path = f"/v1/cases/{case.id}"
    needs_contact = name in ("end_contact", "verify", "dispute")
    if needs_contact and case.contact is None:
        return None
    bodies: dict[str, tuple[str, dict[str, Any]]] = {
        "note": ("/notes", {"text": f"note {n}"}),
        "start_contact": ("/contacts", {"direction": "inbound", "channel": "phone", "phone": "+81 90 1234 5678",
                                        "department": "fraud"}),
        "end_contact": (f"/contacts/{case.contact}/end", {"outcome": "connected", "summary": f"call {n}"}),
        "verify": ("/identity-checks", {"contact_id": case.contact, "method": "knowledge_based", "passed": True,
                                        "factors": ["date_of_birth"]}),
        "dispute": ("/disputes", {"contact_id": case.contact, "transaction_id": f"tx-{n}", "merchant": "WEBTEL",
                                  "amount": {"amount": "19.95", "currency": "USD"}, "reason_code": "10.4",
                                  "network": "visa"}),
        "callback": ("/callbacks", {"due_at": served.due_at, "phone": "registered", "reason": f"callback {n}",
                                    "department": "fraud"}),
        "suspend": ("/cards/card-p/suspend", {"reason": "fraud"}),
        "escalate": ("/escalations", {"to_department": "credit_management", "reason": f"review {n}",
                                      "priority": 2}),
    }
    suffix, body = bodies[name]
    status, answer = served.post(path + suffix, body)
    if name == "start_contact" and status == 201:
        case.contact = answer["contact_id"]
    return status, "" if status < 300 else answer["type"].rsplit("/", 1)[-1]


def same_shape(document: Any) -> Any:
    """The document with ids named by first appearance, times and versions blanked."""
    names: dict[str, str] = {}

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()
                    if k not in ("version", "updated_at", "started_by_event", "position_at_merge")}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, str):
            if TIME_TEXT.match(value):
                return "<time>"
            value = UUID_TEXT.sub(lambda m: names.setdefault(m.group(), f"<id{len(names)}>"), value)
            return CLOCK_TEXT.sub("<hh:mm>", value)
        return value

    return walk(document)


def read(served: Served, case: Case) -> tuple[Any, Any]:
    view = served.get(f"/v1/cases/{case.id}")
    timeline = served.get(f"/v1/cases/{case.id}/timeline")
    timeline["entries"] = [e for e in timeline["entries"] if e["kind"] not in MERGE_KINDS]
    return same_shape(view), same_shape(timeline)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(program=steps)
def test_after_the_last_unmerge_each_case_reads_as_a_case_that_took_the_same_commands_alone(
        served: Served, program: list[Step]) -> None:
    customer = f"cust-{uuid.uuid4().hex[:8]}"
    survivor, absorbed = open_case(served, customer), open_case(served, customer)
    alone = {"S": open_case(served, customer), "A": open_case(served, customer)}
    merged_world = {"S": survivor, "A": absorbed}
    merged = False
    for n, step in enumerate(program):
        if step[0] == "merge or unmerge":
            if merged:
                status, answer = served.post(f"/v1/cases/{survivor.id}/unmerge",
                                             {"case_id": absorbed.id, "reason": "two incidents"})
            else:
                status, answer = served.post(f"/v1/cases/{absorbed.id}/merge",
                                             {"into_case_id": survivor.id, "reason": "called twice"})
            assert status == 200, answer
            merged = not merged
            continue
        _, target, name = step
        answered = command(served, merged_world[target], name, n)
        if merged and target == "A":
            assert answered is None or answered == (409, "case-merged")
            continue  # refused: the case alone never received it
        assert answered == command(served, alone[target], name, n)
    if merged:
        status, answer = served.post(f"/v1/cases/{survivor.id}/unmerge",
                                     {"case_id": absorbed.id, "reason": "two incidents"})
        assert status == 200, answer
    for twin in ("S", "A"):
        (view, timeline), (view_alone, timeline_alone) = read(served, merged_world[twin]), read(served, alone[twin])
        assert timeline == timeline_alone, twin
        assert view == view_alone, (twin, {k: (v, view_alone.get(k)) for k, v in view.items() if v != view_alone.get(k)})
