"""The browser page the flow tests drive: a live server, a real worker, the sandbox's clouds."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Browser, Page, sync_playwright

from provisioning.connections.sandbox_registration import register_sandbox_connections
from sandbox.server import Sandbox
from tests.browser.chromium import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PASSWORD,
    STEP_TIMEOUT_MS,
    VIEWPORT,
)
from tests.worker_process import WorkerProcess
from wizard.roles import ADMIN, role_group


@pytest.fixture
def chromium() -> Iterator[Browser]:
    """Headless Chromium; launch() gives every test a fresh temporary profile."""
    # Playwright's sync API runs an event loop in this thread; the ORM calls around it are sync.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def page(
    celery_worker: WorkerProcess,
    live_server: object,
    sandbox: Sandbox,
    settings: Any,
    chromium: Browser,
) -> Iterator[Page]:
    settings.WIZARD_MODE = "sandbox"
    settings.SANDBOX_FILE = sandbox.state_dir / "sandbox.json"
    register_sandbox_connections(sandbox_file=settings.SANDBOX_FILE)
    # The browser tests sign in as this admin (chromium.sign_in).
    User.objects.create_user("admin", password=PASSWORD).groups.add(role_group(ADMIN))
    context = chromium.new_context(viewport=VIEWPORT, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(STEP_TIMEOUT_MS)
    page.base_url = str(live_server)  # type: ignore[attr-defined]
    yield page


@pytest.fixture
def browser(chromium: Browser) -> Browser:
    """Headless Chromium with the test admin, for a test that opens pages of its own (several
    languages or screen sizes) without a worker."""
    User.objects.create_user("admin", password=PASSWORD).groups.add(role_group(ADMIN))
    return chromium
