"""Fixtures of the console's browser tests: one headless chromium for the session, and a page
per test, already logged in to the console of the `make up` stack (fixture `make_up`).

Debian's chromium is used as it is (`hack/apt-packages.sh` installs it; Playwright downloads
no browser). Outside CI a missing chromium or playwright skips the tests saying what to run;
with CI set it fails them. STACKYARD_CHROMIUM points at another chromium binary."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from stackyard_harness.local_stack import LocalStack

from . import log_in, screenshot

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

TIMEOUT_MS = 15_000
"""Of every Playwright wait and action: a console page answers in well under a second."""


@pytest.fixture(scope="session")
def api_url(make_up: LocalStack) -> str:
    """The api of the make-up stack, e.g. http://127.0.0.1:41234 (the console is under /console)."""
    return make_up.client_env()["STACKYARD_API_URL"]


@pytest.fixture(scope="session")
def console_url(api_url: str) -> str:
    return f"{api_url}/console"


@pytest.fixture(scope="session")
def admin_key(make_up: LocalStack) -> str:
    """The Stack's admin API key: what the console's login form asks for."""
    return make_up.client_env()["STACKYARD_ADMIN_KEY"]


@pytest.fixture
def browser_context(browser: Browser, api_url: str) -> Iterator[BrowserContext]:
    """A fresh browser profile (no cookies) whose relative URLs are the api's: goto("/console")."""
    context = browser.new_context(base_url=api_url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context
    finally:
        context.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    """Keep each phase's report on the test, for the fixtures' teardown to see a failure."""
    report: pytest.TestReport = yield
    item.stash.setdefault(REPORTS, {})[report.when] = report
    return report


REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


def _photograph_if_failed(request: pytest.FixtureRequest, page: Page) -> None:
    """A failed test leaves the page as it was: `failed-<test>.png` beside the screenshots."""
    call = request.node.stash.get(REPORTS, {}).get("call")
    if call is not None and call.failed and not page.is_closed():
        name = re.sub(r"[^a-z0-9._-]+", "-", request.node.name.lower()).strip("-")
        screenshot(page, f"failed-{name}"[:120])


@pytest.fixture
def anonymous_page(request: pytest.FixtureRequest, browser_context: BrowserContext) -> Iterator[Page]:
    """A page of a browser that has never logged in."""
    page = browser_context.new_page()
    yield page
    _photograph_if_failed(request, page)


@pytest.fixture
def console(request: pytest.FixtureRequest, browser_context: BrowserContext, admin_key: str) -> Iterator[Page]:
    """A page logged in to the console (its own session, through the login form), on the
    Overview. Relative URLs are the api's: `console.goto("/console/jobs")`. When the test
    fails, the page is saved as .stackyard/artifacts/console/failed-<test>.png."""
    page = browser_context.new_page()
    log_in(page, admin_key)
    yield page
    _photograph_if_failed(request, page)
