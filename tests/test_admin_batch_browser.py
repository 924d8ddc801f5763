"""The admin starts a batch job from the console in Debian's Chromium, watches its progress
(the page follows the job and shows the end state and the bad images without a reload by
hand), with no script error or CSP violation; the screenshot in the docs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from loopin import batch
from tests.browser import Live, admin_sign_in, live_server
from tests.test_batch import deploy, variants, write_folder

DOCS_IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"


@pytest.fixture
def live(tmp_path: Path, sqlite_template: Path) -> Iterator[Live]:
    with live_server(tmp_path / "data", sqlite_template=sqlite_template) as live:
        yield live


def test_the_admin_starts_a_batch_job_and_watches_it_finish(live: Live, page: Page) -> None:
    deploy(live.admin, live.services)
    folder = write_folder(live.services.settings.data_dir / "photos", list(variants(8)))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    admin_sign_in(page, live)
    page.goto(live.url + "/admin/overview")
    page.click("nav >> text=Batch jobs")
    page.wait_for_url("**/admin/batch")
    page.select_option("#batch-endpoint", "detector")
    page.fill("#batch-source", str(folder))
    page.fill("#batch-output", "s3://results/december")
    page.fill("#batch-name", "december")
    page.click("#batch-button")
    page.wait_for_url("**/admin/batch/december")
    expect(page.locator("#batch-job .state")).to_have_text("Pending")
    assert batch.run_next(live.services, owner="runner-a") == "december"  # the server's batch thread
    expect(page.locator("#batch-job .state")).to_have_text("Completed", timeout=15_000)
    expect(page.locator("#batch-failures")).to_contain_text("broken.jpg")  # the page reloaded at the end
    expect(page.locator("#batch-job .count")).to_have_text("8 / 9, 1 bad")
    page.goto(live.url + "/admin/batch")
    expect(page.locator("tr[data-batch=december] .state")).to_have_text("Completed")
    page.screenshot(path=str(DOCS_IMAGES / "admin-batch.png"), full_page=True)
