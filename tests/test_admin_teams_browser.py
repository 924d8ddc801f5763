"""The teams pages of the admin console in Debian's Chromium: the admin creates a team and
invites workers, a worker opens the invitation link in a browser of their own, chooses a
password and takes a task; the admin sees them active and disables them. Saves the docs'
screenshots. SQLite only, as the other browser tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.browser import PASSWORD, Live, admin_sign_in, live_server, open_page, task_frame
from tests.helpers import TEMPLATE

ROOT = Path(__file__).resolve().parents[1]
DOCS_IMAGES = ROOT / "docs" / "images"
IMAGE = "s3://review-bucket/images/astronaut.jpg"
VIEWPORT = {"width": 1280, "height": 800}


@pytest.fixture
def live(tmp_path: Path, sqlite_template: Path) -> Iterator[Live]:
    with live_server(tmp_path / "data", sqlite_template=sqlite_template) as live:
        live.services.store.put(
            IMAGE, (ROOT / "tests" / "data" / "astronaut.jpg").read_bytes(), content_type="image/jpeg"
        )
        yield live


def test_invite_then_the_worker_signs_in_from_the_link_and_takes_a_task(live: Live, browser: Browser):
    DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
    admin_context, admin = open_page(browser)
    admin_sign_in(admin, live)
    admin.goto(live.url + "/admin/teams")
    expect(admin.locator("main")).to_contain_text("No teams yet")
    admin.fill("input[name=name]", "Reviewers")
    admin.fill("input[name=description]", "Check the detector's boxes")
    admin.click("button:has-text('Create team')")
    admin.wait_for_url("**/admin/teams/Reviewers?done=created")
    expect(admin.locator(".sign-in-url code")).to_have_text(live.url + "/worker/sign-in")

    # A flow for the team, and a loop waiting for review.
    live.admin.create_task_ui("boxes", template=TEMPLATE)
    live.admin.create_flow(
        "review",
        team="Reviewers",
        task_ui="boxes",
        title="Check the boxes",
        description="Fix the boxes the detector drew",
        output_path="s3://review-bucket/a2i-results",
    )
    live.admin.start_loop("loop-1", flow="review", input={"taskObject": IMAGE, "labels": ["person"]})

    admin.fill("textarea[name=emails]", "ana@example.com, ben@example.com\ncarla@example")
    admin.click("button:has-text('Invite')")
    expect(admin.locator(".error")).to_contain_text("'carla@example' needs a domain with a dot after the @")
    expect(admin.locator("textarea[name=emails]")).to_have_value("ana@example.com, ben@example.com\ncarla@example")
    admin.fill("textarea[name=emails]", "ana@example.com, ben@example.com\ncarla@example.com")
    admin.click("button:has-text('Invite')")
    rows = admin.locator("table.results tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text("Invited")
    link = rows.nth(0).locator("code.link").inner_text()
    assert link.startswith(live.url + "/worker/invitation/")
    admin.screenshot(path=str(DOCS_IMAGES / "admin-team-invited.png"))

    # Ana opens the link in her own browser, chooses a password and takes the task.
    worker_context, worker = open_page(browser)
    worker.goto(link)
    worker.fill("input[name=password]", PASSWORD)
    worker.fill("input[name=confirm]", PASSWORD)
    worker.click("button:has-text('Set password and sign in')")
    worker.wait_for_url("**/worker/jobs")
    expect(worker.locator(".job .count")).to_have_text("1 task waiting")
    worker.click("button:has-text('Start working')")
    worker.wait_for_url("**/worker/tasks/*")
    frame = task_frame(worker)
    frame.wait_for_selector("crowd-bounding-box[data-image-drawn]")
    worker.click("#submit-button")
    with worker.expect_navigation():
        frame.click("dialog[open] button:has-text('Submit anyway')")  # an answer with no boxes is asked about
    assert worker.url.endswith("/worker/jobs?notice=done")
    assert live.output("loop-1")["humanAnswers"][0]["workerId"]

    # The admin sees Ana active, and disables her: her next page asks her to sign in.
    admin.goto(live.url + "/admin/teams/Reviewers")
    ana = admin.locator("table.members tr", has_text="ana@example.com")
    expect(ana.locator(".badge")).to_have_text("active")
    expect(ana).to_contain_text("just now")
    expect(admin.locator("main")).to_contain_text("3 members · 1 active in the last 24 h")
    admin.screenshot(path=str(DOCS_IMAGES / "admin-team.png"))
    admin.goto(live.url + "/admin/teams")
    expect(admin.locator("table.data tbody tr")).to_contain_text("review")
    admin.screenshot(path=str(DOCS_IMAGES / "admin-teams.png"))

    admin.goto(live.url + "/admin/teams/Reviewers")
    questions: list[str] = []
    admin.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    ana.locator("button:has-text('Disable')").click()
    admin.wait_for_url("**/admin/teams/Reviewers?done=disabled*")
    assert questions and questions[0].startswith("Disable ana@example.com?")
    expect(admin.locator(".notice")).to_contain_text("ana@example.com is disabled")
    worker.goto(live.url + "/worker/jobs")
    assert worker.url.endswith("/worker/sign-in")

    assert admin.errors == [] and worker.errors == []  # type: ignore[attr-defined]
    worker_context.close()
    admin_context.close()


def test_a_dismissed_confirmation_removes_nobody(live: Live, browser: Browser):
    live.admin.create_team("Reviewers", description="Reviewers")
    live.admin.create_worker("ana@example.com", teams=["Reviewers"], password=PASSWORD)
    context, page = open_page(browser)
    admin_sign_in(page, live)
    page.goto(live.url + "/admin/teams/Reviewers")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("button:has-text('Remove worker')")
    expect(page.locator("table.members")).to_contain_text("ana@example.com")
    assert live.admin.list_workers()[0].status == "active"
    context.close()
