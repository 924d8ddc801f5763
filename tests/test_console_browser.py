"""The worker console in Debian's Chromium, driven by Playwright against a live server.

These tests run on SQLite only: the console's database work is the same as the HTTP tests'
(which run on both databases), and a browser per database would double a slow suite.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import Frame, Page, expect

from loopin.background import run_once
from tests.browser import PASSWORD, Live, live_server, sign_in, stage_point, task_frame

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
DOCS_IMAGES = ROOT / "docs" / "images"

WALKTHROUGH = """<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>
<crowd-form>
  <crowd-bounding-box
    name="annotatedResult"
    src="{{ task.input.taskObject | grant_read_access }}"
    header="Draw bounding boxes around all the objects in this image"
    labels="{{ task.input.labels }}"
    initial-value="{{ task.input.initialValue }}"
  >
    <full-instructions header="Bounding Box Instructions">
      <p>Use the bounding box tool to draw boxes around the requested target of interest:</p>
      <ol>
        <li>Draw a rectangle using your mouse over each instance of the target.</li>
        <li>Make sure the box does not cut into the target; leave a 2 - 3 pixel margin.</li>
        <li>When targets are overlapping, draw a box around each object; include all contiguous parts.</li>
      </ol>
    </full-instructions>
    <short-instructions>
      Draw a box around each object. Fix or delete the boxes the model drew.
    </short-instructions>
  </crowd-bounding-box>
</crowd-form>
"""
WALKTHROUGH_INPUT = {
    "taskObject": "s3://review-bucket/images/astronaut.jpg",
    "labels": ["person", "flag", "rocket"],
    "initialValue": [
        {"label": "person", "left": 130, "top": 20, "width": 290, "height": 492},
        {"label": "flag", "left": 0, "top": 0, "width": 140, "height": 300},
        {"label": "flag", "left": 20, "top": 400, "width": 60, "height": 60},
    ],
}
CLASSIFY = """<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>
<crowd-form>
  <crowd-classifier name="sentiment" categories="['Positive', 'Negative']" header="What sentiment?">
    <classification-target>{{ task.input.text }}</classification-target>
  </crowd-classifier>
