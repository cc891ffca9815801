"""The case replay page in a real browser: an auditor steps through a case event by event."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from aiohttp import ClientSession

from casedesk.services.tokens import issue_token
from tests.api.conftest import SECRET, new_case_body
from tests.browser.conftest import LiveApp, Tab, skip_without_a_browser
from tests.clock import from_now

skip_without_a_browser()

VERSION = '[data-field="version"]'
CARD = '[data-card="card-p"]'


def token(role: str) -> str:
    return issue_token(SECRET, sub=f"{role}-{uuid.uuid4().hex[:8]}", name="H. Sato", role=role,
                       departments=("fraud",))


async def a_suspended_card_case(url: str) -> tuple[str, int]:
    """A case worked over one call: opened, identity verified, payments stopped, a dispute, a callback,
    a pinned note, and the card suspended last. Its id and latest version."""
    headers = {"Authorization": f"Bearer {token('agent')}"}
    async with ClientSession(url, headers=headers) as http:
        async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            r = await http.post(path, json=body)
            answer = await r.json()
            assert r.status in (200, 201), (path, answer)
            return answer

        opened = await post("/v1/cases", new_case_body(contact={
            "direction": "inbound", "channel": "phone", "phone": "+81 90 1234 5678", "department": "fraud"}))
        case, contact = f"/v1/cases/{opened['case_id']}", opened["contact_id"]
        await post(f"{case}/identity-checks", {"contact_id": contact, "method": "knowledge_based", "passed": True,
                                               "factors": ["date_of_birth"]})
        await post(f"{case}/payment-stops", {"contact_id": contact, "scope": "merchant", "merchant": "WEBTEL"})
        await post(f"{case}/disputes", {"contact_id": contact, "transaction_id": "t-1", "merchant": "WEBTEL",
                                         "amount": {"amount": "19.95", "currency": "USD"}, "reason_code": "10.4",
                                         "network": "visa"})
        await post(f"{case}/callbacks", {"due_at": from_now(days=7), "phone": "registered",
                                         "reason": "confirm the replacement card", "department": "fraud"})
        await post(f"{case}/notes", {"text": "Customer travels often; call after 6pm", "pinned": True})
        last = await post(f"{case}/cards/card-p/suspend", {"reason": "fraud", "include_linked": False})
    return opened["case_id"], last["version"]


async def give_reason(page: Any, reason: str = "quarterly access review") -> None:
    """The page asks why the case is opened (sent as X-Access-Reason, kept in the access log)."""
    box = page.get_by_label("Reason for access")
    await box.wait_for(timeout=10_000)
    await box.fill(reason)
    await page.get_by_role("button", name="Open replay").click()


async def shown_version(page: Any, want: int) -> None:
    await page.wait_for_function("([selector, want]) => document.querySelector(selector)?.textContent === want",
                                 arg=[VERSION, str(want)], timeout=10_000)


async def test_an_auditor_steps_back_from_the_suspension(live_app: LiveApp, tab: Tab, tmp_path: Path) -> None:
    case_id, latest = await a_suspended_card_case(live_app.url)
    page = tab.page
    await page.goto(f"{live_app.url}/cases/{case_id}#token={token('auditor')}")
    await give_reason(page)
    await shown_version(page, latest)  # the page opens at the latest version
    assert "token" not in page.url  # the token left the address bar (and so the history)
    assert await page.get_attribute(CARD, "data-state") == "suspended"
    assert await page.text_content('[data-field="status"]') == "open"
    assert await page.locator("#events li").count() == latest
    assert "suspended" in (await page.text_content("#events li.current") or "")
    await page.screenshot(path=tmp_path / "replay-latest.png", full_page=True)

    await page.click('[data-step="back"]')
    await shown_version(page, latest - 1)
    assert await page.get_attribute(CARD, "data-state") == "active"
    assert await page.locator("#events li.future").count() == 1  # the suspension, still to come
    assert await page.text_content("#event-title") == "Handoff note added"  # the event before the suspension
    await page.screenshot(path=tmp_path / "replay-step-back.png", full_page=True)

    await page.keyboard.press("ArrowRight")  # and forward again from the keyboard
    await shown_version(page, latest)
    assert await page.get_attribute(CARD, "data-state") == "suspended"
    await page.keyboard.press("Home")
    await shown_version(page, 1)
    assert await page.is_disabled('[data-step="back"]')
    await page.locator("#slider").fill("3")  # the slider, to any version
    await shown_version(page, 3)
    assert await page.text_content("#event-title") == "Identity verified"
    await page.click('#events li[data-version="2"]')  # a line of the timeline
    await shown_version(page, 2)
    await page.reload()  # the step is in the address (#version=2), token and reason in this tab's storage
    await shown_version(page, 2)
    assert tab.errors == []
    async with ClientSession(live_app.url) as http:  # the reason the auditor typed is what the log kept
        r = await http.get(f"/v1/cases/{case_id}/access-log", headers={"Authorization": f"Bearer {token('admin')}"})
        assert {e["why"] for e in (await r.json())["items"]} == {"quarterly access review"}


async def test_an_agent_token_is_refused_plainly(live_app: LiveApp, tab: Tab, tmp_path: Path) -> None:
    case_id, _ = await a_suspended_card_case(live_app.url)
    page = tab.page
    await page.goto(f"{live_app.url}/cases/{case_id}#token={token('agent')}")
    await give_reason(page)
    refusal = page.locator("#signin-error")
    await refusal.wait_for(timeout=10_000)
    assert "403" in (await refusal.text_content() or "")
    assert "auditor, supervisor or admin" in (await refusal.text_content() or "")
    assert await page.is_hidden("#replay")  # nothing of the case is shown
    assert await page.evaluate("sessionStorage.getItem('casedesk.token')") is None  # the refused token is dropped
    await page.screenshot(path=tmp_path / "replay-refused.png")

    await page.get_by_label("Bearer token").fill(token("supervisor"))  # another token, without reloading
    await page.get_by_role("button", name="Open replay").click()
    await page.wait_for_selector(CARD, timeout=10_000)
    assert await page.get_attribute(CARD, "data-state") == "suspended"


async def test_an_unknown_case_says_so(live_app: LiveApp, tab: Tab) -> None:
    async with ClientSession(live_app.url) as http:
        r = await http.get("/cases/not-a-case")
        assert r.status == 404
        r = await http.get(f"/cases/{uuid.uuid4()}")  # the page itself needs no token: its reads do
        assert r.status == 200 and r.content_type == "text/html"
        assert "script-src 'sha256-" in r.headers["Content-Security-Policy"]
    page = tab.page
    await page.goto(f"{live_app.url}/cases/{uuid.uuid4()}#token={token('auditor')}")
    await give_reason(page)
    await page.get_by_text("No such case").wait_for(timeout=10_000)
    assert await page.is_hidden("#replay")
