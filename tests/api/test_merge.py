"""Merging duplicate cases over HTTP on a real PostgreSQL: merge, refusals, both histories, unmerge.

A customer called twice and has two cases: the duplicate (absorbed) is merged
into the survivor. Reads wait for the command's `position` (read your writes).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aiohttp.test_utils import TestClient

from tests.api.conftest import new_case_body
from tests.clock import from_now

INBOUND = {"direction": "inbound", "channel": "phone", "phone": "+81 90 1234 5678", "department": "fraud"}


class Case:
    """One case over HTTP, with the last position written for read-your-writes."""

    def __init__(self, client: TestClient, headers: dict[str, str]) -> None:
        self.client, self.headers, self.position, self.id, self.contact = client, headers, 0, "", ""

    @property
    def path(self) -> str:
        return f"/v1/cases/{self.id}"

    async def open(self, customer_id: str, last4: str = "4242", name: str = "Taro Yamada", **body: Any) -> Case:
        card = {"card_id": f"card-{last4}", "last4": last4, "network": "visa", "kind": "primary"}
        opened = await self.post("/v1/cases", new_case_body(
            customer={"customer_id": customer_id, "name": name, "registered_phone": "+81 90 1234 5678"},
            cards=[card], **body), 201)
        self.id = opened["case_id"]
        return self

    async def post(self, path: str, body: dict[str, Any], status: int = 200,
                   headers: dict[str, str] | None = None) -> dict[str, Any]:
        r = await self.client.post(path if path.startswith("/v1") else self.path + path, json=body,
                                   headers=headers or self.headers)
        answer = await r.json()
        assert r.status == status, answer
        if r.status < 300:
            self.position = max(self.position, answer.get("position") or 0)
        else:
            assert r.headers["Content-Type"].startswith("application/problem+json")
        return dict(answer)

    async def get(self, suffix: str = "", position: int | None = None) -> dict[str, Any]:
        r = await self.client.get(self.path + suffix, headers=self.headers,
                                  params={"min_position": str(position or self.position)})
        answer = await r.json()
        assert r.status == 200, answer
        return dict(answer)

    async def note(self, text: str) -> dict[str, Any]:
        return await self.post("/notes", {"text": text}, 201)


async def merge(absorbed: Case, survivor: Case, status: int = 200, **body: Any) -> dict[str, Any]:
    answer = await absorbed.post("/merge", {"into_case_id": survivor.id, "reason": "the customer called twice",
                                            **body}, status)
    if status == 200:
        survivor.position = absorbed.position = max(absorbed.position, survivor.position)
    return answer


async def unmerge(survivor: Case, absorbed: Case, status: int = 200) -> dict[str, Any]:
    answer = await survivor.post("/unmerge", {"case_id": absorbed.id, "reason": "two incidents after all"}, status)
    if status == 200:
        survivor.position = absorbed.position = max(absorbed.position, survivor.position)
    return answer


async def pair(client: TestClient, auth: Any, **headers: Any) -> tuple[Case, Case]:
    customer = f"cust-{uuid.uuid4().hex[:8]}"
    h, name = auth(**headers), f"Taro {customer}"
    survivor = await Case(client, h).open(customer, "4242", name)
    absorbed = await Case(client, h).open(customer, "5151", name)
    return absorbed, survivor


async def queue_ids(client: TestClient, auth: Any, queue: str, position: int) -> set[str]:
    r = await client.get(f"/v1/queues/{queue}/items", params={"min_position": position, "limit": 500},
                         headers=auth(role="supervisor"))
    assert r.status == 200
    return {i["case_id"] for i in (await r.json())["items"]}


async def test_a_merge_answers_both_cases_and_the_absorbed_case_then_refuses_commands_naming_the_survivor(
        client, auth) -> None:
    absorbed, survivor = await pair(client, auth)
    answer = await merge(absorbed, survivor)
    assert answer["case_id"] == absorbed.id and answer["merged_into"] == survivor.id
    assert [e["type"] for e in answer["events"]] == ["CaseMergedInto"]
    assert answer["survivor_version"] == 2
    problem = await absorbed.post("/notes", {"text": "called again"}, 409)
    assert problem["type"].endswith("/rules/case-merged") and problem["merged_into"] == survivor.id
    problem = await absorbed.post("/cards/card-5151/suspend", {"reason": "stolen"}, 409)
    assert problem["merged_into"] == survivor.id
    view = await absorbed.get()
    assert view["merged_into"] == survivor.id
    [entry] = (await survivor.get())["merged_cases"]
    assert (entry["case_id"], entry["version_at_merge"], entry["reason"]) == (
        absorbed.id, 1, "the customer called twice")
    assert entry["position_at_merge"] is not None


async def test_the_survivor_timeline_shows_both_histories_in_time_order_each_entry_marked(client, auth) -> None:
    absorbed, survivor = await pair(client, auth)
    await survivor.note("first, on the survivor")
    await absorbed.note("second, on the duplicate")
    await survivor.note("third, on the survivor")
    await merge(absorbed, survivor)
    await survivor.note("fourth, after the merge")
    entries = (await survivor.get("/timeline"))["entries"]
    notes = [(e["text"].split(": ", 1)[-1], e["from_case_id"]) for e in entries if e["kind"] == "handoff_note_added"]
    assert notes == [("first, on the survivor", survivor.id), ("second, on the duplicate", absorbed.id),
                     ("third, on the survivor", survivor.id), ("fourth, after the merge", survivor.id)]
    assert [e["at"] for e in entries] == sorted(e["at"] for e in entries)
    kinds = {(e["kind"], e["from_case_id"]) for e in entries}
    assert {("case_opened", survivor.id), ("case_opened", absorbed.id), ("case_merged", survivor.id),
            ("case_merged_into", absorbed.id)} <= kinds


async def test_an_unmerge_restores_both_cases_and_what_was_done_on_the_survivor_stays_there(client, auth) -> None:
    absorbed, survivor = await pair(client, auth)
    await absorbed.note("on the duplicate")
    before_absorbed, before_survivor = await absorbed.get(), await survivor.get()
    await merge(absorbed, survivor)
    await survivor.note("while merged")
    answer = await unmerge(survivor, absorbed)
    assert (answer["case_id"], answer["absorbed_case_id"]) == (survivor.id, absorbed.id)
    assert [e["type"] for e in answer["events"]] == ["CaseUnmerged"]
    after_absorbed, after_survivor = await absorbed.get(), await survivor.get()
    assert (after_absorbed["merged_into"], after_survivor["merged_cases"]) == (None, [])
    changing = {"version", "updated_at"}
    assert {k: v for k, v in after_absorbed.items() if k not in changing} == {
        k: v for k, v in before_absorbed.items() if k not in changing}
    timeline = (await survivor.get("/timeline"))["entries"]
    assert all("from_case_id" not in e for e in timeline)
    assert [e["kind"] for e in timeline] == ["case_opened", "case_merged", "handoff_note_added", "case_unmerged"]
    assert [e["kind"] for e in (await absorbed.get("/timeline"))["entries"]] == [
        "case_opened", "handoff_note_added", "case_merged_into", "case_unmerged"]
    assert after_survivor["handoff"] == before_survivor["handoff"]
    await absorbed.note("works again")  # takes commands again


async def test_queues_and_lookup_follow_the_merge_and_the_unmerge(client, auth) -> None:
    absorbed, survivor = await pair(client, auth, role="agent")
    name = f"Taro {(await survivor.get())['customer']['customer_id']}"
    callback = {"due_at": from_now(days=2), "reason": "tell the customer the outcome", "phone": "registered",
                "department": "fraud"}
    await absorbed.post("/callbacks", callback, 201)
    assert absorbed.id in await queue_ids(client, auth, "callbacks_due", absorbed.position)
    assert survivor.id not in await queue_ids(client, auth, "callbacks_due", absorbed.position)
    await merge(absorbed, survivor)
    waiting = await queue_ids(client, auth, "callbacks_due", survivor.position)
    assert survivor.id in waiting and absorbed.id not in waiting  # the survivor owes the callback now
    [entry] = (await survivor.get())["merged_cases"]
    assert [c["reason"] for c in entry["callbacks"]] == ["tell the customer the outcome"]

    async def lookup(last4: str) -> list[str]:
        r = await client.get("/v1/lookup", params={"name": name, "last4": last4,
                                                   "min_position": str(survivor.position)}, headers=auth())
        assert r.status == 200
        return [c["case_id"] for found in (await r.json())["customers"] for c in found["open_cases"]]

    assert await lookup("5151") == [survivor.id]  # the duplicate's card finds the survivor
    await unmerge(survivor, absorbed)
    waiting = await queue_ids(client, auth, "callbacks_due", survivor.position)
    assert absorbed.id in waiting and survivor.id not in waiting
    assert await lookup("5151") == [absorbed.id]


async def test_each_refusal_of_a_merge_names_its_rule(client, auth) -> None:
    absorbed, survivor = await pair(client, auth)
    third = await Case(client, absorbed.headers).open(f"cust-{uuid.uuid4().hex[:8]}", "7373")
    problem = await merge(absorbed, absorbed, 409)
    assert problem["type"].endswith("/rules/merge-into-itself")
    problem = await merge(third, survivor, 409)
    assert problem["type"].endswith("/rules/merge-across-customers")
    problem = await merge(third, survivor, 403, different_customer_ok=True)  # an agent may not say so
    await merge(absorbed, survivor)
    for case, into, rule in ((survivor, absorbed, "merge-cycle"), (third, absorbed, "merge-into-merged-case"),
                             (absorbed, survivor, "merge-already-holds-case"), (absorbed, third, "case-merged"),
                             (survivor, third, "merge-of-case-holding-merges")):
        problem = await merge(case, into, 409)
        assert problem["type"].endswith(f"/rules/{rule}"), problem
    problem = await unmerge(third, absorbed, 409)
    assert problem["type"].endswith("/rules/unmerge-not-merged-here")
    problem = await absorbed.post("/merge", {"into_case_id": str(uuid.uuid4()), "reason": "x"}, 422)
    assert problem["errors"][0]["field"] == "into_case_id"


async def test_a_supervisor_merges_cases_of_two_customers_when_saying_so(client, auth) -> None:
    supervisor = auth(role="supervisor")
    survivor = await Case(client, supervisor).open(f"cust-{uuid.uuid4().hex[:8]}")
    absorbed = await Case(client, supervisor).open(f"cust-{uuid.uuid4().hex[:8]}")
    await merge(absorbed, survivor, 409)
    await merge(absorbed, survivor, different_customer_ok=True)
    [entry] = (await survivor.get())["merged_cases"]
    assert entry["different_customer"] is True


async def test_a_stale_if_match_on_a_merge_is_412_and_nothing_is_merged(client, auth) -> None:
    absorbed, survivor = await pair(client, auth)
    r = await client.post(absorbed.path + "/merge", json={"into_case_id": survivor.id, "reason": "dup"},
                          headers={**absorbed.headers, "If-Match": '"7"'})
    assert r.status == 412
    await absorbed.note("still takes commands")


async def test_the_survivor_carries_the_absorbed_cases_open_disputes_and_running_clocks_until_unmerged(
        client, auth) -> None:
    absorbed, survivor = await pair(client, auth)
    contact = (await absorbed.post("/contacts", INBOUND, 201))["contact_id"]
    await absorbed.post("/identity-checks", {"contact_id": contact, "method": "knowledge_based", "passed": True,
                                             "factors": ["date_of_birth"]})
    dispute = (await absorbed.post("/disputes", {
        "contact_id": contact, "transaction_id": "tx-1", "merchant": "WEBTEL",
        "amount": {"amount": "19.95", "currency": "USD"}, "reason_code": "10.4", "network": "visa"}, 201))["dispute_id"]
    await absorbed.post("/callbacks", {"due_at": from_now(days=2), "phone": "registered", "reason": "the outcome",
                                       "department": "fraud"}, 201)
    running = [c for c in (await absorbed.get())["clocks"] if c["state"] == "running"]
    assert running  # the promised callback's clock
    assert absorbed.id in await queue_ids(client, auth, "disputes", absorbed.position)
    await merge(absorbed, survivor)
    [entry] = (await survivor.get())["merged_cases"]
    assert [d["dispute_id"] for d in entry["disputes"]] == [dispute]
    assert [c["rule"] for c in entry["clocks"]] == [c["rule"] for c in running]
    assert [c["contact_id"] for c in entry["contacts"]] == [contact]
    waiting = await queue_ids(client, auth, "disputes", survivor.position)
    assert survivor.id in waiting and absorbed.id not in waiting
    # What the survivor carries is the absorbed case's to work again once unmerged.
    assert (await survivor.post(f"/disputes/{dispute}/resolve", {"outcome": "upheld", "note": "x"}, 409))[
        "type"].endswith("/rules/unknown-dispute")
    await unmerge(survivor, absorbed)
    waiting = await queue_ids(client, auth, "disputes", survivor.position)
    assert absorbed.id in waiting and survivor.id not in waiting
    assert [d["dispute_id"] for d in (await absorbed.get())["disputes"]] == [dispute]


async def test_a_claimed_survivor_answers_the_timeline_of_both_and_history_tells_the_merge(client, auth) -> None:
    absorbed, survivor = await pair(client, auth)
    await absorbed.note("on the duplicate")
    await merge(absorbed, survivor)
    department = f"d_{uuid.uuid4().hex[:6]}"
    await survivor.post("/escalations", {"to_department": department, "reason": "needs a decision", "priority": 2})
    await queue_ids(client, auth, department, survivor.position)  # waits for the projection
    r = await client.post(f"/v1/queues/{department}/claim", headers=auth(departments=(department,)))
    claimed = await r.json()
    assert r.status == 200, claimed
    assert claimed["case_id"] == survivor.id
    marked = {(e["kind"], e["from_case_id"]) for e in claimed["timeline"]["entries"]}
    assert ("handoff_note_added", absorbed.id) in marked and ("case_escalated", survivor.id) in marked
    r = await client.get(survivor.path + "/history", params={"version": "2"},
                         headers={**auth(role="auditor"), "X-Access-Reason": "merge review"})
    history = await r.json()
    assert r.status == 200, history
    assert [m["case_id"] for m in history["state"]["merged_cases"]] == [absorbed.id]
    assert [e["type"] for e in history["events"]][-1] == "CaseMerged"


async def test_a_merge_sent_twice_with_one_idempotency_key_merges_once_and_answers_alike(client, auth) -> None:
    absorbed, survivor = await pair(client, auth)
    headers = {**absorbed.headers, "Idempotency-Key": f"merge-{uuid.uuid4()}"}
    body = {"into_case_id": survivor.id, "reason": "the customer called twice"}
    first = await absorbed.post("/merge", body, headers=headers)
    again = await absorbed.post("/merge", body, headers=headers)
    assert again == first and first["merged_into"] == survivor.id
    survivor.position = absorbed.position
    assert len((await survivor.get())["merged_cases"]) == 1


async def test_two_cases_merged_into_each_other_at_once_end_up_merged_one_way(client, auth) -> None:
    one, other = await pair(client, auth)
    answers = await asyncio.gather(
        client.post(one.path + "/merge", json={"into_case_id": other.id, "reason": "dup"}, headers=one.headers),
        client.post(other.path + "/merge", json={"into_case_id": one.id, "reason": "dup"}, headers=one.headers))
    assert sorted(r.status for r in answers) == [200, 409]
    refused = await next(r for r in answers if r.status == 409).json()
    assert refused["type"].rsplit("/", 1)[-1] in ("merge-cycle", "case-merged", "merge-into-merged-case")
    one.position = max([one.position] + [(await r.json()).get("position") or 0 for r in answers])
    other.position = one.position
    into = {(await one.get())["merged_into"], (await other.get())["merged_into"]}
    assert into in ({None, one.id}, {None, other.id})
