"""The agent's case page in a real browser: two agents on one case see each other and each other's work live."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession

from casedesk.services.tokens import issue_token
from tests.api.conftest import SECRET, new_case_body
from tests.browser.conftest import LiveApp, Tab, skip_without_a_browser

skip_without_a_browser()


def token(sub: str, name: str, role: str = "agent") -> str:
    return issue_token(SECRET, sub=sub, name=name, role=role, departments=("fraud",))


@pytest.fixture
async def second_tab(browser: Any) -> AsyncIterator[Tab]:
    """Another agent's browser: a context of its own (own sessionStorage)."""
    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda message: message.type == "error" and errors.append(message.text))
        yield Tab(page, errors)
    finally:
        await context.close()


def script_errors(tab: Tab) -> list[str]:
    """The page's own errors: the refusals it is made to meet (409, 412, 422) are logged by Chromium too."""
    return [e for e in tab.errors if not e.startswith("Failed to load resource: the server responded with a status of 4")]


async def opened_case(url: str, bearer: str) -> str:
    async with ClientSession() as http:
        r = await http.post(f"{url}/v1/cases", json=new_case_body(), headers={"Authorization": f"Bearer {bearer}"})
        body = await r.json()
    assert r.status == 201, body
    return str(body["case_id"])


async def test_two_agents_see_each_other_and_each_others_notes_and_a_stale_action_names_who(
        live_app: LiveApp, tab: Tab, second_tab: Tab, tmp_path: Path) -> None:
    a, b = f"agent-a-{uuid.uuid4().hex[:6]}", f"agent-b-{uuid.uuid4().hex[:6]}"
    case_id = await opened_case(live_app.url, token(a, "A. Aoki"))
    page_a, page_b = tab.page, second_tab.page
    await page_a.goto(f"{live_app.url}/desk/cases/{case_id}#token={token(a, 'A. Aoki')}")
    await page_b.goto(f"{live_app.url}/desk/cases/{case_id}#token={token(b, 'B. Baba')}")
    for page in (page_a, page_b):
        await page.wait_for_selector('#live[data-state="live"]', timeout=10_000)
        assert "token" not in page.url

    # Each shows the other present.
    await page_a.wait_for_selector(f'#others .person[data-agent="{b}"]', timeout=5_000)
    await page_b.wait_for_selector(f'#others .person[data-agent="{a}"]', timeout=5_000)
    assert "B. Baba" in (await page_a.text_content("#others") or "")

    # A note added on B's page appears on A's without a reload.
    await page_b.fill("#note-text", "Customer will send the police report")
    await page_b.get_by_role("button", name="Add note").click()
    await page_a.get_by_text("Customer will send the police report").wait_for(timeout=5_000)
    await page_a.wait_for_selector('#title[data-version="2"]', timeout=5_000)

    # A begins a note; meanwhile B adds one. A's note is refused (412) and names B, not written over B's.
    await page_a.fill("#note-text", "Told the customer the card is blocked")
    await page_b.fill("#note-text", "Customer asked for a callback tomorrow")
    await page_b.get_by_role("button", name="Add note").click()
    await page_a.get_by_text("Customer asked for a callback tomorrow").wait_for(timeout=5_000)
    await page_a.get_by_role("button", name="Add note").click()
    await page_a.wait_for_selector('#notice[data-kind="stale"]', timeout=5_000)
    notice = await page_a.text_content("#notice") or ""
    assert "B. Baba" in notice and "changed since you began" in notice
    assert await page_a.input_value("#note-text") == "Told the customer the card is blocked"  # kept to resend
    await page_a.screenshot(path=tmp_path / "desk-stale.png", full_page=True)

    # Sent again, now on what is shown, it goes through and reaches B.
    await page_a.get_by_role("button", name="Add note").click()
    await page_b.get_by_text("Told the customer the card is blocked").wait_for(timeout=5_000)

    # A refusal of the API is shown in words: ending a contact when none is open.
    await page_a.get_by_role("button", name="End contact").click()
    await page_a.wait_for_selector('#notice[data-kind="refused"]', timeout=5_000)
    assert "no open contact" in (await page_a.text_content("#notice") or "")
    assert script_errors(tab) == [] and script_errors(second_tab) == []


async def test_everyday_actions_go_through_and_refusals_are_in_words(live_app: LiveApp, tab: Tab) -> None:
    a = f"agent-a-{uuid.uuid4().hex[:6]}"
    case_id = await opened_case(live_app.url, token(a, "A. Aoki"))
    page = tab.page
    await page.goto(f"{live_app.url}/desk/cases/{case_id}#token={token(a, 'A. Aoki')}")
    await page.wait_for_selector('#live[data-state="live"]', timeout=10_000)
    await page.get_by_role("button", name="Start contact").click()
    await page.wait_for_selector('#notice[data-kind="done"]', timeout=5_000)
    await page.locator("#facts", has_text="inbound phone since").wait_for(timeout=5_000)
    await page.get_by_role("button", name="Record check").click()
    await page.locator("#facts", has_text="verified in the current contact").wait_for(timeout=5_000)
    await page.get_by_role("button", name="Suspend").first.click()
    await page.wait_for_selector('.state[data-state="suspended"]', timeout=5_000)
    await page.get_by_role("button", name="Start contact").click()  # one contact at a time: the rule, in words
    await page.wait_for_selector('#notice[data-kind="refused"]', timeout=5_000)
    assert "contact already open" in (await page.text_content("#notice") or "")
    await page.get_by_role("button", name="Schedule callback").click()  # no time given: the fields, in words
    # The notice already says "refused" (the contact above): wait for this refusal's words.
    await page.locator('#notice[data-kind="refused"]', has_text="due at").wait_for(timeout=5_000)
    assert script_errors(tab) == []
