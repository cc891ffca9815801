"""The dashboard page in a real browser: it signs in from the URL and follows the queues live."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from aiohttp import ClientSession, web

from casedesk.services.http import dashboard
from casedesk.services.http.app_keys import RUNNER, STORE
from casedesk.services.tokens import issue_token
from tests.api.conftest import SECRET, new_case_body
from tests.browser.conftest import LiveApp, Tab, skip_without_a_browser

skip_without_a_browser()

FRAUD_ALERTS_DEPTH = '[data-queue="fraud_alerts"][data-field="depth"]'


def token(role: str) -> str:
    return issue_token(SECRET, sub=f"{role}-{uuid.uuid4().hex[:8]}", name="H. Sato", role=role,
                       departments=("fraud",))


async def caught_up(app: web.Application, timeout: float = 10) -> None:
    """Wait until every projection has read the whole log, so nothing older still moves the queues."""
    runner, store = app[RUNNER], app[STORE]
    wanted = await store.max_notification_id() or 0
    async with asyncio.timeout(timeout):
        while any(runner.positions.get(p.name, -1) < wanted for p in runner.projections):
            await asyncio.sleep(0.05)


async def test_the_board_shows_a_new_fraud_alert_without_reloading(live_app: LiveApp, tab: Tab, tmp_path: Path) -> None:
    page = tab.page
    await caught_up(live_app.app)  # nothing older is still moving the queues
    await page.goto(f"{live_app.url}/dashboard#token={token('supervisor')}")
    await page.wait_for_selector('#live[data-state="live"]', timeout=10_000)
    assert "token" not in page.url  # the token left the address bar (and so the history)
    before = int(await page.text_content(FRAUD_ALERTS_DEPTH) or "")

    async with ClientSession() as http:
        r = await http.post(f"{live_app.url}/v1/cases", json=new_case_body(reason="fraud_alert"),
                            headers={"Authorization": f"Bearer {token('agent')}"})
        opened = await r.json()
    assert r.status == 201, opened  # a fraud alert nobody has reached yet waits in fraud_alerts
    await page.wait_for_function("([selector, want]) => document.querySelector(selector)?.textContent === want",
                                 arg=[FRAUD_ALERTS_DEPTH, str(before + 1)], timeout=10_000)
    await page.screenshot(path=tmp_path / "dashboard.png", full_page=True)
    assert await page.get_attribute("#live", "data-state") == "live"
    assert tab.errors == []


async def test_the_board_asks_for_a_token_and_says_when_a_role_may_not_see_it(live_app: LiveApp, tab: Tab) -> None:
    page = tab.page
    await page.goto(f"{live_app.url}/dashboard")
    await page.get_by_label("Bearer token").fill(token("agent"))
    await page.get_by_role("button", name="Open dashboard").click()
    await page.get_by_text("may not see the dashboard").wait_for(timeout=10_000)
    await page.get_by_label("Bearer token").fill(token("auditor"))
    await page.get_by_role("button", name="Open dashboard").click()
    await page.wait_for_selector('#live[data-state="live"]', timeout=10_000)
    await page.wait_for_selector(FRAUD_ALERTS_DEPTH, timeout=10_000)
    assert await page.evaluate("sessionStorage.getItem('casedesk.token')") is not None


async def test_the_live_dot_turns_grey_while_the_stream_reconnects(live_app: LiveApp, tab: Tab, tmp_path: Path) -> None:
    page = tab.page
    await page.goto(f"{live_app.url}/dashboard#token={token('supervisor')}")
    await page.wait_for_selector('#live[data-state="live"]', timeout=10_000)
    live_app.app[dashboard.BROADCASTER].close()  # the server ends every stream, as when it restarts
    await page.wait_for_selector('#live[data-state="reconnecting"]', timeout=5_000)
    assert "Reconnecting" in (await page.text_content("#live") or "")
    await page.screenshot(path=tmp_path / "reconnecting.png")
    await page.wait_for_selector('#live[data-state="live"]', timeout=10_000)  # the browser comes back by itself
