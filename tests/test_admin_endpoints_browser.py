"""The admin console's models and endpoints pages and the threshold picture in Debian's
Chromium, driven by Playwright against a live server (SQLite only, as the other browser
tests), and the screenshots of the docs."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from loopin.client import WorkerClient
from loopin.endpoints import deploy_pending
from loopin.inference import Detector
from loopin.schemas import RoutingRule, VariantSpec
from tests.browser import Live, admin_sign_in, live_server
from tests.helpers import PASSWORD, setup_flow

ROOT = Path(__file__).resolve().parents[1]
COFFEE = ROOT / "tests" / "data" / "coffee.jpg"
DOCS_IMAGES = ROOT / "docs" / "images"
BUILTIN = "nanodet-g-416-coco"


def graded_box(image: Image.Image) -> list[dict[str, Any]]:
    """A model for the threshold picture: one "part" box around the bright red pixels,
    scoring the green level of the image's top-left pixel (0-255 -> 0-1)."""
    pixels = np.asarray(image)
    ys, xs = np.nonzero(pixels[..., 0] > 200)
    score = round(float(pixels[0, 0, 1]) / 255, 3)
    return [
        {
            "label": "part",
            "score": score,
            "left": int(xs.min()),
            "top": int(ys.min()),
            "right": int(xs.max()) + 1,
            "bottom": int(ys.max()) + 1,
        }
    ]


@pytest.fixture
def live(tmp_path: Path, sqlite_template: Path) -> Iterator[Live]:
    with live_server(tmp_path / "data", sqlite_template=sqlite_template) as live:
        yield live


