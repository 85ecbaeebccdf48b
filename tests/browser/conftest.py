"""Fixtures for browser tests: one real Chromium per run (Debian's /usr/bin/chromium, driven by
Playwright's async API, no browser download), and a fresh context and `page` per test.

Every test under tests/browser is marked `browser` (`pytest -m browser`, `-m "not browser"`).
The helpers (`check_accessibility`, `assert_accessible`, `screenshot`) are in
`tests.browser.support`; the gateway comes from the module's `stack`, as in tests/integration.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, Playwright, ViewportSize, async_playwright

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
"""The browser: Debian's `chromium` package (`make chromium` installs it), or $CHROMIUM."""

CHROMIUM_ARGS = [
    "--no-sandbox",  # tests run as root here and in CI
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # Offline and deterministic: only localhost and 127.0.0.1 resolve, so a page that needs a CDN
    # (or anything off this machine) shows it here, as it would on a closed network. A test that
    # wants an outside resource fakes it with `page.route`.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
BROWSER_TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if BROWSER_TESTS in item.path.parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
async def playwright() -> AsyncIterator[Playwright]:
    async with async_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
async def browser(playwright: Playwright) -> AsyncIterator[Browser]:
    """Headless Chromium, launched once for the whole run."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: `make chromium` installs Debian's chromium package")
    browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    await browser.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A page in a context of the test's own (no cookies or storage shared), 1280x800."""
    context = await browser.new_context(viewport=VIEWPORT)
    page = await context.new_page()
    yield page
    await context.close()