</crowd-form>
"""


@pytest.fixture
def live(tmp_path: Path, sqlite_template: Path) -> Iterator[Live]:
    with live_server(tmp_path / "data", sqlite_template=sqlite_template) as live:
        live.services.store.put(
            "s3://review-bucket/images/astronaut.jpg", (DATA / "astronaut.jpg").read_bytes(), content_type="image/jpeg"
        )
        live.services.store.put(
            "s3://review-bucket/images/coffee.jpg", (DATA / "coffee.jpg").read_bytes(), content_type="image/jpeg"
        )
        yield live


def setup(
    live: Live, template: str, inputs: list[dict[str, Any]], *, time_limit: int = 300, team: str = "MyTeam"
) -> list[str]:
    """A team with two workers, the template, a flow and one loop per input; the loop names."""
    admin = live.admin
    admin.create_team(team, description="Reviewers")
    for i in range(2):
        admin.create_worker(f"worker{i}@{team.lower()}.example", teams=[team], password=PASSWORD)
    admin.create_task_ui(f"{team.lower()}-ui", template=template)
    admin.create_flow(
        f"{team.lower()}-review",
        team=team,
        task_ui=f"{team.lower()}-ui",
        title="Check the boxes",
        description="Fix the boxes the detector drew around objects",
        output_path="s3://review-bucket/a2i-results",
        time_limit_seconds=time_limit,
    )
    names = [f"{team.lower()}-loop-{i}" for i in range(len(inputs))]
    for name, task_input in zip(names, inputs, strict=True):
        admin.start_loop(name, flow=f"{team.lower()}-review", input=task_input)
    return names


def start_working(page: Page) -> Frame:
    page.click("button:has-text('Start working'), button:has-text('Continue working')")
    page.wait_for_url(re.compile(r".*/worker/tasks/\d+$"))
    return task_frame(page)


def submit(page: Page) -> None:
    with page.expect_navigation():
        page.click("#submit-button")


def drag(page: Page, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=6)
    page.mouse.up()


# -- the walkthrough -------------------------------------------------------------------------------


def test_walkthrough_the_worker_fixes_the_models_boxes_and_output_has_natural_pixels(live: Live, page: Page):
    (loop,) = setup(live, WALKTHROUGH, [WALKTHROUGH_INPUT])
    sign_in(page, live, "worker0@myteam.example")
    assert page.inner_text(".job .count") == "1 task waiting"
    DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(DOCS_IMAGES / "jobs-page.png"))

    frame = start_working(page)
    box = "crowd-bounding-box"
    frame.wait_for_selector(f"{box}[data-image-drawn]")
    page.screenshot(path=str(DOCS_IMAGES / "task-page.png"))
    shown = frame.evaluate(f"document.querySelector('{box}').value")
    assert shown["boundingBoxes"] == [dict(sorted(b.items())) for b in WALKTHROUGH_INPUT["initialValue"]]
    scale = frame.evaluate(f"document.querySelector('{box}').view.scale")
    assert abs(scale - 1) > 0.05, "the image should be displayed scaled"
    # The model's person box is on the canvas: its left edge has the label's colour.
    edge = frame.evaluate(
        f"""() => {{
            const el = document.querySelector('{box}');
            const ctx = el.canvases[1].getContext('2d');
            const x = Math.round(el.sx(130) * el.dpr), y = Math.round(el.sy(266) * el.dpr);
            return Array.from(ctx.getImageData(x - 1, y, 3, 1).data);
        }}"""
    )
    assert [44, 160, 44] in [edge[i : i + 3] for i in range(0, 12, 4)]  # #2ca02c

    # Add the box the model missed, with the rocket label.
    frame.click(".lc-label:has-text('rocket')")
    drag(page, stage_point(page, frame, box, 400, 8), stage_point(page, frame, box, 470, 250))
    # Select the first flag box, then move it by (12, 8) image pixels.
    page.mouse.click(*stage_point(page, frame, box, 70, 150))
    drag(page, stage_point(page, frame, box, 70, 150), stage_point(page, frame, box, 82, 158))
    # Select the false flag and delete it with the keyboard.
    page.mouse.click(*stage_point(page, frame, box, 50, 430))
    page.keyboard.press("Delete")
    expect(frame.locator(".lc-status")).to_have_text("3 boxes")

    submit(page)
    assert page.url.endswith("/worker/jobs?notice=done")
    answer = live.output(loop)["humanAnswers"][0]["answerContent"]
    assert answer == {
        "annotatedResult": {
            "boundingBoxes": [
                {"height": 492, "label": "person", "left": 130, "top": 20, "width": 290},
                {"height": 300, "label": "flag", "left": 12, "top": 8, "width": 140},
                {"height": 242, "label": "rocket", "left": 400, "top": 8, "width": 70},
            ],
            "inputImageProperties": {"height": 512, "width": 512},
            "initialValueModified": True,
        }
    }
    assert page.errors == []  # type: ignore[attr-defined]


def test_resize_relabel_zoom_and_keyboard_shortcuts(live: Live, page: Page):
    (loop,) = setup(live, WALKTHROUGH, [WALKTHROUGH_INPUT])
    sign_in(page, live, "worker0@myteam.example")
    frame = start_working(page)
    box = "crowd-bounding-box"
    frame.wait_for_selector(f"{box}[data-drawn]")
    # Zoom in with the wheel, then fit again: the boxes keep their image coordinates.
    page.mouse.move(*stage_point(page, frame, box, 256, 256))
    page.mouse.wheel(0, -400)
    assert frame.evaluate(f"document.querySelector('{box}').view.scale") > 1.2
    frame.click(".lc-tool:has-text('Fit')")
    # Select the first flag box, drag its south-east handle by (-20, -12), relabel it.
    page.mouse.click(*stage_point(page, frame, box, 70, 150))
    drag(page, stage_point(page, frame, box, 140, 300), stage_point(page, frame, box, 120, 288))
    frame.select_option(f"{box} .lc-relabel select", "rocket")
    # Nudge it right by 10 with Shift+Arrow, then 1 down; Escape lets go.
    page.keyboard.press("Shift+ArrowRight")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Escape")
    value = frame.evaluate(f"document.querySelector('{box}').value")
    assert value["boundingBoxes"][1] == {"height": 288, "label": "rocket", "left": 10, "top": 1, "width": 120}
    submit(page)
    assert live.output(loop)["humanAnswers"][0]["answerContent"]["annotatedResult"]["initialValueModified"] is True


def test_labels_can_be_replaced_through_the_labels_property(live: Live, page: Page):
    template = WALKTHROUGH.replace(
        "</crowd-form>",
        "</crowd-form><script>document.addEventListener('all-crowd-elements-ready', function () {"
        " document.querySelector('crowd-bounding-box').labels = ['car', 'bicycle']; });</script>",
    )
    setup(live, template, [{**WALKTHROUGH_INPUT, "initialValue": []}])
    sign_in(page, live, "worker0@myteam.example")
    frame = start_working(page)
    assert frame.locator(".lc-label").all_inner_texts() == ["1\ncar", "2\nbicycle"]
    frame.wait_for_selector("crowd-bounding-box[data-drawn]")
    page.mouse.click(*stage_point(page, frame, "crowd-bounding-box", 100, 100))
    page.keyboard.press("2")  # the label for the next box
    drag(
        page,
        stage_point(page, frame, "crowd-bounding-box", 10, 10),
        stage_point(page, frame, "crowd-bounding-box", 60, 60),
    )
    value = frame.evaluate("document.querySelector('crowd-bounding-box').value")
    assert value["boundingBoxes"] == [{"height": 50, "label": "bicycle", "left": 10, "top": 10, "width": 50}]
    assert value["initialValueModified"] is True


# -- every other element ---------------------------------------------------------------------------

ALL_ELEMENTS = """<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>
<crowd-form>
  <crowd-alert type="info">Answer every question, then send your answers.</crowd-alert>
  <crowd-instructions link-text="View instructions" link-type="button">
    <short-summary><p>Look at the photo and the sentence.</p></short-summary>
    <detailed-instructions><p>Every question has a short help text.</p></detailed-instructions>
    <positive-example><p>A tight polygon.</p></positive-example>
    <negative-example><p>A loose polygon.</p></negative-example>
  </crowd-instructions>
  <crowd-short-instructions>Work from top to bottom.</crowd-short-instructions>
  <crowd-full-instructions header="All the rules"><p>Be precise.</p></crowd-full-instructions>

  <crowd-classifier name="sentiment" categories="['Positive', 'Negative', 'Neutral']" header="What sentiment?">
    <classification-target>{{ task.input.text }}</classification-target>
    <full-instructions header="Sentiment"><p>Positive, negative or neutral.</p></full-instructions>
    <short-instructions>Pick one.</short-instructions>
  </crowd-classifier>
  <crowd-classifier-multi-select name="topics" categories="['Music', 'Sports', 'News']" header="Which topics?"
    exclusion-category="{ text: 'None of the above' }">
    <classification-target>{{ task.input.text }}</classification-target>
  </crowd-classifier-multi-select>
  <crowd-image-classifier name="drink" src="{{ task.input.photo | grant_read_access }}"
    categories="['Coffee', 'Tea']" header="Which drink?">
    <worker-comment header="Comment" link-text="Add a comment" placeholder="Why?"></worker-comment>
  </crowd-image-classifier>
  <crowd-image-classifier-multi-select name="things" src="{{ task.input.photo | grant_read_access }}"
    categories="['Cup', 'Spoon']" header="What do you see?" exclusion-category="{ text: 'Nothing' }">
  </crowd-image-classifier-multi-select>

  <crowd-input name="title" label="Title" required></crowd-input>
  <crowd-input name="unused" label="Leave this empty"></crowd-input>
  <crowd-text-area name="notes" label="Notes" char-counter max-length="200"></crowd-text-area>
  <crowd-checkbox name="flags" value="blurry">Blurry</crowd-checkbox>
  <crowd-checkbox name="flags" value="dark">Dark</crowd-checkbox>
  <crowd-radio-group>
    <crowd-radio-button name="optionA" value="a">A</crowd-radio-button>
    <crowd-radio-button name="optionB" value="b">B</crowd-radio-button>
  </crowd-radio-group>
  <crowd-slider name="quality" min="1" max="5" value="3" pin editable></crowd-slider>
  <input type="text" name="plain" value="plain text">

  <crowd-keypoint name="points" src="{{ task.input.photo | grant_read_access }}" labels="['handle', 'rim']"
    header="Mark the handle" initial-value="[{label: 'rim', x: 10, y: 20}]"></crowd-keypoint>
  <crowd-polygon name="shapes" src="{{ task.input.photo | grant_read_access }}" labels="['cup']"
    header="Outline the cup"></crowd-polygon>
  <crowd-semantic-segmentation name="paint" src="{{ task.input.photo | grant_read_access }}"
    labels="['cup', 'table']" header="Paint the cup"></crowd-semantic-segmentation>
  <crowd-instance-segmentation name="objects" src="{{ task.input.photo | grant_read_access }}"
    labels="['cup']" header="Paint each cup"></crowd-instance-segmentation>
  <crowd-entity-annotation name="entities" header="Highlight names and places" text="{{ task.input.text }}"
    labels="[{'label': 'person', 'shortDisplayName': 'per', 'fullDisplayName': 'Person'},
             {'label': 'place', 'shortDisplayName': 'pla', 'fullDisplayName': 'Place'}]">
  </crowd-entity-annotation>

  <crowd-button form-action="submit" variant="primary">Send my answers</crowd-button>
