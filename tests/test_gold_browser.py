"""Gold and consolidation in Debian's Chromium (SQLite; the HTTP tests cover both databases):
three workers answer one loop and the admin's loop page shows the consolidated boxes with
their agreement; a gold item is served to a worker on the ordinary task page among real
work, answered, scored and never written as output; the admin loads a JSON Lines file on
the Gold and workers page and sees the worker's score there."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser import PASSWORD, Live, admin_sign_in, live_server, sign_in, stage_point, task_frame
from tests.test_console_browser import DATA, WALKTHROUGH, WALKTHROUGH_INPUT, setup, start_working, submit

GOLD_INPUT = {**WALKTHROUGH_INPUT, "taskObject": "s3://review-bucket/images/coffee.jpg"}


@pytest.fixture
def live(tmp_path: Path, sqlite_template: Path) -> Iterator[Live]:
    with live_server(tmp_path / "data", sqlite_template=sqlite_template) as live:
        for name in ("astronaut.jpg", "coffee.jpg"):
            live.services.store.put(
                f"s3://review-bucket/images/{name}", (DATA / name).read_bytes(), content_type="image/jpeg"
            )
        yield live


def test_a_gold_item_is_served_in_the_browser_and_scored(live: Live, page: Page, tmp_path: Path):
    (loop,) = setup(live, WALKTHROUGH, [WALKTHROUGH_INPUT])
    known = {"annotatedResult": {"boundingBoxes": WALKTHROUGH_INPUT["initialValue"][:2]}}  # the third box is wrong

    admin_sign_in(page, live)
    page.goto(live.url + "/admin/flows/myteam-review")
    page.click("#flow-quality")
    page.fill("input[name=rate]", "1")
    page.click("#gold-settings button[type=submit]")
    expect(page.locator("p.notice")).to_have_text("The gold settings were saved.")
    upload = tmp_path / "gold.jsonl"
    upload.write_text(json.dumps({"input": GOLD_INPUT, "answer": known, "note": "coffee"}) + "\n")
    page.set_input_files("#gold-file", str(upload))
    page.click("#gold-upload button[type=submit]")
    page.wait_for_url("**/quality?notice=uploaded")
    expect(page.locator("#gold-items tbody tr")).to_have_count(1)
    page.context.clear_cookies()

    sign_in(page, live, "worker0@myteam.example")
    assert page.inner_text(".job .count") == "1 task waiting"  # the gold item is not counted
    frame = start_working(page)
    gold_task_url = page.url
    frame.wait_for_selector("crowd-bounding-box[data-image-drawn]")
    assert "coffee.jpg" in frame.evaluate("document.querySelector('crowd-bounding-box').getAttribute('src')")
    submit(page)  # the model's three boxes as they are: two right, one extra
    assert re.search(r"/worker/tasks/\d+$", page.url) and page.url != gold_task_url  # on to the real task
    frame = task_frame(page)
    frame.wait_for_selector("crowd-bounding-box[data-image-drawn]")
    assert "astronaut.jpg" in frame.evaluate("document.querySelector('crowd-bounding-box').getAttribute('src')")
    submit(page)
    output = live.output(loop)  # the real loop's output: the one answer, no gold in it
    assert len(output["humanAnswers"]) == 1 and "astronaut.jpg" in output["inputContent"]["taskObject"]
    assert len([p for p in (live.services.settings.data_dir).rglob("output.json")]) == 1

    page.context.clear_cookies()
    admin_sign_in(page, live)
    page.goto(live.url + "/admin/flows/myteam-review/quality")
    row = page.locator('#worker-quality tr[data-worker="worker0@myteam.example"]')
    expect(row.locator("td").nth(1)).to_have_text("1")
    expect(row.locator("td").nth(2)).to_have_text("80 %")  # F1: 2 right of 3 given and 2 known
    expect(page.locator("#accuracy-trend polyline")).to_have_count(1)
    assert page.errors == []  # type: ignore[attr-defined]


def test_three_workers_answer_one_loop_and_the_loop_page_shows_the_consolidated_boxes(live: Live, page: Page):
    admin = live.admin
    admin.create_team("Crowd", description="Three reviewers")
    emails = [f"worker{i}@crowd.example" for i in range(3)]
    for email in emails:
        admin.create_worker(email, teams=["Crowd"], password=PASSWORD)
    admin.create_task_ui("crowd-ui", template=WALKTHROUGH)
    admin.create_flow(
        "crowd-review",
        team="Crowd",
        task_ui="crowd-ui",
        title="Check the boxes",
        description="Fix the boxes",
        output_path="s3://review-bucket/a2i-results",
        task_count=3,
    )
    admin.start_loop("crowd-loop", flow="crowd-review", input=WALKTHROUGH_INPUT)
    for email in emails:
        page.context.clear_cookies()
        sign_in(page, live, email)
        frame = start_working(page)
        box = "crowd-bounding-box"
        frame.wait_for_selector(f"{box}[data-image-drawn]")
        if email == emails[2]:  # the third one deletes the small flag box
            page.mouse.click(*stage_point(page, frame, box, 50, 430))
            page.keyboard.press("Delete")
            expect(frame.locator(".lc-status")).to_have_text("2 boxes")
        submit(page)
    consolidated = live.output("crowd-loop")["consolidatedAnswer"]
    assert len(consolidated["answerContent"]["annotatedResult"]["boundingBoxes"]) == 3

    page.context.clear_cookies()
    admin_sign_in(page, live)
    page.goto(live.url + "/admin/loops/crowd-loop")
    section = page.locator("#consolidated")
    expect(section).to_be_visible()
    rows = page.locator("#consolidated-objects tbody tr")
    expect(rows).to_have_count(3)
    agreements = sorted(rows.nth(i).locator("td").nth(2).inner_text() for i in range(3))
    assert agreements == ["100 %", "100 %", "67 %"]
    small_flag = next(i for i in range(3) if rows.nth(i).locator("td").nth(2).inner_text() == "67 %")
    assert rows.nth(small_flag).locator("td").nth(3).inner_text() == f"{emails[0]}, {emails[1]}"
    first = page.locator(".figure-block").first
    expect(first.locator("p")).to_contain_text("the consolidated answer (agreement")
    expect(first.locator("g[data-kind=human]")).to_have_count(3)
    assert page.errors == []  # type: ignore[attr-defined]
