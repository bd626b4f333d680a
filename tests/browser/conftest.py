"""Playwright driving Debian's Chromium against live_server, with a real RQ worker process."""

import os

import pytest
from playwright.sync_api import expect

from devstack.processes import chromium
from tests.conftest import start_worker_process

# Playwright's sync API runs an event loop in this thread; Django's ORM calls from tests are still synchronous.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
# A page's htmx swap can take longer than Playwright's default 5 s on a loaded two-core CI machine.
expect.set_options(timeout=15_000)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    path, args = chromium()
    if not os.path.exists(path):
        pytest.fail("Browser tests need Debian's chromium (apt-get install chromium); `make test` installs it.")
    return {**browser_type_launch_args, "executable_path": path, "args": args}


@pytest.fixture
def worker(transactional_db):
    """An RQ worker process on the test database, as in production."""
    process = start_worker_process()
    yield process
    process.terminate()
    process.wait(10)


@pytest.fixture(autouse=True)
def no_csp_violations(page):
    """Every page works under the Content-Security-Policy: no inline script or style was refused."""
    refused = []
    page.on(
        "console", lambda message: refused.append(message.text) if "Content Security Policy" in message.text else None
    )
    yield
    assert refused == []


@pytest.fixture
def login(live_server, page):
    def login_as(user, password):
        page.goto(f"{live_server.url}/login/")
        page.get_by_label("Username").fill(user.username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{live_server.url}/")

    return login_as