</crowd-form>
"""
ALL_INPUT = {"photo": "s3://review-bucket/images/coffee.jpg", "text": "🙂 Ada Lovelace visited London in 1842."}


def image_click(page: Page, frame: Frame, selector: str, x: float, y: float) -> None:
    page.mouse.click(*stage_point(page, frame, selector, x, y))


def scroll_to(frame: Frame, selector: str) -> None:
    frame.evaluate(f"document.querySelector('{selector}').stage.scrollIntoView({{block: 'center'}})")
    frame.wait_for_selector(f"{selector}[data-drawn]")


def select_text(frame: Frame, start: int, end: int) -> None:
    """Select UTF-16 units [start, end) of the entity annotation's text."""
    frame.evaluate(
        """([start, end]) => {
            const box = document.querySelector('crowd-entity-annotation .lc-text');
            const walker = document.createTreeWalker(box, NodeFilter.SHOW_TEXT);
            const at = (offset) => {
                let node = walker.currentNode = box;
                while ((node = walker.nextNode())) {
                    if (offset <= node.length) return [node, offset];
                    offset -= node.length;
                }
            };
            window.getSelection().setBaseAndExtent(...at(start), ...at(end));
        }""",
        [start, end],
    )


def test_every_other_element_renders_and_submits_its_answer_shape(live: Live, page: Page):
    (loop,) = setup(live, ALL_ELEMENTS, [ALL_INPUT])
    sign_in(page, live, "worker0@myteam.example")
    frame = start_working(page)
    assert frame.locator("crowd-button.lc-auto-submit").count() == 0
    # Nothing is sent while a required answer is missing.
    frame.click("crowd-button:has-text('Send my answers')")
    assert "Choose a category." in frame.inner_text("crowd-classifier")
    assert re.search(r"/worker/tasks/\d+$", page.url)

    frame.click("crowd-classifier .lc-choice-button:has-text('Negative')")
    frame.click("crowd-classifier-multi-select .lc-choice-button:has-text('Music')")
    frame.click("crowd-classifier-multi-select .lc-choice-button:has-text('News')")
    frame.click("crowd-image-classifier .lc-choice-button:has-text('Coffee')")
    frame.click("crowd-image-classifier .lc-linkbutton:has-text('Add a comment')")
    frame.fill("crowd-image-classifier textarea", "It is an espresso")
    frame.click("crowd-image-classifier-multi-select .lc-choice-button:has-text('Cup')")
    frame.click("crowd-image-classifier-multi-select .lc-choice-button:has-text('Nothing')")
    frame.fill("crowd-input[name=title] input", "A cup of coffee")
    frame.fill("crowd-text-area textarea", "line one\nline two")
    assert frame.inner_text("crowd-text-area .lc-counter") == "17 / 200"
    frame.check("crowd-checkbox[value=dark] input")
    frame.click("crowd-radio-button[value=a] input")
    frame.click("crowd-radio-button[value=b] input")
    frame.fill("crowd-slider input[type=number]", "4")
    frame.click("crowd-instructions button:has-text('View instructions')")
    assert frame.is_visible("dialog[open] >> text=A tight polygon.")
    frame.click("dialog[open] .lc-dialog-close")

    scroll_to(frame, "crowd-keypoint")
    frame.click("crowd-keypoint .lc-label:has-text('handle')")
    image_click(page, frame, "crowd-keypoint", 100, 80)

    scroll_to(frame, "crowd-polygon")
    for x, y in [(100, 100), (200, 100), (150, 200), (100, 100)]:
        image_click(page, frame, "crowd-polygon", x, y)

    for selector in ("crowd-semantic-segmentation", "crowd-instance-segmentation"):
        scroll_to(frame, selector)
        drag(page, stage_point(page, frame, selector, 280, 200), stage_point(page, frame, selector, 320, 200))

    frame.evaluate("document.querySelector('crowd-entity-annotation').scrollIntoView()")
    select_text(frame, 3, 15)  # "Ada Lovelace", after the emoji (two UTF-16 units) and a space
    frame.click("crowd-entity-annotation .lc-label:has-text('Person')")
    select_text(frame, 23, 30)  # " London" (the leading space is left out)
    frame.click("crowd-entity-annotation .lc-label:has-text('Place')")

    with page.expect_navigation():
        frame.click("crowd-button:has-text('Send my answers')")
    answer = live.output(loop)["humanAnswers"][0]["answerContent"]

    paint, objects = answer.pop("paint"), answer.pop("objects")
    assert answer == {
        "sentiment": {"label": "Negative"},
        "topics": {"labels": ["Music", "News"]},
        "drink": {"label": "Coffee", "workerComment": "It is an espresso"},
        "things": {"labels": []},
        "title": "A cup of coffee",
        "notes": "line one\nline two",
        "flags": {"blurry": False, "dark": True},
        "optionA": {"a": False},
        "optionB": {"b": True},
        "quality": 4,
        "plain": "plain text",
        "points": {
            "inputImageProperties": {"height": 400, "width": 600},
            "keypoints": [{"label": "rim", "x": 10, "y": 20}, {"label": "handle", "x": 100, "y": 80}],
        },
        "shapes": {
            "inputImageProperties": {"height": 400, "width": 600},
            "polygons": [
                {"label": "cup", "vertices": [{"x": 100, "y": 100}, {"x": 200, "y": 100}, {"x": 150, "y": 200}]}
            ],
        },
        "entities": {
            "entities": [
                {"label": "person", "startOffset": 2, "endOffset": 14},
                {"label": "place", "startOffset": 23, "endOffset": 29},
            ]
        },
    }
    assert paint["inputImageProperties"] == {"height": 400, "width": 600}
    assert paint["labelMappings"] == {"cup": {"color": "#2ca02c"}}
    assert objects["instances"] == [{"color": "#2ca02c", "label": "cup"}]
    for result in (paint, objects):
        mask = Image.open(io.BytesIO(base64.b64decode(result["labeledImage"]["pngImageData"]))).convert("RGB")
        assert mask.size == (600, 400)
        assert mask.getpixel((300, 200)) == (44, 160, 44) and mask.getpixel((20, 20)) == (255, 255, 255)
    assert page.errors == []  # type: ignore[attr-defined]


