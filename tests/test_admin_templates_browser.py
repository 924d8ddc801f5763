"""Task templates and flow definitions in the admin console, in Debian's Chromium: the
editor's live preview (the worker console's renderer and crowd elements in a sandboxed
frame), errors with their line, saving, and creating a flow through the form. SQLite only,
like the other browser tests; the screenshots for the docs are taken here."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Frame, Page, expect

from loopin import task_templates
from tests.browser import Live, admin_sign_in, live_server
from tests.test_console_browser import WALKTHROUGH, WALKTHROUGH_INPUT

ROOT = Path(__file__).resolve().parents[1]
DOCS_IMAGES = ROOT / "docs" / "images"


@pytest.fixture
def live(tmp_path: Path, sqlite_template: Path) -> Iterator[Live]:
    with live_server(tmp_path / "data", sqlite_template=sqlite_template) as live:
        live.services.store.put(
            "s3://review-bucket/images/astronaut.jpg",
            (ROOT / "tests" / "data" / "astronaut.jpg").read_bytes(),
            content_type="image/jpeg",
        )
        yield live


def preview(page: Page) -> Frame:
    frame = page.frame(name="preview")
    assert frame is not None
    return frame


def set_code(page: Page, selector: str, text: str) -> None:
    """Replace a code area's text as typing would (an input event), without typing it all."""
    page.fill(selector, text[:-1])
    page.press(selector, "End")
    page.keyboard.type(text[-1])


def wait_for_boxes(page: Page, count: int, header: str) -> Frame:
    """The preview, once its bounding box has drawn its photo with ``count`` boxes."""
    frame = preview(page)
    frame.wait_for_function(
        """([count, header]) => {
            const el = document.querySelector('crowd-bounding-box[data-image-drawn]');
            return !!el && el.getAttribute('header') === header && el.naturalWidth === 512
                && el.value.boundingBoxes.length === count;
        }""",
        arg=[count, header],
        timeout=10_000,
    )
    return frame


def test_template_editor_previews_reports_errors_and_saves_then_a_flow_is_created(live: Live, page: Page) -> None:
    admin_sign_in(page, live)
    page.goto(live.url + "/admin/templates/new")
    # The starter template against the sample input: the bundled photo with two boxes.
    wait_for_boxes(page, 2, "Draw bounding boxes around all the objects in this image")

    # Typing in the template and the sample input updates the preview.
    set_code(page, "#template-content", WALKTHROUGH.replace("all the objects", "every object"))
    set_code(page, "#sample-input", json.dumps(WALKTHROUGH_INPUT, indent=2))
    frame = wait_for_boxes(page, 3, "Draw bounding boxes around every object in this image")
    src = frame.evaluate("document.querySelector('crowd-bounding-box').getAttribute('src')")
    assert "/store/review-bucket/images/astronaut.jpg?expires=" in src

    # A render error shows beside the editor with its line marked; the preview stays.
    broken = WALKTHROUGH.replace("{{ task.input.labels }}", "{{ task.input.labels | no_such_filter }}")
    line = broken.split("\n").index('    labels="{{ task.input.labels | no_such_filter }}"') + 1
    set_code(page, "#template-content", broken)
    expect(page.locator("#problem-text")).to_contain_text(f"(line {line}): unknown filter 'no_such_filter'")
    expect(page.locator("[data-for=template-content] .gutter span.bad")).to_have_text(str(line))
    page.click("#problem-line")
    selected = page.evaluate(
        "(() => { const t = document.getElementById('template-content');"
        " return t.value.slice(t.selectionStart, t.selectionEnd); })()"
    )
    assert "no_such_filter" in selected
    # Invalid sample JSON: its line, in the sample's gutter.
    set_code(page, "#template-content", WALKTHROUGH)
    set_code(page, "#sample-input", '{\n  "taskObject": "s3://loopin-sample/astronaut.jpg",\n}')
    expect(page.locator("#problem-text")).to_contain_text("not valid JSON (line 3")
    expect(page.locator("[data-for=sample-input] .gutter span.bad")).to_have_text("3")
    set_code(page, "#sample-input", json.dumps(WALKTHROUGH_INPUT, indent=2))
    expect(page.locator("#problem")).to_be_hidden()
    wait_for_boxes(page, 3, "Draw bounding boxes around all the objects in this image")

    page.evaluate(
        "document.activeElement.blur(); document.querySelectorAll('textarea').forEach(t => t.scrollTop = 0);"
        " window.scrollTo(0, 0)"
    )
    DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(DOCS_IMAGES / "admin-template-editor.png"))

    # The preview's task answers as it would in the worker console.
    page.click("#try-submit")
    expect(page.locator("#answer-json")).to_contain_text('"boundingBoxes"')

    page.fill("input[name=name]", "bounding-boxes")
    page.click("button:has-text('Save template')")
    page.wait_for_url("**/admin/templates/bounding-boxes?notice=created")
    expect(page.locator(".notice")).to_have_text("The template was saved.")
    with live.services.db.read() as s:
        assert task_templates.get_task_ui(s, "bounding-boxes").content == WALKTHROUGH

    # A flow through the form: a bad field first, then the fix.
    live.admin.create_team("reviewers", description="Reviewers")
    page.goto(live.url + "/admin/flows/new")
    page.fill("input[name=name]", "box-review")
    page.select_option("select[name=team]", "reviewers")
    page.select_option("select[name=task_ui]", "bounding-boxes")
    page.fill("input[name=output_path]", "s3://review-bucket/a2i-results")
    page.fill("input[name=title]", "Check the boxes")
    page.fill("input[name=description]", "Fix the boxes the detector drew around objects")
    page.fill("input[name=keywords]", "boxes, photos")
    page.fill("input[name=time_limit_s]", "5")
    page.click("button:has-text('Create flow')")
    expect(page.locator("#time_limit_s-error")).to_have_text("Task time limit must be a whole number from 30 to 28800.")
    page.screenshot(path=str(DOCS_IMAGES / "admin-flow-new.png"))
    page.fill("input[name=time_limit_s]", "600")
    page.click("button:has-text('Create flow')")
    page.wait_for_url("**/admin/flows/box-review?notice=created")
    expect(page.locator("a:has-text('Confidence threshold')")).to_have_attribute(
        "href", "/admin/flows/box-review/threshold"
    )
    live.admin.start_loop("loop-1", flow="box-review", input=WALKTHROUGH_INPUT)
    page.goto(live.url + "/admin/flows/box-review")
    page.screenshot(path=str(DOCS_IMAGES / "admin-flow.png"))
    flow = live.admin.get_flow("box-review")
    assert (flow.team, flow.task_ui, flow.time_limit_seconds) == ("reviewers", "bounding-boxes", 600)

    page.goto(live.url + "/admin/flows")
    expect(page.locator("table.data tbody tr")).to_have_count(1)
    page.screenshot(path=str(DOCS_IMAGES / "admin-flows.png"))
    page.goto(live.url + "/admin/templates")
    expect(page.locator("table.data tbody tr td >> nth=2")).to_have_text("box-review")
    page.screenshot(path=str(DOCS_IMAGES / "admin-templates.png"))


