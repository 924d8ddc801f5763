"""The admin exports a flow from its page in Debian's Chromium and downloads the file; the
model-versus-human page renders with no script error or CSP violation (SQLite, like the
other browser tests); the screenshots of both in the docs."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from loopin.exports import run_pending_exports
from tests.browser import Live, admin_sign_in, live_server
from tests.test_exports import reviewed
from tests.test_model_metrics import hand_made

DOCS_IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"


@pytest.fixture
def live(tmp_path: Path, sqlite_template: Path) -> Iterator[Live]:
    with live_server(tmp_path / "data", sqlite_template=sqlite_template) as live:
        yield live


@pytest.fixture
def http(live: Live) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url) as client:
        yield client


def test_the_admin_exports_a_flow_and_downloads_it(live: Live, http: httpx.Client, page: Page, tmp_path: Path) -> None:
    reviewed(live.admin, live.services, http)  # type: ignore[arg-type]
    admin_sign_in(page, live)
    page.goto(live.url + "/admin/flows/review")
    page.click("#flow-export")
    page.wait_for_url("**/admin/flows/review/exports")
    page.select_option("#export-format", "yolo")
    page.click("#export-button")
    page.wait_for_url("**/exports?notice=queued")
    row = page.locator("tr[data-export]")
    expect(row).to_have_attribute("data-state", "queued")
    assert run_pending_exports(live.services) == 1  # what the server's export thread does
    link = page.locator("a.download")
    expect(link).to_be_visible(timeout=10_000)  # the page followed the job and reloaded
    with page.expect_download() as download:
        link.click()
    path = tmp_path / "download.zip"
    download.value.save_as(path)
    with zipfile.ZipFile(path) as archive:
        assert {"data.yaml", "labels/loop-a.txt", "loopin-export.json"} <= set(archive.namelist())
    page.fill("input[name=name]", "first-yolo")
    page.click("button:has-text('Save as dataset')")
    expect(page.locator("#datasets")).to_contain_text("first-yolo")
    page.screenshot(path=str(DOCS_IMAGES / "admin-exports.png"), full_page=True)


def test_the_metrics_page_renders(live: Live, http: httpx.Client, page: Page) -> None:
    hand_made(live.admin, live.services, http, live.clock)  # type: ignore[arg-type]
    admin_sign_in(page, live)
    page.goto(live.url + "/admin/flows/review")
    page.click("a:has-text('Model vs humans')")
    page.wait_for_url("**/admin/flows/review/metrics")
    expect(page.locator("#class-bars g.class")).to_have_count(3)
    expect(page.locator("#week-trend polyline.recall")).to_have_count(1)
    expect(page.locator("#metrics-total")).to_contain_text("50 %")
    page.screenshot(path=str(DOCS_IMAGES / "admin-metrics.png"), full_page=True)