def test_entity_annotation_without_a_crowd_form_makes_its_own_and_submits(live: Live, page: Page):
    template = """<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>
<crowd-entity-annotation name="crowd-entity-annotation" header="Highlight key phrases"
  labels="[{'label': 'keyPhrase', 'shortDisplayName': 'KP', 'longDisplayName': 'Key Phrase'}]"
  text="{{ task.input.taskObject }}">
  <short-instructions>Highlight the key phrases.</short-instructions>
  <full-instructions header="Key phrase instructions">Short phrases only.</full-instructions>
</crowd-entity-annotation>"""
    (loop,) = setup(live, template, [{"taskObject": "Excellent bag and fast shipping!"}])
    sign_in(page, live, "worker0@myteam.example")
    frame = start_working(page)
    assert frame.locator("crowd-form > crowd-entity-annotation").count() == 1
    select_text(frame, 0, 13)
    frame.click(".lc-label:has-text('Key Phrase')")
    # The form made its own Submit button, hidden here: the console's is the one to use.
    expect(frame.locator("crowd-button.lc-auto-submit")).to_be_hidden()
    with page.expect_navigation():
        page.click("#submit-button")
    assert live.output(loop)["humanAnswers"][0]["answerContent"] == {
        "crowd-entity-annotation": {"entities": [{"label": "keyPhrase", "startOffset": 0, "endOffset": 13}]}
    }