def test_deploy_the_builtin_model_and_try_it(live: Live, page: Page) -> None:
    setup_flow(live.admin, workers=1)
    admin_sign_in(page, live)
    page.goto(live.url + "/admin/endpoints")
    expect(page.locator("#catalogue")).to_contain_text(BUILTIN)
    page.locator("#catalogue tr", has_text=BUILTIN).get_by_role("link", name="Deploy").click()
    page.fill("input[name=name]", "detector")
    page.select_option("select[name=flow]", "review")
    page.fill("input[name=threshold]", "0.5")
    page.fill("input[name=classes]", "cup")
    page.fill("input[name=min_score]", "0.2")  # the coffee photo's cups score 0.27 and 0.25
    page.screenshot(path=str(DOCS_IMAGES / "admin-model.png"))
    page.get_by_role("button", name="Deploy").click()
    expect(page.locator("#status")).to_have_text("Creating")
    expect(page.locator("p.notice[role=status]")).to_have_text(
        "The endpoint is Creating: its model loads in the background."
    )
    deploy_pending(live.services)
    expect(page.locator("#status")).to_have_text("InService", timeout=10_000)  # the page reloads by itself
    expect(page.locator("p.notice[role=status]")).to_have_text("The endpoint is InService: it answers invocations.")

    page.set_input_files("#try-file", str(COFFEE))
    page.get_by_role("button", name="Detect").click()
    expect(page.locator("#try-summary")).to_contain_text("this image would go to people (flow review)")
    expected = [d for d in Detector.builtin(BUILTIN).detect(COFFEE.read_bytes()).detections if d.score >= 0.3]
    expect(page.locator("#try-figure svg rect")).to_have_count(len(expected))
    assert expected and page.locator("#try-figure svg text").first.text_content() == f"{expected[0].label} " + (
        f"{expected[0].score:.2f}"
    )
    rows = page.locator("#try-detections tbody tr")
    assert rows.count() >= len(expected)
    assert "cup" in (page.locator("td.doubtful").first.locator("..").text_content() or "")
    page.fill("#try-min-score", "0.05")
    assert page.locator("#try-figure svg rect").count() == rows.count()
    page.fill("#try-min-score", "0.3")
    assert live.admin.list_loops().loops == []  # the try asked nobody
    page.evaluate("window.scrollTo(0, document.getElementById('try').offsetTop - 16)")
    page.screenshot(path=str(DOCS_IMAGES / "admin-endpoint.png"))

    page.check("#try-route")  # a real invocation: the link leads to the loop it started
    page.get_by_role("button", name="Detect").click()
    expect(page.locator("#try-summary")).to_contain_text("Human loop started: ")
    loop = live.admin.list_loops().loops[0].name
    expect(page.locator("#try-loop")).to_have_attribute("href", f"/admin/loops/{loop}")
    page.click("#try-loop")
    page.wait_for_url(f"**/admin/loops/{loop}")
    page.go_back()
    page.uncheck("#try-route")

    page.set_input_files("#try-file", {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not an image"})
    page.get_by_role("button", name="Detect").click()
    expect(page.locator("#try-error")).to_contain_text("not")
    expect(page.locator("#try-result")).to_be_hidden()

    page.goto(live.url + "/admin/endpoints")
    expect(page.locator("#endpoints .badge")).to_have_text("InService")
    page.screenshot(path=str(DOCS_IMAGES / "admin-endpoints.png"))

    page.goto(live.url + "/admin/endpoints/detector")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete endpoint").click()
    expect(page.locator(".notice")).to_have_text("The endpoint is deleted.")
    assert live.admin.list_endpoints() == [] and live.admin.list_endpoint_configs() == []


def _part_photo(score: float, shift: int) -> bytes:
    image = np.zeros((120, 160, 3), dtype=np.uint8)
    image[0, 0] = (0, round(score * 255), 0)
    image[30 + shift : 80 + shift, 40:110] = (255, 0, 0)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "PNG")
    return buf.getvalue()


def test_threshold_picture_and_apply(live: Live, page: Page) -> None:
    emails = setup_flow(live.admin, workers=1)
    live.admin.register_model("parts", callable="tests.test_admin_endpoints_browser:graded_box")
    live.admin.create_endpoint_config("parts-config", variants=[VariantSpec(model="parts")])
    rule = RoutingRule(flow="review", threshold=0.99, min_score=0.2)  # the photos score from 0.2
    live.admin.create_endpoint("parts", config="parts-config", routing=rule)
    deploy_pending(live.services)
    # 40 photos scoring 0.2 to 0.98; people correct the box on most low-scoring ones and
    # on a few confident ones.
    corrected = {}
    for i in range(40):
        score = 0.2 + 0.02 * i
        result = live.admin.invoke_endpoint("parts", _part_photo(score, i % 3), content_type="image/png")
        assert result.human_loop
        corrected[result.human_loop.name] = score < 0.45 or (score < 0.7 and i % 3 == 0) or i % 11 == 0
    worker = WorkerClient.sign_in(live.url, emails[0], PASSWORD)
    while (task := worker.next_task()) is not None:
        box = task.input["initialValue"] or [{"label": "part", "left": 40, "top": 30, "width": 70, "height": 50}]
        loop = next(name for name in corrected if live.admin.describe_loop(name).input == task.input)
        if corrected.pop(loop):
            box = [b | {"top": b["top"] + 25} for b in box]
        worker.submit(task.task_id, {"annotatedResult": {"boundingBoxes": box}})
    worker.close()

    admin_sign_in(page, live)
    page.goto(live.url + "/admin/flows/review/threshold")
    expect(page.locator("#threshold-plot")).to_be_visible()
    expect(page.locator("#threshold-plot circle.routed")).to_have_count(22)  # 0.00-1.00 and the current 0.99
    expect(page.locator("#reading")).to_contain_text("At 0.99, 40 of 40 images go to people")
    page.locator("#threshold-plot a").nth(14).click()  # the point at 0.70
    at_70 = next(p for p in live.admin.threshold_curve("review").points if p.threshold == 0.7)
    expect(page.locator("#reading")).to_contain_text(
        f"At 0.70, {at_70.routed} of 40 images go to people and {at_70.missed} of 40 reviewed images"
    )
    page.get_by_role("button", name="Apply").click()
    expect(page.locator(".notice")).to_have_text("The threshold is applied.")
    assert live.admin.describe_endpoint("parts").routing == RoutingRule(flow="review", threshold=0.7, min_score=0.2)
    page.screenshot(path=str(DOCS_IMAGES / "admin-threshold.png"))
