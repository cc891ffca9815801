"""Fixtures for browser tests: the real app on a real port, and headless Chromium driving it.

Chromium is Debian's (/usr/bin/chromium); Playwright's Python package drives it
(no `playwright install`: nothing is downloaded). Without either, these tests
are skipped, saying which is missing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from aiohttp import web

from casedesk.services.http.app import create_app
from casedesk.services.settings import Settings
from tests.api.conftest import SECRET, with_schema

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]



def skip_without_a_browser() -> None:
    """Skip the calling test module, saying why, when Chromium or Playwright is not here."""
    if not CHROMIUM.exists():
        pytest.skip(f"browser tests need Chromium at {CHROMIUM} (Debian package `chromium`)",
                    allow_module_level=True)
    pytest.importorskip("playwright.async_api",
                        reason="browser tests need the `playwright` Python package (test extras)")


class LiveApp(NamedTuple):
    url: str
    app: web.Application


@pytest.fixture
async def live_app(tmp_path: Path, database_dsn: str, shared_schema: str) -> AsyncIterator[LiveApp]:
    """casedesk serving on 127.0.0.1 on a free port, as `casedesk serve` would (settings as in tests/api)."""
    settings = Settings(token_secret=SECRET, pii_key="test-pii-key", data_dir=tmp_path, pool_min=1, pool_max=8)
    app = create_app(settings, dsn=with_schema(database_dsn, shared_schema))
    runner = web.AppRunner(app, shutdown_timeout=2.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()  # port 0: the system picks a free one
    host, port = runner.addresses[0][:2]
    try:
        yield LiveApp(f"http://{host}:{port}", app)
    finally:
        await runner.cleanup()


class Tab(NamedTuple):
    page: Any  # playwright.async_api.Page
    errors: list[str]  # uncaught script errors and console errors: a page that works has none


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    """One headless Chromium for a module's tests (each gets a fresh context of its own)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def tab(browser: Any) -> AsyncIterator[Tab]:
    """A fresh page (own cookies and sessionStorage), remembering the errors its scripts meet."""
    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda message: message.type == "error" and errors.append(message.text))
        yield Tab(page, errors)
    finally:
        await context.close()