def test_attribute_json_is_read_leniently(live: Live, page: Page):
    setup(live, CLASSIFY, [{"text": "x"}])
    sign_in(page, live, "worker0@myteam.example")
    frame = start_working(page)
    cases = {
        "['Cat', 'Dog',]": ["Cat", "Dog"],
        "{ name: 'x', parentName: \"y\", }": {"name": "x", "parentName": "y"},
        "[{label: 'a', x: -1.5e1, y: +2, z: 0x10}, /* note */ null, true, 'it\\'s']": [
            {"label": "a", "x": -15, "y": 2, "z": 16},
            None,
            True,
            "it's",
        ],
    }
    for text, expected in cases.items():
        assert frame.evaluate("(t) => LoopinCrowd.parseLenient(t)", text) == expected, text
    # A key named __proto__ stays a plain key; the object's prototype is untouched.
    proto = frame.evaluate(
        "() => { const o = LoopinCrowd.parseLenient('{__proto__: {x: 1}}'); "
        "return [Object.keys(o), Object.getPrototypeOf(o) === Object.prototype, o.x === undefined]; }"
    )
    assert proto == [["__proto__"], True, True]
    for broken in ("[1,", "{a 1}", "[1] x", "'open"):
        message = frame.evaluate(
            "(t) => { try { LoopinCrowd.parseLenient(t); } catch (e) { return e.message; } }", broken
        )
        assert message and "position" in message, broken


