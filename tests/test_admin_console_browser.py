"""The admin console's doors in Debian's Chromium: the first-start setup link, sign-in and
sign-out, and every section of the navigation loading without script errors or Content
Security Policy violations. The sections' own paths are in their test files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from loopin import admins
from loopin.web.consoles.admin.base import NAVIGATION
from tests.admin_support import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.browser import Live, admin_sign_in, live_server

DOCS_IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"


@pytest.fixture
def live(tmp_path: Path, sqlite_template: Path) -> Iterator[Live]:
    with live_server(tmp_path / "data", sqlite_template=sqlite_template) as live:
        yield live


def test_the_first_admin_is_created_from_the_setup_link_and_can_sign_out_and_in(live: Live, page: Page) -> None:
    with live.services.db.write() as session:
        token = admins.issue_setup_link(session, now_ms=live.clock.now_ms())
    page.goto(f"{live.url}/admin/setup/{token}")
    page.fill("input[name=email]", ADMIN_EMAIL)
    page.fill("input[name=name]", "Ada Admin")
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.fill("input[name=confirm]", ADMIN_PASSWORD)
    page.screenshot(path=str(DOCS_IMAGES / "admin-setup.png"))
    page.click("button:has-text('Create admin')")
    page.wait_for_url("**/admin/overview")
    expect(page.locator(".who .email")).to_have_text(ADMIN_EMAIL)

    page.click("button:has-text('Sign out')")
    page.wait_for_url("**/admin/sign-in?notice=signed-out")
    page.goto(f"{live.url}/admin/loops")
    page.wait_for_url("**/admin/sign-in?next=*")
    page.fill("input[name=email]", ADMIN_EMAIL)
    page.fill("input[name=password]", "not-the-password")
    page.click("button:has-text('Sign in')")
    expect(page.locator(".error")).to_have_text("The e-mail address or password is wrong.")
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.screenshot(path=str(DOCS_IMAGES / "admin-sign-in.png"))
    page.click("button:has-text('Sign in')")
    page.wait_for_url("**/admin/loops")
    # The link is spent.
    page.goto(f"{live.url}/admin/setup/{token}")
    expect(page.locator("h1")).to_have_text("This setup link is not valid")


def test_every_section_loads_without_script_errors_or_policy_violations(live: Live, page: Page) -> None:
    admin_sign_in(page, live)
    for key, label, href in NAVIGATION:
        page.click(f".admin-nav a:has-text('{label}')")
        page.wait_for_url(f"**{href}")
        page.wait_for_load_state("networkidle")
        expect(page.locator(f".admin-nav a[href='{href}']")).to_have_attribute("aria-current", "page")
        assert page.errors == [], (key, page.errors)  # type: ignore[attr-defined]


def test_an_access_key_is_made_and_its_secret_shown_once(live: Live, page: Page) -> None:
    admin_sign_in(page, live)
    page.goto(f"{live.url}/admin/keys")
    page.fill("input[name=description]", "labelling pipeline")
    page.click("button:has-text('Create key')")
    expect(page.locator("#new-key-secret")).to_have_count(1)
    page.screenshot(path=str(DOCS_IMAGES / "admin-keys.png"))
    page.goto(f"{live.url}/admin/keys")  # the list never shows a secret again
    expect(page.locator("#new-key-secret")).to_have_count(0)
    expect(page.locator("td", has_text="labelling pipeline")).to_have_count(1)
