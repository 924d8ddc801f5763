"""What the browser tests (and the editor benchmark) share: a live loopin server with the
worker console, run in a thread so a ``ManualClock`` drives lease expiry, and Debian's
Chromium driven by Playwright."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Frame, Page, Playwright

from loopin import admins
from loopin.access_keys import create_key
from loopin.client import Client
from loopin.clock import ManualClock
from loopin.config import Settings
from loopin.services import Services, build_services
from loopin.web.server import create_app
from tests.admin_support import ADMIN_EMAIL, ADMIN_PASSWORD, create_admin_account

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "correct-horse-battery"


@dataclass
class Live:
    url: str
    services: Services
    clock: ManualClock
    admin: Client

    def output(self, loop_name: str) -> dict[str, Any]:
        loop = self.admin.describe_loop(loop_name)
        assert loop.status == "Completed" and loop.output_uri, loop
        doc: dict[str, Any] = json.loads(self.services.store.get(loop.output_uri))
        return doc


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def live_server(data_dir: Path, *, sqlite_template: Path | None = None) -> Iterator[Live]:
    """loopin (API, store, worker console) on a free port, on SQLite, until the block ends."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    data_dir.mkdir(parents=True, exist_ok=True)
    if sqlite_template is not None:
        shutil.copyfile(sqlite_template, data_dir / "loopin.db")
    settings = Settings(data_dir=data_dir, public_url=url, secret_key="browser-" + uuid.uuid4().hex)
    clock = ManualClock(start_ms=int(time.time() * 1000))
    services = build_services(settings, clock=clock)
    app = create_app(services=services, run_background=False)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the live server did not start")
        time.sleep(0.02)
    with services.db.write() as session:
        key = create_key(session, secret_key=settings.secret_key, description="browser tests", now_ms=clock.now_ms())
    admin = Client(url, access_key_id=key.access_key_id, secret_access_key=key.secret_access_key)
    try:
        yield Live(url, services, clock, admin)
    finally:
        admin.close()
        server.should_exit = True
        thread.join(timeout=10)
        services.db.dispose()


def chromium_available() -> bool:
    return os.access(CHROMIUM, os.X_OK)


def launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def sign_in(page: Page, live: Live, email: str, password: str = PASSWORD) -> None:
    page.goto(live.url + "/worker/sign-in")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button:has-text('Sign in')")
    page.wait_for_url("**/worker/jobs")


def task_frame(page: Page) -> Frame:
    """The task's sandboxed frame, once its crowd elements are ready."""
    page.wait_for_selector("#task-frame")
    handle = page.query_selector("#task-frame")
    assert handle is not None
    frame = handle.content_frame()
    assert frame is not None
    frame.wait_for_load_state("load")
    page.wait_for_selector("#submit-button:not([disabled])")
    return frame


def stage_point(page: Page, frame: Frame, selector: str, x: float, y: float) -> tuple[float, float]:
    """Page coordinates of the image point (x, y) of the annotator ``selector`` in the frame."""
    frame_box = page.locator("#task-frame").bounding_box()
    assert frame_box is not None
    local = frame.evaluate(
        """([selector, x, y]) => {
            const el = document.querySelector(selector);
            const rect = el.stage.getBoundingClientRect();
            return [rect.left + el.view.x + x * el.view.scale, rect.top + el.view.y + y * el.view.scale];
        }""",
        [selector, x, y],
    )
    return frame_box["x"] + local[0], frame_box["y"] + local[1]


def admin_sign_in(page: Page, live: Live) -> None:
    """Sign in to the admin console as the test admin (created on first use)."""
    with live.services.db.read() as session:
        exists = admins.admin_count(session) > 0
    if not exists:
        create_admin_account(live.services)
    page.goto(live.url + "/admin/sign-in")
    page.fill("input[name=email]", ADMIN_EMAIL)
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.click("button:has-text('Sign in')")
    page.wait_for_url("**/admin/**")


def open_page(browser: Browser) -> tuple[BrowserContext, Page]:
    """A 1280x800 page in a context of its own (its own cookies). ``page.errors`` collects
    script errors and console errors such as CSP violations; Chromium's "Failed to load
    resource" lines are left out, since the pages that refuse on purpose (a 4xx answer)
    are checked by the tests themselves."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.errors = errors  # type: ignore[attr-defined]
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            errors.append(message.text)

    page.on("console", on_console)
    return context, page
