"""Browser tests: Playwright driving Debian's Chromium (`make chromium` installs it)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest

# Playwright's sync API runs an event loop in the test thread; Django's ORM calls in the same thread
# (fixtures creating rows) are still plain synchronous code, so allow them.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium_path() -> str:
    path = (
        os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    if not path:
        pytest.fail("Chromium is not installed: run `make chromium` (apt-get install -y chromium)")
    return path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.path):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
def browser(transactional_db: None, django_db_serialized_rollback: None) -> Iterator[Any]:
    """Chromium for one test, started after the database is set up and closed before it is
    flushed: while Playwright's event loop runs, Django (asgiref) keeps this thread's database
    connections in another store, which lacks the test database's snapshot. Started outside
    the loop, the serialized rollback gives every browser test what the migrations made (role
    groups, tiers) and leaves the database as the next serialized test expects it."""
    from django.db import connections
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=_chromium_path(), args=CHROMIUM_FLAGS, headless=True
        )
        yield browser
        # The connections the test opened inside the loop are reachable only while it runs;
        # left open, PostgreSQL refuses to drop the test database at the end.
        connections.close_all()
        browser.close()


@pytest.fixture
def page(browser: Any, live_server: Any) -> Iterator[Any]:
    context = browser.new_context(base_url=live_server.url, locale="zh-CN")
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def log_in(page: Any, make_user: Callable[..., Any]) -> Callable[[str], Any]:
    """Create a user of the given role and log in through the real login form."""

    def login(role: str, username: str = "e2e-user", password: str = "pw-e2e-12345") -> Any:
        user = make_user(role, username=username)
        user.set_password(password)
        user.save()
        page.goto("/accounts/login/")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", password)
        # The page's first submit button is the language switch's, in the top bar.
        with page.expect_navigation():
            page.click("main form button[type=submit]")
        return user

    return login