# -- flows -------------------------------------------------------------------------------------------


def test_release_decline_next_task_and_lease_expiry_in_the_browser(live: Live, page: Page):
    names = setup(live, CLASSIFY, [{"text": f"Text number {i}"} for i in range(3)], time_limit=120)
    sign_in(page, live, "worker0@myteam.example")
    assert page.inner_text(".job .count") == "3 tasks waiting"
    start_working(page)
    minutes, seconds = page.inner_text("#time-left").split(":")
    assert 100 <= int(minutes) * 60 + int(seconds) <= 120
    page.click("button:has-text('Release')")
    page.wait_for_url("**/worker/jobs?notice=released")
    assert "It went back to the queue" in page.inner_text(".notice")

    frame = start_working(page)
    declined = frame.inner_text("classification-target")
    page.click("button:has-text('Decline')")
    page.wait_for_url("**/worker/jobs?notice=declined")
    assert page.inner_text(".job .count") == "2 tasks waiting"

    frame = start_working(page)
    first_url = page.url
    assert frame.inner_text("classification-target") != declined
    frame.click(".lc-choice-button:has-text('Positive')")
    submit(page)
    assert re.search(r"/worker/tasks/\d+$", page.url) and page.url != first_url, "straight to the next task"

    frame = task_frame(page)
    frame.click(".lc-choice-button:has-text('Negative')")
    live.clock.advance(121)
    submit(page)
    assert "The time limit for this task has passed" in page.inner_text("main")
    statuses = sorted(live.admin.describe_loop(name).status for name in names)
    assert statuses == ["Completed", "InProgress", "InProgress"]


def test_another_teams_worker_cannot_open_the_task(live: Live, page: Page):
    setup(live, CLASSIFY, [{"text": "Secret text"}])
    setup(live, CLASSIFY, [], team="Other")
    sign_in(page, live, "worker0@myteam.example")
    start_working(page)
    task_url = page.url
    page.click("button:has-text('Sign out')")
    page.wait_for_url("**/worker/sign-in?notice=signed-out")
    sign_in(page, live, "worker0@other.example")
    assert page.inner_text(".job .count") == "No tasks waiting"
    page.goto(task_url)
    assert "This task is not yours any more" in page.inner_text("main")
    page.goto(task_url + "/frame")
    assert "Secret text" not in page.content()


def test_an_escalated_task_reaches_the_second_teams_worker_only_during_the_escalation(live: Live, page: Page):
    (name,) = setup(live, CLASSIFY, [{"text": "Urgent text"}], time_limit=120)
    admin = live.admin
    admin.create_team("Experts", description="Second opinion")
    admin.create_worker("expert@experts.example", teams=["Experts"], password=PASSWORD)
    admin.update_flow("myteam-review", deadline_seconds=300, escalation_team="Experts", escalation_seconds=600)
    admin.start_loop("escalating", flow="myteam-review", input={"text": "Escalated text"})
    sign_in(page, live, "expert@experts.example")
    assert "No jobs yet" in page.inner_text("main")
    live.clock.advance(300)
    run_once(live.services)  # escalates "escalating"; the loop started before the deadline was set has none
    page.reload()
    assert page.inner_text(".job .count") == "1 task waiting"
    assert "Escalated to your team" in page.inner_text(".job")
    frame = start_working(page)
    assert frame.inner_text("classification-target") == "Escalated text"
    frame.click(".lc-choice-button:has-text('Positive')")
    submit(page)
    page.wait_for_url("**/worker/jobs?notice=done")
    assert "No jobs yet" in page.inner_text("main")  # the escalation is over
    doc = live.output("escalating")
    assert doc["humanAnswers"][0]["answerContent"] == {"sentiment": {"label": "Positive"}}
    assert doc["loopinEscalation"]["team"] == "Experts" and "loopinFallback" not in doc
    assert admin.describe_loop(name).status == "InProgress"  # never escalated: not the expert's


