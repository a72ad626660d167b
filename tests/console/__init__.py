"""Browser tests of the admin console (/console), against the stack of `make up`.

Playwright's Python API drives Debian's chromium (`/usr/bin/chromium`, headless). The
fixtures are in conftest.py: `browser` (one per session), `console_url`, `admin_key`, and
`console`, a page already logged in. A test module's own helpers come from here:

    from . import screenshot

    def test_find_a_user(console: Page) -> None:
        console.goto("/console/users")
        ...
        screenshot(console, "users-search")
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from stackyard_harness.tools import REPO_ROOT

if TYPE_CHECKING:
    from playwright.sync_api import Page

ARTIFACTS = REPO_ROOT / ".stackyard" / "artifacts" / "console"
"""Where the screenshots go, one PNG per name (docs/testing.md, "Browser tests")."""


def screenshot(page: Page, name: str) -> Path:
    """The whole page as `.stackyard/artifacts/console/<name>.png` (a later one of the same
    name replaces it); returns the path."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", name):
        raise ValueError(f"screenshot name {name!r}: lower-case letters, digits, '.', '_' and '-' only")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def log_in(page: Page, admin_key: str, next_path: str = "/console") -> None:
    """Through the login form, as a person would, then wait for the console's nav."""
    page.goto(f"/console/login?next={next_path}")
    page.get_by_label("Admin API key").fill(admin_key)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("navigation", name="Console").wait_for()
