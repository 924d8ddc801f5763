"""The shape editors (crowd-bounding-box, crowd-keypoint, crowd-polygon) in Chromium: no
label or shape changes by surprise, undo and redo, the changed-from-the-model indicator,
drafts kept across a reload, the empty-answer question and the searchable label list."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Frame, Page, expect

from tests.browser import Live, live_server, sign_in, stage_point, task_frame
from tests.test_console_browser import WALKTHROUGH, WALKTHROUGH_INPUT, drag, setup, start_working, submit

DATA = Path(__file__).resolve().parent / "data"
BOX = "crowd-bounding-box"
FULL_IMAGE = {"label": "person", "left": 0, "top": 0, "width": 512, "height": 512}
SHAPES = """<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>
<crowd-form>
  <crowd-keypoint name="points" src="{{ task.input.photo | grant_read_access }}" labels="['handle', 'rim']"
    header="Mark the points"></crowd-keypoint>
  <crowd-polygon name="shapes" src="{{ task.input.photo | grant_read_access }}" labels="['cup', 'saucer']"
    header="Outline the objects"></crowd-polygon>
</crowd-form>
"""
PHOTO = {"photo": "s3://review-bucket/images/astronaut.jpg"}


@pytest.fixture
def live(tmp_path: Path, sqlite_template: Path) -> Iterator[Live]:
    with live_server(tmp_path / "data", sqlite_template=sqlite_template) as live:
        image = (DATA / "astronaut.jpg").read_bytes()
        live.services.store.put("s3://review-bucket/images/astronaut.jpg", image, content_type="image/jpeg")
        yield live


def open_task(live: Live, page: Page, template: str, task_input: dict[str, Any]) -> tuple[str, Frame]:
    (loop,) = setup(live, template, [task_input])
    sign_in(page, live, "worker0@myteam.example")
    frame = start_working(page)
    frame.wait_for_selector(f"{BOX}[data-drawn], crowd-keypoint[data-drawn]")
    return loop, frame


def value(frame: Frame, selector: str = BOX) -> Any:
    return frame.evaluate(f"document.querySelector('{selector}').value")


def boxes(frame: Frame) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = value(frame)["boundingBoxes"]
    return result


def box(label: str, left: int, top: int, width: int, height: int) -> dict[str, Any]:
    return {"height": height, "label": label, "left": left, "top": top, "width": width}


def at(page: Page, frame: Frame, x: float, y: float, selector: str = BOX) -> tuple[float, float]:
    return stage_point(page, frame, selector, x, y)


def selected(frame: Frame, selector: str = BOX) -> int:
    index: int = frame.evaluate(f"document.querySelector('{selector}').selected")
    return index


# -- item 1: nothing changes by surprise ---------------------------------------------------------


def test_pick_draw_pick_draw_gives_two_boxes_with_two_labels(live: Live, page: Page):
    _, frame = open_task(live, page, WALKTHROUGH, {**WALKTHROUGH_INPUT, "initialValue": []})
    frame.click(".lc-label:has-text('flag')")
    drag(page, at(page, frame, 20, 20), at(page, frame, 80, 90))
    assert selected(frame) == -1, "a finished box is let go"
    frame.click(".lc-label:has-text('rocket')")
    drag(page, at(page, frame, 300, 300), at(page, frame, 400, 380))
    assert boxes(frame) == [box("flag", 20, 20, 60, 70), box("rocket", 300, 300, 100, 80)]


def test_a_drag_inside_an_unselected_box_draws_and_a_selected_box_moves(live: Live, page: Page):
    _, frame = open_task(live, page, WALKTHROUGH, {**WALKTHROUGH_INPUT, "initialValue": [FULL_IMAGE]})
    frame.click(".lc-label:has-text('flag')")
    drag(page, at(page, frame, 100, 100), at(page, frame, 200, 180))
    assert boxes(frame) == [box("person", 0, 0, 512, 512), box("flag", 100, 100, 100, 80)]
    # A click selects (the smallest box under the pointer); a drag inside it then moves it.
    page.mouse.click(*at(page, frame, 150, 140))
    assert selected(frame) == 1
    drag(page, at(page, frame, 150, 140), at(page, frame, 170, 150))
    assert boxes(frame)[1] == box("flag", 120, 110, 100, 80)
    # Esc in the middle of a move puts the box back.
    page.mouse.move(*at(page, frame, 150, 140))
    page.mouse.down()
    page.mouse.move(*at(page, frame, 250, 240), steps=4)
    page.keyboard.press("Escape")
    page.mouse.up()
    assert boxes(frame)[1] == box("flag", 120, 110, 100, 80)
    page.mouse.click(*at(page, frame, 150, 140))
    # Picking a label in the list does not relabel the selected box; its own control does.
    frame.click(".lc-label:has-text('rocket')")
    assert boxes(frame)[1]["label"] == "flag"
    frame.select_option(f"{BOX} .lc-relabel select", "person")
    assert boxes(frame)[1]["label"] == "person"
    assert boxes(frame)[0] == box("person", 0, 0, 512, 512)


# -- item 2: undo, redo, changed and reset -------------------------------------------------------


def test_undo_and_redo_restore_exact_states_and_reset_goes_back_to_the_models_boxes(live: Live, page: Page):
    _, frame = open_task(live, page, WALKTHROUGH, WALKTHROUGH_INPUT)
    changed = frame.locator(f"{BOX} .lc-changed")
    expect(changed).to_be_hidden()
    states = [boxes(frame)]
    frame.click(".lc-label:has-text('rocket')")
    drag(page, at(page, frame, 400, 8), at(page, frame, 470, 250))  # draw
    states.append(boxes(frame))
    page.mouse.click(*at(page, frame, 50, 430))  # select the small flag box
    drag(page, at(page, frame, 50, 430), at(page, frame, 60, 440))  # move it
    states.append(boxes(frame))
    page.keyboard.press("Delete")
    states.append(boxes(frame))
    assert len(states[3]) == 3 and states[1] != states[2]
    expect(changed).to_be_visible()

    for expected in (states[2], states[1], states[0]):
        page.keyboard.press("Control+z")
        assert boxes(frame) == expected
    expect(changed).to_be_hidden()
    page.keyboard.press("Control+z")  # nothing more to undo
    assert boxes(frame) == states[0]
    page.keyboard.press("Shift+Control+z")
    assert boxes(frame) == states[1]
    page.keyboard.press("Control+y")
    assert boxes(frame) == states[2]
    frame.click(f"{BOX} .lc-tool:has-text('Undo')")
    assert boxes(frame) == states[1]
    frame.click(f"{BOX} .lc-tool:has-text('Redo')")
    assert boxes(frame) == states[2]
    expect(changed).to_be_visible()

    frame.click(f'{BOX} button:has-text("Reset to the model\'s boxes")')
    assert boxes(frame) == states[0]
    expect(changed).to_be_hidden()
    page.keyboard.press("Control+z")  # a reset is undone like any edit
    assert boxes(frame) == states[2]


# -- item 3: drafts --------------------------------------------------------------------------------

# The frame posts its draft to the console page, which keeps it: the entry appears a moment
# after the edit, so wait for it rather than read at once. A function, not an expression: Playwright
# polls an expression with the page's eval, which the console's CSP refuses.
DRAFT_SAVED = "() => Object.keys(localStorage).length === 1"


def test_a_reload_keeps_the_draft_and_a_submit_clears_it(live: Live, page: Page):
    loop, frame = open_task(live, page, WALKTHROUGH, WALKTHROUGH_INPUT)
    task_id = page.url.rsplit("/", 1)[1]
    frame.click(".lc-label:has-text('rocket')")
    drag(page, at(page, frame, 400, 8), at(page, frame, 470, 250))
    edited = boxes(frame)
    page.wait_for_function(DRAFT_SAVED)
    keys = page.evaluate("Object.keys(localStorage)")
    assert len(keys) == 1 and keys[0].endswith(f".{task_id}")

    page.reload()
    frame = task_frame(page)
    frame.wait_for_selector(f"{BOX}[data-drawn]")
    expect(frame.locator(f"{BOX} .lc-status")).to_have_text("4 boxes")
    assert boxes(frame) == edited
    page.mouse.click(*at(page, frame, 500, 500))  # the keyboard's focus, in the frame
    page.keyboard.press("Control+z")  # the model's boxes are one undo away
    assert boxes(frame) == [dict(sorted(b.items())) for b in WALKTHROUGH_INPUT["initialValue"]]
    page.keyboard.press("Control+y")

    submit(page)
    assert page.evaluate("Object.keys(localStorage)") == []
    assert live.output(loop)["humanAnswers"][0]["answerContent"]["annotatedResult"]["boundingBoxes"] == edited


def test_release_and_sign_out_clear_the_draft(live: Live, page: Page):
    setup(live, WALKTHROUGH, [WALKTHROUGH_INPUT])
    sign_in(page, live, "worker0@myteam.example")
    for leave in ("button:has-text('Release')", "button:has-text('Sign out')"):
        frame = start_working(page)
        frame.wait_for_selector(f"{BOX}[data-drawn]")
        drag(page, at(page, frame, 400, 8), at(page, frame, 470, 250))
        page.wait_for_function(DRAFT_SAVED)
        with page.expect_navigation():
            page.click(leave)
        assert page.evaluate("Object.keys(localStorage)") == []


# -- item 6: an empty answer is asked about ------------------------------------------------------


def test_an_empty_answer_asks_before_it_is_submitted(live: Live, page: Page):
    loop, frame = open_task(live, page, WALKTHROUGH, {**WALKTHROUGH_INPUT, "initialValue": [FULL_IMAGE]})
    page.mouse.click(*at(page, frame, 256, 256))
    page.keyboard.press("Delete")
    page.click("#submit-button")
    question = frame.locator("dialog[open]")
    expect(question).to_contain_text("No boxes: submit anyway?")
    question.locator("button:has-text('Keep editing')").click()
    expect(question).to_have_count(0)
    assert re.search(r"/worker/tasks/\d+$", page.url)
    page.click("#submit-button")
    with page.expect_navigation():
        frame.click("dialog[open] button:has-text('Submit anyway')")
    assert live.output(loop)["humanAnswers"][0]["answerContent"]["annotatedResult"]["boundingBoxes"] == []


# -- item 4: long label lists --------------------------------------------------------------------


def test_a_long_label_list_is_searchable_and_number_keys_pick_the_first_ten(live: Live, page: Page):
    labels = [f"class-{i:02d}" for i in range(1, 13)]
    _, frame = open_task(live, page, WALKTHROUGH, {**WALKTHROUGH_INPUT, "labels": labels, "initialValue": []})
    frame.fill(f"{BOX} .lc-label-search", "class-1")
    expect(frame.locator(f"{BOX} .lc-label:visible")).to_have_count(3)
    expect(frame.locator(f"{BOX} .lc-label:visible")).to_contain_text(["class-10", "class-11", "class-12"])
    frame.fill(f"{BOX} .lc-label-search", "")
    page.mouse.click(*at(page, frame, 5, 5))
    page.keyboard.press("0")
    drag(page, at(page, frame, 20, 20), at(page, frame, 80, 90))
    assert boxes(frame) == [box("class-10", 20, 20, 60, 70)]


# -- keypoints and polygons ----------------------------------------------------------------------


def test_keypoints_and_polygons_follow_the_same_rules(live: Live, page: Page):
    _, frame = open_task(live, page, SHAPES, PHOTO)
    kp = "crowd-keypoint"
    frame.click(f"{kp} .lc-label:has-text('handle')")
    page.mouse.click(*at(page, frame, 100, 100, kp))
    assert selected(frame, kp) == -1
    frame.click(f"{kp} .lc-label:has-text('rim')")
    page.mouse.click(*at(page, frame, 200, 120, kp))
    points = [{"label": "handle", "x": 100, "y": 100}, {"label": "rim", "x": 200, "y": 120}]
    assert value(frame, kp)["keypoints"] == points
    page.mouse.click(*at(page, frame, 100, 100, kp))
    frame.select_option(f"{kp} .lc-relabel select", "rim")
    assert value(frame, kp)["keypoints"][0]["label"] == "rim"
    page.keyboard.press("Control+z")
    assert value(frame, kp)["keypoints"] == points
    page.keyboard.press("Control+z")
    assert value(frame, kp)["keypoints"] == points[:1]

    poly = "crowd-polygon"
    frame.evaluate(f"document.querySelector('{poly}').stage.scrollIntoView({{block: 'center'}})")
    triangle = [(100, 100), (200, 100), (150, 200)]
    frame.click(f"{poly} .lc-label:has-text('cup')")
    for x, y in [*triangle, triangle[0]]:
        page.mouse.click(*at(page, frame, x, y, poly))
    assert selected(frame, poly) == -1
    frame.click(f"{poly} .lc-label:has-text('saucer')")
    for x, y in [(300, 300), (400, 300), (350, 400), (300, 300)]:
        page.mouse.click(*at(page, frame, x, y, poly))
    shapes = value(frame, poly)["polygons"]
    assert [p["label"] for p in shapes] == ["cup", "saucer"]
    # A drag inside a polygon that is not selected moves nothing; once selected, it moves.
    drag(page, at(page, frame, 150, 130, poly), at(page, frame, 160, 140, poly))
    assert value(frame, poly)["polygons"] == shapes
    assert selected(frame, poly) == -1
    page.mouse.click(*at(page, frame, 150, 130, poly))
    assert selected(frame, poly) == 0
    drag(page, at(page, frame, 150, 130, poly), at(page, frame, 160, 140, poly))
    moved = [{"x": x + 10, "y": y + 10} for x, y in triangle]
    assert value(frame, poly)["polygons"][0] == {"label": "cup", "vertices": moved}
    page.keyboard.press("Control+z")
    assert value(frame, poly)["polygons"] == shapes
