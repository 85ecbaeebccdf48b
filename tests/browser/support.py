"""Helpers for browser tests: axe-core accessibility checks and screenshots of a Playwright page.

axe-core comes from the pinned `axe-playwright-python` wheel (its bundled `axe.min.js`); the
checks run inside the page, so they see what Chromium rendered, scripts and styles included.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from axe_playwright_python.async_playwright import Axe  # type: ignore[import-untyped]
from playwright.async_api import Page

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "docs" / "ui"
"""Where `screenshot` saves by default: the product's pages as they look, for the docs."""

Violation = dict[str, Any]
"""One axe-core violation: `id`, `impact`, `help`, `helpUrl` and the offending `nodes`."""

_AXE = Axe()


async def axe_violations(page: Page) -> list[Violation]:
    """Every axe-core violation on the page as it is now, whatever its impact."""
    results = await _AXE.run(page)
    violations: list[Violation] = results.response["violations"]
    return violations


async def check_accessibility(
    page: Page, impacts: tuple[str, ...] = ("critical",)
) -> list[Violation]:
    """The page's axe-core violations whose impact is one of `impacts` (by default "critical")."""
    return [v for v in await axe_violations(page) if v.get("impact") in impacts]


def describe(violations: list[Violation]) -> str:
    """One line per violation and per offending element, for assertion messages and logs."""
    lines = []
    for v in violations:
        lines.append(f"[{v.get('impact')}] {v['id']}: {v['help']} ({v['helpUrl']})")
        lines.extend(f"    {', '.join(node['target'])}" for node in v.get("nodes", []))
    return "\n".join(lines)


async def assert_accessible(page: Page, impacts: tuple[str, ...] = ("critical",)) -> None:
    """Fail the test if axe-core finds a violation of one of `impacts` on the page."""
    violations = await check_accessibility(page, impacts)
    assert not violations, f"axe-core found on {page.url}:\n{describe(violations)}"


async def screenshot(page: Page, name: str, directory: Path = SCREENSHOTS) -> Path:
    """Save a full-page PNG of `page` as `<directory>/<name>.png` (by default `docs/ui/`); the
    directory is made if missing."""
    path = directory / f"{name}.png"
    await page.screenshot(path=path, full_page=True)
    return path
