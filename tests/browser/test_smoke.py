"""The browser-test machinery end to end: the real gateway, opened in Chromium; axe-core run in
the page; a screenshot. /docs (FastAPI's Swagger UI) is not our page: its violations are printed,
not judged. Swagger UI's scripts come from a CDN, which the test browser does not reach."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.async_api import Page

from tests.browser.support import (
    assert_accessible,
    axe_violations,
    check_accessibility,
    describe,
    screenshot,
)
from tests.support.stack import Gateway, Stack

pytestmark = [pytest.mark.browser, pytest.mark.integration]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def stack() -> Stack:
    """The gateway alone: /docs needs no service behind it."""
    return Stack(services={})


async def test_swagger_ui_in_chromium(gateway: Gateway, page: Page, tmp_path: Path) -> None:
    started = time.monotonic()
    response = await page.goto(f"{gateway.base_url}/docs")
    assert response is not None
    assert response.ok, response.status
    assert await page.title() == "Recruiter assistant gateway - Swagger UI"

    everything = await axe_violations(page)
    critical = await check_accessibility(page)
    print(f"\naxe-core on /docs: {len(everything)} violations, {len(critical)} critical")
    print(describe(everything))
    assert await page.evaluate("typeof axe.version") == "string"  # axe ran in the page
    assert isinstance(critical, list)
    assert all(v["impact"] == "critical" for v in critical)
    assert {v["id"] for v in critical} <= {v["id"] for v in everything}

    path = await screenshot(page, "swagger-ui", directory=tmp_path)
    assert path == tmp_path / "swagger-ui.png"
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    print(f"screenshot: {path}; page checks took {time.monotonic() - started:.2f}s")


async def test_accessibility_check_finds_critical_violations(page: Page) -> None:
    """An image without alternative text is a critical violation (axe's `image-alt`); the same
    page with it is clean of critical ones."""
    await page.set_content(
        '<html lang="en"><head><title>t</title></head>'
        '<body><main><h1>Jobs</h1><img src="data:,"></main></body></html>'
    )
    assert [v["id"] for v in await check_accessibility(page)] == ["image-alt"]
    with pytest.raises(AssertionError, match="image-alt"):
        await assert_accessible(page)

    await page.set_content(
        '<html lang="en"><head><title>t</title></head>'
        '<body><main><h1>Jobs</h1><img src="data:," alt="logo"></main></body></html>'
    )
    assert await check_accessibility(page) == []
    await assert_accessible(page)
