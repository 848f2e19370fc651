"""A real browser for the dashboard's tests: Debian's `chromium` driven by Playwright through
`executable_path` (never `playwright install`); skipped with a reason where chromium is missing."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.node.conftest import NodeFactory, make_node  # noqa: F401 (fixture)
from tests.support import require


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    path = chromium_path()
    require(path is not None, "chromium not found on PATH (apt-get install chromium)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:  # pragma: no cover - a dev install has it
        require(False, "playwright not installed (pip install -e .[dev])")
        raise
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=path, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where the screenshots go: the test's tmp dir (a CI artifact, never committed)."""
    path = tmp_path / "screenshots"
    path.mkdir()
    return path
