"""The five walk-throughs again, under each clock policy: every case they open carries the clocks its events call for.

Each walk-through runs as written (its own assertions hold under both
policies); then every case it touched is read back: GET clocks equals the
view's `clocks`, and the clocks are exactly those the policy gives the view's
disputes and callbacks, each in the state its events left it.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.api import test_walkthroughs as walk
from tests.api.own_database import jp_database, policy_app, us_database  # noqa: F401 (fixtures)

WALKTHROUGHS: list[Callable[[walk.Staff], Awaitable[None]]] = [
    walk.test_webtel_charge_escalated_to_credit_management_called_back_and_card_destroyed_at_branch,
    walk.test_customer_returning_a_missed_call_is_told_who_called_and_verified_by_calling_back,
    walk.test_family_card_fraud_alert_suspends_both_cards_reviews_charges_and_waives_liability,
    walk.test_breach_affected_card_is_reissued_at_the_breached_merchants_expense,
    walk.test_second_agent_continues_the_amazon_charge_without_the_customer_repeating_it,
]


class RecordingDesk(walk.Desk):
    """A walk-through's desk that remembers every case it touched."""

    touched: set[str]

    async def post(self, path: str, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
        answer = await super().post(path, body, status)
        if status < 300 and "case_id" in answer:
            self.touched.add(f"/v1/cases/{answer['case_id']}")
        return answer


def expected_rules(view: dict[str, Any], policy: str) -> dict[str, str]:
    """rule and subject -> state, as the policy gives them to the view's disputes and callbacks."""
    expected = {}
    for callback in view["callbacks"]:
        state = "running" if callback["status"] == "scheduled" else "met"
        expected[f"callback_promise {callback['callback_id']}"] = state
    for dispute in view["disputes"]:
        # The walk-throughs send no transaction date (no filing clock) and credit cards (Regulation Z).
        if policy == "us":
            resolved = dispute["status"] == "resolved"
            expected[f"reg_z_resolution {dispute['dispute_id']}"] = "met" if resolved else "running"
    return expected


def found_rules(clocks: list[dict[str, Any]]) -> dict[str, str]:
    found = {}
    for clock in clocks:
        if clock["rule"] == "reg_z_acknowledgment":
            continue  # met by any notice or the resolution, which the walk-throughs may or may not send
        found[f"{clock['rule']} {clock.get('callback_id') or clock.get('dispute_id')}"] = clock["state"]
    return found


@pytest.mark.parametrize("policy", ["jp", "us"])
@pytest.mark.parametrize("walkthrough", WALKTHROUGHS, ids=[w.__name__.removeprefix("test_")[:40] for w in WALKTHROUGHS])
async def test_the_walkthroughs_cases_carry_the_clocks_the_policy_gives_them(
        aiohttp_client: Any, tmp_path: Any, auth: Any, jp_database: str, us_database: str,  # noqa: F811
        policy: str, walkthrough: Callable[[walk.Staff], Awaitable[None]]) -> None:
    client: TestClient = await aiohttp_client(policy_app(tmp_path, jp_database if policy == "jp" else us_database,
                                                         policy))
    written, touched = {"position": 0}, set[str]()

    def person(name: str, role: str = "agent", departments: tuple[str, ...] = ("fraud",)) -> walk.Desk:
        desk = RecordingDesk(client, auth(role=role, departments=departments, sub=f"s-{uuid.uuid4().hex[:8]}",
                                          name=name), written)
        desk.touched = touched
        return desk

    await walkthrough(person)
    supervisor = person("Y. Kato", role="supervisor")
    assert touched
    for case in touched:
        view, clocks = await supervisor.get(case), (await supervisor.get(f"{case}/clocks"))["clocks"]
        assert clocks == view["clocks"]
        assert found_rules(clocks) == expected_rules(view, policy)