# What to do in each starting template's preview before "Show answer", and what the answer holds.
GALLERY_CASES: dict[str, tuple[str | None, dict[str, object]]] = {
    "bounding-boxes": (None, {"boxes": {"boundingBoxes": 1}}),
    "image-classification": ("Person", {"category": {"label": "Person"}}),
    "keypoints": (None, {"keypoints": {"keypoints": 0}}),
    "polygons": (None, {"outlines": {"polygons": 0}}),
    "segmentation": (None, {"segmentation": {"labelMappings": {}}}),
    "text-classification": ("Positive", {"sentiment": {"label": "Positive"}}),
    "entities": (None, {"entities": {"entities": 1}}),
    "document-review": (None, {"invoiceNumber": "INV-0042", "total": "128.50", "problems": {"unreadable": False}}),
    "moderation": ("None of these", {"moderation": {"labels": []}}),
    "textract-forms": (None, {"AWS/Textract/AnalyzeDocument/Forms/V1": {"blocks": 2}}),
    "rekognition-moderation": (
        "Suggestive",
        {
            "AWS/Rekognition/DetectModerationLabels/Image/V3": {
                "moderationLabels": [{"name": "Suggestive", "parentName": ""}]
            }
        },
    ),
    "audio-classification": ("Music", {"audio": {"label": "Music"}}),
    "video-classification": ("Walking", {"video": {"label": "Walking"}}),
}


def _holds(value: object, expected: object) -> bool:
    """``value`` has what ``expected`` says: equal values, the keys of a dict, an int for a list's length."""
    if isinstance(expected, dict):
        return isinstance(value, dict) and all(k in value and _holds(value[k], v) for k, v in expected.items())
    if isinstance(expected, int) and not isinstance(expected, bool) and isinstance(value, list):
        return len(value) == expected
    return value == expected


def test_every_starting_template_of_the_gallery_previews_and_submits(live: Live, page: Page) -> None:
    from loopin.web.consoles.admin import gallery

    assert sorted(GALLERY_CASES) == sorted(s.key for s in gallery.GALLERY)
    admin_sign_in(page, live)
    page.goto(live.url + "/admin/templates/new")
    links = page.locator(".gallery a").all_inner_texts()
    assert links[0] == "Walkthrough" and len(links) == len(gallery.GALLERY) + 1
    for starter in gallery.GALLERY:
        choice, expected = GALLERY_CASES[starter.key]
        page.goto(f"{live.url}/admin/templates/new?start={starter.key}")
        assert page.input_value("#template-content") == starter.content
        frame = preview(page)
        frame.wait_for_function(
            "() => !!document.querySelector('crowd-form.lc-built')"
            " && Array.from(document.querySelectorAll('.lc-built'))"
            ".every((el) => !('naturalWidth' in el) || el.naturalWidth > 0)",
            timeout=10_000,
        )
        if choice:
            frame.click(f".lc-choice-button:has-text('{choice}')")
        page.click("#try-submit")
        if starter.key in ("keypoints", "polygons"):  # an empty shape answer is asked about first
            frame.click("dialog[open] button:has-text('Submit anyway')")
        expect(page.locator("#answer")).to_be_visible()
        answer = json.loads(page.inner_text("#answer-json"))
        assert _holds(answer, expected), (starter.key, answer)
        assert page.locator("#warnings").is_hidden(), starter.key
    assert page.errors == []  # type: ignore[attr-defined]