# -- isolation ---------------------------------------------------------------------------------------

PAYLOAD = '"><script>window.pwned=1;window.top.postMessage("pwned","*")</script><img src=x onerror="window.pwned=2">'
HOSTILE = """<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>
<crowd-form>
  <p id="note">{{ task.input.note }}</p>
  <crowd-bounding-box name="boxes" src="{{ task.input.taskObject | grant_read_access }}" header="{{ task.input.note }}"
    labels="{{ task.input.labels }}" initial-value="{{ task.input.initialValue }}"></crowd-bounding-box>
  <crowd-input name="x" label="{{ task.input.note }}" value="{{ task.input.note }}"></crowd-input>
</crowd-form>
<script>var note = '{{ task.input.note }}'; var other = "{{ task.input.quoted }}"; window.noteSeen = note;</script>
"""


def test_untrusted_input_runs_nothing_and_the_frame_cannot_reach_the_console(live: Live, page: Page):
    hostile_input = {
        "taskObject": "s3://review-bucket/images/astronaut.jpg",
        "note": PAYLOAD,
        "quoted": '\\"; window.pwned=3; //',
        "labels": [PAYLOAD, "plain"],
        "initialValue": [{"label": PAYLOAD, "left": 10, "top": 10, "width": 50, "height": 50}],
    }
    setup(live, HOSTILE, [hostile_input])
    messages: list[str] = []
    page.on("console", lambda msg: messages.append(msg.text))
    sign_in(page, live, "worker0@myteam.example")
    page.evaluate("window.addEventListener('message', (e) => { if (e.data === 'pwned') window.pwned = 'message'; })")
    frame = start_working(page)
    frame.wait_for_selector("crowd-bounding-box[data-drawn]")
    page.wait_for_timeout(300)  # give any injected handler its chance
    assert frame.evaluate("window.pwned") is None and page.evaluate("window.pwned") is None
    assert frame.inner_text("#note") == PAYLOAD
    assert frame.evaluate("window.noteSeen").startswith("&#34;&gt;&lt;script&gt;")  # inert text in the script
    assert frame.locator(".lc-label").first.inner_text().endswith(PAYLOAD)
    assert frame.evaluate("document.querySelector('crowd-input').value") == PAYLOAD
    assert frame.locator("img[src=x]").count() == 0
    # The frame's origin is opaque: no cookies, no parent document, no requests to loopin.
    reach = frame.evaluate(
        """async () => {
            const out = {};
            try { out.cookie = document.cookie; } catch (e) { out.cookie = e.name; }
            try { out.parent = window.parent.document.title; } catch (e) { out.parent = e.name; }
            try { await fetch('/worker/jobs'); out.fetch = 'ok'; } catch (e) { out.fetch = e.name; }
            out.origin = window.origin;
            return out;
        }"""
    )
    assert reach == {"cookie": "SecurityError", "parent": "SecurityError", "fetch": "TypeError", "origin": "null"}
    assert any("Content Security Policy" in m for m in messages)  # the fetch was refused by the CSP
    page.errors[:] = [e for e in page.errors if "Content Security Policy" not in e]  # type: ignore[attr-defined]


def test_a_broken_template_shows_a_plain_message_and_submit_stays_off(live: Live, page: Page):
    setup(live, "<p>{{ task.input.text | no_such_filter }}</p>", [{"text": "x"}])
    sign_in(page, live, "worker0@myteam.example")
    page.click("button:has-text('Start working')")
    page.wait_for_url(re.compile(r".*/worker/tasks/\d+$"))
    frame = page.frame_locator("#task-frame")
    assert "This task cannot be shown" in frame.locator("h1").inner_text()
    assert page.is_disabled("#submit-button")
    page.click("button:has-text('Decline')")
    page.wait_for_url("**/worker/jobs?notice=declined")
