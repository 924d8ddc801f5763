"""Gold in Debian's Chromium (SQLite; the HTTP tests cover both databases): a gold item is
served to a worker on the ordinary task page among real work, answered, scored and never
written as output; the admin loads a JSON Lines file on the Gold and workers page and sees
the worker's score there."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser import Live, admin_sign_in, live_server, sign_in, task_frame
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
