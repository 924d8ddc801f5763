"""The admin console's overview and human-loop pages in Debian's Chromium (SQLite only,
like the other browser tests), and the screenshots of them in the docs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from loopin import loops
from loopin.background import run_once
from loopin.client import WorkerClient
from loopin.loop_stats import DAY_MS
from loopin.schemas import DEFAULT_MIN_SCORE, RoutingRule, VariantSpec
from tests.browser import PASSWORD, Live, admin_sign_in, live_server

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = (ROOT / "tests" / "data" / "astronaut.jpg").read_bytes()
DOCS_IMAGES = ROOT / "docs" / "images"


@pytest.fixture
def live(tmp_path: Path, sqlite_template: Path) -> Iterator[Live]:
    with live_server(tmp_path / "data", sqlite_template=sqlite_template) as live:
        yield live


def seed_history(live: Live) -> None:
    """Two weeks of earlier loops in several states, so the overview has something to show."""
    now = live.clock.now_ms()
    with live.services.db.write() as s:
        for day in range(13, 0, -1):
            for i in range(6 + (day * 7) % 11):
                at = now - day * DAY_MS + i * 600_000
                loop, _ = loops.start_loop(
                    s, name=f"earlier-{day:02d}-{i:02d}", flow_name="photos", input_content='{"text": "a"}', now_ms=at
                )
                if i % 9 == 4:
                    loops.fail_loop(s, loop, code="Expired", reason="Nobody answered in time.", now_ms=at + DAY_MS)
                elif i % 9 == 7:
                    loops.stop_loop(s, loop.name, now_ms=at + 60_000)
                elif day > 1 or i < 3:  # a shortcut: these were answered (the counters follow)
                    loop.status, loop.ended_at = "Completed", at + 300_000


def test_a_routed_loop_shows_the_models_and_the_workers_boxes(live: Live, page: Page):
    admin = live.admin
    admin.create_team("MyTeam", description="Reviewers")
    admin.create_worker("worker0@myteam.example", teams=["MyTeam"], password=PASSWORD)
    admin.create_task_ui("boxes", template="<crowd-form><p>{{ task.input.taskObject }}</p></crowd-form>")
    for flow in ("review", "photos"):
        admin.create_flow(
            flow,
            team="MyTeam",
            task_ui="boxes",
            title="Check the boxes",
            description="Fix the boxes the detector drew",
            output_path="s3://review-bucket/a2i-results",
        )
    seed_history(live)
    admin.create_endpoint_config("detector-config", variants=[VariantSpec(model="nanodet-g-416-coco")])
    admin.create_endpoint("detector", config="detector-config", routing=RoutingRule(flow="review", threshold=0.5))
    run_once(live.services)
    routed = admin.invoke_endpoint("detector", ASTRONAUT)
    assert routed.human_loop is not None
    name = routed.human_loop.name
    admin.invoke_endpoint("detector", ASTRONAUT, threshold=0.0)  # not routed
    task_input = admin.describe_loop(name).input
    human = [
        *task_input["initialValue"],
        {"label": "rocket", "left": 400, "top": 8, "width": 70, "height": 242},
    ]
    worker = WorkerClient.sign_in(live.url, "worker0@myteam.example", PASSWORD)
    task = worker.next_task("review")
    assert task is not None and task.input == task_input
    live.clock.advance(42)
    worker.submit(task.task_id, {"annotatedResult": {"boundingBoxes": human, "inputImageProperties": {}}})
    worker.close()

    admin_sign_in(page, live)
    page.goto(live.url + "/admin/overview")
    assert page.inner_text("[data-stat=routed]") == "50.0 %"
    assert page.inner_text("[data-stat=active-workers]") == "1"
    assert page.locator("svg.chart g.bar").count() == 14
    assert page.locator("svg.chart rect.Completed").count() >= 13
    DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(DOCS_IMAGES / "admin-overview.png"))

    page.goto(live.url + "/admin/loops")
    page.select_option("select[name=status]", "Completed")
    page.click("button:has-text('Filter')")
    page.wait_for_url("**/admin/loops?*status=Completed*")
    first = page.locator("table.loops tbody tr").first
    assert name in first.inner_text() and "Completed" in first.inner_text()
    assert page.locator("table.loops tbody tr").count() == 50 and page.locator("a[rel=next]").count() == 1
    page.goto(live.url + "/admin/loops")
    page.screenshot(path=str(DOCS_IMAGES / "admin-loops.png"))

    page.click(f"a:has-text('{name}')")
    page.wait_for_selector("figure.boxes-figure svg")
    drawn = [p for p in task_input["predictions"] if p["score"] >= DEFAULT_MIN_SCORE]
    assert len(drawn) >= 2 and page.locator("g[data-kind=model] rect").count() == len(drawn)
    assert page.locator("g[data-kind=human] rect").count() == len(human)
    assert "worker0@myteam.example" in page.inner_text("table.answers")
    assert "42.0 s" in page.inner_text("table.answers")
    shown = json.loads(page.inner_text("pre.input"))
    assert shown == task_input
    page.screenshot(path=str(DOCS_IMAGES / "admin-loop.png"), full_page=True)
    href = page.get_attribute("a.output-link", "href")
    assert href is not None
    output = page.context.request.get(live.url + href if href.startswith("/") else href).json()
    assert output["humanLoopName"] == name and output["humanAnswers"][0]["answerContent"]["annotatedResult"]
    assert page.errors == []  # type: ignore[attr-defined]


def test_stop_and_delete_ask_first(live: Live, page: Page):
    admin = live.admin
    admin.create_team("MyTeam", description="Reviewers")
    admin.create_task_ui("boxes", template="<crowd-form><p>{{ task.input.text }}</p></crowd-form>")
    admin.create_flow(
        "review", team="MyTeam", task_ui="boxes", title="t", description="d", output_path="s3://review-bucket/out"
    )
    admin.start_loop("to-stop", flow="review", input={"text": "hello"})
    admin_sign_in(page, live)
    page.goto(live.url + "/admin/loops/to-stop")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("button:has-text('Stop')")
    assert admin.describe_loop("to-stop").status == "InProgress"
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button:has-text('Stop')")
    page.wait_for_selector("text=The human loop was stopped.")
    assert admin.describe_loop("to-stop").status == "Stopped"
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button:has-text('Delete')")
    page.wait_for_selector("text=The human loop was deleted.")
    assert admin.list_loops().loops == []
    assert page.errors == []  # type: ignore[attr-defined]


def test_the_loop_image_numbers_every_box_lists_the_labels_beside_it_and_zooms(live: Live, page: Page):
    admin = live.admin
    live.services.store.put("s3://review-bucket/images/astronaut.jpg", ASTRONAUT, content_type="image/jpeg")
    admin.create_team("MyTeam", description="Reviewers")
    admin.create_task_ui("boxes", template="<crowd-form><p>{{ task.input.taskObject }}</p></crowd-form>")
    admin.create_flow(
        "review", team="MyTeam", task_ui="boxes", title="t", description="d", output_path="s3://review-bucket/out"
    )
    # Eight boxes whose corners nearly meet: tags at their corners would cover each other.
    crowded = [
        {"label": f"thing-{i}", "left": 100 + 3 * i, "top": 100 + 2 * i, "width": 200 - 10 * i, "height": 150}
        for i in range(8)
    ]
    task_input = {"taskObject": "s3://review-bucket/images/astronaut.jpg", "initialValue": crowded}
    admin.start_loop("crowded", flow="review", input=task_input)
    admin_sign_in(page, live)
    page.goto(live.url + "/admin/loops/crowded")
    page.wait_for_selector("figure.boxes-figure svg")
    entries = page.locator(".boxes-list li")
    expect(entries).to_have_count(8)
    for i, text in enumerate(entries.all_inner_texts()):
        assert text.split() == [str(i + 1), f"thing-{i}"], text
    # Every box carries its number on the image, and no two numbers overlap.
    tags = page.evaluate(
        """Array.from(document.querySelectorAll('figure.boxes-figure .tag')).map((t) => {
            const r = t.getBoundingClientRect();
            return [r.left, r.top, r.right, r.bottom, t.textContent];
        })"""
    )
    assert sorted(t[4] for t in tags) == sorted(str(i + 1) for i in range(8))
    for i, a in enumerate(tags):
        for b in tags[i + 1 :]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
    # The 512-pixel image fills the height the page allows, and zooms.
    image = page.locator("figure.boxes-figure img")
    fitted = image.bounding_box()
    assert fitted is not None and fitted["height"] >= 0.7 * 800
    page.click(".boxes-tools button:has-text('+')")
    zoomed = image.bounding_box()
    assert zoomed is not None and zoomed["width"] == pytest.approx(fitted["width"] * 1.25, abs=2)
    page.click(".boxes-tools button:has-text('Fit')")
    assert image.bounding_box() == fitted
