"""The crowd-* elements added after the first set (lines, furniture, toggles, the
second-generation library), the element list of AWS's reference, the shadow-root parts
templates reach for, and the worker console refusing answers that would lose data; in
Debian's Chromium against a live server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from loopin.task_templates import KNOWN_ELEMENTS
from tests.browser import Live, live_server, sign_in
from tests.test_console_browser import DATA, image_click, scroll_to, setup, start_working, submit

SCRIPT = '<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>\n'
PHOTO = {"photo": "s3://review-bucket/images/coffee.jpg"}

# Every element of AWS's "Crowd HTML Elements Reference" (SageMaker developer guide,
# sms-ui-template-reference: the SageMaker list, the Augmented AI list, and the "Crowd HTML
# Elements V2" list).
AWS_REFERENCE = [
    "crowd-alert",
    "crowd-badge",
    "crowd-button",
    "crowd-bounding-box",
    "crowd-card",
    "crowd-checkbox",
    "crowd-classifier",
    "crowd-classifier-multi-select",
    "crowd-entity-annotation",
    "crowd-fab",
    "crowd-form",
    "crowd-icon-button",
    "crowd-image-classifier",
    "crowd-image-classifier-multi-select",
    "crowd-input",
    "crowd-instance-segmentation",
    "crowd-instructions",
    "crowd-keypoint",
    "crowd-line",
    "crowd-modal",
    "crowd-polygon",
    "crowd-polyline",
    "crowd-radio-button",
    "crowd-radio-group",
    "crowd-semantic-segmentation",
    "crowd-slider",
    "crowd-tab",
    "crowd-tabs",
    "crowd-text-area",
    "crowd-toast",
    "crowd-toggle-button",
    # Augmented AI Crowd HTML Elements (A2I's built-in task types)
    "crowd-textract-analyze-document",
    "crowd-rekognition-detect-moderation-labels",
    # Crowd HTML Elements V2 (crowd-html-elements-v2.js)
    "crowd-text-ranking",
    "crowd-question-answer-generation",
]


@pytest.fixture
def live(tmp_path: Path, sqlite_template: Path) -> Iterator[Live]:
    with live_server(tmp_path / "data", sqlite_template=sqlite_template) as live:
        live.services.store.put(
            "s3://review-bucket/images/coffee.jpg", (DATA / "coffee.jpg").read_bytes(), content_type="image/jpeg"
        )
        yield live


def errors(page: Page) -> list[str]:
    return page.errors  # type: ignore[attr-defined,no-any-return]


def test_every_element_of_aws_reference_is_defined_and_the_known_list_matches(live: Live, page: Page):
    setup(live, SCRIPT + "<crowd-form><crowd-input name='x'></crowd-input></crowd-form>", [{}])
    sign_in(page, live, "worker0@myteam.example")
    frame = start_working(page)
    missing = frame.evaluate("(names) => names.filter((n) => !customElements.get(n))", AWS_REFERENCE)
    assert missing == []
    # The server's list of known elements (for its warnings) is exactly what the library defines.
    defined = frame.evaluate(
        "(names) => names.filter((n) => customElements.get(n))", sorted(KNOWN_ELEMENTS | set(AWS_REFERENCE))
    )
    assert sorted(defined) == sorted(KNOWN_ELEMENTS)
    source = frame.evaluate("Array.from(document.scripts).map((s) => s.src).join(' ')")
    assert "crowd-html-elements.js" in source and "assets.crowd.aws" not in source
    assert errors(page) == []


LINES = (
    SCRIPT
    + """<crowd-form>
  <crowd-line name="crowdLine" src="{{ task.input.photo | grant_read_access }}" header="Trace the table edge"
    labels="['edge', 'crack']" label-colors="['#ff0000', '#00ff00']">
    <short-instructions>Two clicks make a line.</short-instructions>
    <full-instructions><p>Click where the line starts, then where it ends.</p></full-instructions>
  </crowd-line>
  <crowd-polyline name="crowdPolyline" src="{{ task.input.photo | grant_read_access }}" header="Trace the rim"
    labels="['rim', 'handle']"
    initial-value="{ polylines: [ { label: 'handle', vertices: [ { x: 10, y: 20 }, { x: 30, y: 40 } ] } ] }">
  </crowd-polyline>
</crowd-form>"""
)


def test_line_and_polyline_draw_and_submit_the_documented_shape(live: Live, page: Page):
    (loop,) = setup(live, LINES, [PHOTO])
    sign_in(page, live, "worker0@myteam.example")
    frame = start_working(page)

    scroll_to(frame, "crowd-line")
    frame.click("crowd-line .lc-label:has-text('crack')")
    image_click(page, frame, "crowd-line", 100, 100)
    image_click(page, frame, "crowd-line", 300, 150)
    expect(frame.locator("crowd-line .lc-status")).to_have_text(re.compile(r"^1 line\b"))
    # The label colour comes from label-colors.
    assert frame.evaluate("document.querySelector('crowd-line').colorOf('crack')") == "#00ff00"

    scroll_to(frame, "crowd-polyline")
    for x, y in [(50, 300), (150, 350), (250, 300)]:
        image_click(page, frame, "crowd-polyline", x, y)
    page.keyboard.press("Enter")
    expect(frame.locator("crowd-polyline .lc-status")).to_have_text(re.compile(r"^2 lines\b"))

    submit(page)
    answer = live.output(loop)["humanAnswers"][0]["answerContent"]
    assert answer == {
        "crowdLine": {
            "inputImageProperties": {"height": 400, "width": 600},
            "lines": [{"label": "crack", "vertices": [{"x": 100, "y": 100}, {"x": 300, "y": 150}]}],
        },
        "crowdPolyline": {
            "inputImageProperties": {"height": 400, "width": 600},
            "polylines": [
                {"label": "handle", "vertices": [{"x": 10, "y": 20}, {"x": 30, "y": 40}]},
                {"label": "rim", "vertices": [{"x": 50, "y": 300}, {"x": 150, "y": 350}, {"x": 250, "y": 300}]},
            ],
            "initialValueModified": True,
        },
    }
    assert errors(page) == []


FURNITURE = (
    SCRIPT
    + """<crowd-form>
  <crowd-card heading="The review">
    <div class="card" id="review">Great coffee, slow service.<crowd-badge label="new" for="review"></crowd-badge></div>
  </crowd-card>
  <crowd-tabs>
    <crowd-tab header="First"><crowd-toggle-button name="urgent"></crowd-toggle-button></crowd-tab>
    <crowd-tab header="Second">
      <crowd-toggle-button name="reviewed" value="done" checked></crowd-toggle-button>
    </crowd-tab>
  </crowd-tabs>
  <crowd-checkbox name="agree" value="yes" id="agree">I agree</crowd-checkbox>
  <crowd-checkbox name="locked" value="x" checked disabled>Locked</crowd-checkbox>
  <crowd-modal link-text="More about this task"><p id="modal-text">Read the review.</p></crowd-modal>
  <crowd-icon-button icon="star" id="star"></crowd-icon-button>
  <crowd-fab icon="add" label="Add" title="Add one"></crowd-fab>
  <crowd-toast id="toast" duration="0" text="Saved"></crowd-toast>
</crowd-form>"""
)


def test_furniture_toggle_buttons_and_the_checkbox_disabled_property(live: Live, page: Page):
    (loop,) = setup(live, FURNITURE, [{}])
    sign_in(page, live, "worker0@myteam.example")
    frame = start_working(page)
    assert frame.inner_text("crowd-card .lc-card-heading") == "The review"
    assert frame.locator("#review .lc-badge").inner_text() == "new"
    # Tabs: one panel at a time; the hidden one's elements still answer.
    expect(frame.locator("crowd-tab[header=Second]")).to_be_hidden()
    frame.click("crowd-toggle-button[name=urgent] button")
    frame.click(".lc-tab-button:has-text('Second')")
    expect(frame.locator("crowd-tab[header=First]")).to_be_hidden()
    # The modal opens its content in a dialog.
    frame.click("crowd-modal button:has-text('More about this task')")
    expect(frame.locator("dialog[open] #modal-text")).to_be_visible()
    frame.click("dialog[open] .lc-dialog-close")
    # The toast shows when opened.
    frame.evaluate("document.getElementById('toast').show()")
    expect(frame.locator("#toast")).to_have_text("Saved")
    expect(frame.locator("#toast")).to_be_visible()
    # crowd-checkbox's disabled property, as AWS documents it.
    assert frame.evaluate("document.querySelector('crowd-checkbox[name=locked]').disabled") is True
    assert frame.is_disabled("crowd-checkbox[name=locked] input")
    frame.evaluate("document.getElementById('agree').disabled = true")
    assert frame.is_disabled("#agree input")
    frame.evaluate("document.getElementById('agree').disabled = false")
    frame.check("#agree input")
    frame.evaluate("document.getElementById('star').disabled = true")
    assert frame.is_disabled("#star button")

    submit(page)
    answer = live.output(loop)["humanAnswers"][0]["answerContent"]
    assert answer == {
        "urgent": {"on": True},
        "reviewed": {"done": True},
        "agree": {"yes": True},
        "locked": {"x": True},
    }
    assert errors(page) == []


GENERATIVE = """<script src="https://assets.crowd.aws/crowd-html-elements-v2.js"></script>
<crowd-form>
  <crowd-text-ranking name="textRanking" text="{{ task.input.prompt }}"
    ordinal-ranking-dimensions='[{"name":"Clarity","allowTie":true},{"name":"Accuracy","allowTie":false}]'
    responses='{{ task.input.responses | to_json }}'>
    <short-instructions><p>Rank the answers.</p></short-instructions>
  </crowd-text-ranking>
  <crowd-question-answer-generation name="qa" text="{{ task.input.passage }}" min-questions="1" max-questions="3"
    question-min-words="2" answer-max-words="10" question-tags='["fact", "date"]' allow-custom-question-tags="true">
    <short-instructions><p>Ask about the text.</p></short-instructions>
  </crowd-question-answer-generation>
</crowd-form>"""
GENERATIVE_INPUT = {
    "prompt": "Why is the sky blue?",
    "responses": ["Rayleigh scattering.", "Because it reflects the sea.", "Blue light scatters more."],
    "passage": "Ada Lovelace published the first algorithm in 1843.",
}


def test_second_generation_library_text_ranking_and_question_answer_generation(live: Live, page: Page):
    (loop,) = setup(live, GENERATIVE, [GENERATIVE_INPUT])
    sign_in(page, live, "worker0@myteam.example")
    frame = start_working(page)
    assert frame.evaluate("Array.from(document.scripts).some((s) => s.src.includes('assets.crowd.aws'))") is False
    ranks = {"Clarity": ["1", "1", "2"], "Accuracy": ["1", "3", "2"]}
    for dimension, values in ranks.items():
        for i, value in enumerate(values):
            frame.select_option(f"select[aria-label='{dimension}: rank of response {i + 1}']", value)
    # Ties are refused where the dimension does not allow them.
    frame.select_option("select[aria-label='Accuracy: rank of response 2']", "1")
    page.click("#submit-button")
    expect(frame.locator("crowd-text-ranking .lc-problem")).to_contain_text("different rank for Accuracy")
    frame.select_option("select[aria-label='Accuracy: rank of response 2']", "3")

    frame.fill(".lc-qa-question", "When was it published?")
    # Quote the answer from the text: select "1843" and take it.
    frame.evaluate(
        """() => {
            const box = document.querySelector('.lc-qa-text');
            const node = box.firstChild, start = node.data.indexOf('1843');
            window.getSelection().setBaseAndExtent(node, start, node, start + 4);
            box.dispatchEvent(new MouseEvent('mouseup', {bubbles: true}));
        }"""
    )
    frame.click("button:has-text('Use the selected text')")
    frame.check(".lc-qa-tags input[value=date]")
    frame.fill(".lc-qa-custom-tag", "history, date")
    submit(page)
    answer = live.output(loop)["humanAnswers"][0]["answerContent"]
    assert answer == {
        "textRanking": {
            "ordinalRankings": [
                {"dimension": "Clarity", "ranks": [1, 1, 2]},
                {"dimension": "Accuracy", "ranks": [1, 3, 2]},
            ]
        },
        "qa": {
            "questionAnswerPairs": [
                {
                    "question": "When was it published?",
                    "answer": "1843",
                    "tags": ["date", "history"],
                    "answerSpan": {"startOffset": 46, "endOffset": 50},
                }
            ]
        },
    }
    assert errors(page) == []


SHADOW = (
    SCRIPT
    + """<crowd-entity-annotation name="entities" header="Highlight names" text="{{ task.input.text }}"
  labels="[{label: 'person', shortDisplayName: 'per', fullDisplayName: 'Person'}]">
  <div id="extra"><crowd-radio-group>
    <crowd-radio-button name="tech" value="tech" checked>Technology</crowd-radio-button>
  </crowd-radio-group></div>
  <full-instructions header="Rules"><p>Names only.</p></full-instructions>
  <short-instructions>Highlight people.</short-instructions>
</crowd-entity-annotation>
<crowd-classifier name="c" categories="['a', 'b']" header="Pick"><classification-target>x</classification-target>
  <full-instructions header="More"><p>Pick one.</p></full-instructions></crowd-classifier>
<script>
  document.addEventListener('all-crowd-elements-ready', () => {
    const classifier = document.querySelector('crowd-classifier');
    classifier.shadowRoot.querySelector('.awsui-app-layout__navigation').style.width = '400px';
    classifier.shadowRoot.querySelector('.awsui-modal-dialog').style.maxWidth = '90%';
    document.querySelector('crowd-entity-annotation').shadowRoot.querySelector('crowd-form').form
      .appendChild(document.getElementById('extra'));
  });
</script>"""
)


def test_templates_find_awss_parts_in_an_open_shadow_root(live: Live, page: Page):
    (loop,) = setup(live, SHADOW, [{"text": "Ada Lovelace"}])
    sign_in(page, live, "worker0@myteam.example")
    frame = start_working(page)
    assert frame.evaluate("document.querySelector('crowd-classifier').shadowRoot.mode") == "open"
    assert frame.evaluate("document.querySelector('crowd-classifier .lc-task-side').style.width") == "400px"
    assert frame.evaluate("document.querySelector('dialog.lc-dialog:last-of-type').style.maxWidth") == "90%"
    assert frame.evaluate("document.querySelector('crowd-form > #extra') !== null")
    # The light DOM still shows through: the classifier's choices are visible and work.
    frame.click("crowd-classifier .lc-choice-button:has-text('b')")
    assert frame.evaluate("document.querySelector('crowd-classifier').value") == {"label": "b"}
    submit(page)  # the entity annotation's own form, with what the template moved into it
    answer = live.output(loop)["humanAnswers"][0]["answerContent"]
    assert answer == {"entities": {"entities": []}, "tech": {"tech": True}}
    assert errors(page) == []


def test_an_unknown_named_element_stops_the_submit_with_a_message(live: Live, page: Page):
    template = (
        SCRIPT
        + """<crowd-form>
  <crowd-input name="title" value="kept"></crowd-input>
  <crowd-sketchpad name="drawing"></crowd-sketchpad>
</crowd-form>"""
    )
    (loop,) = setup(live, template, [{}])
    sign_in(page, live, "worker0@myteam.example")
    frame = start_working(page)
    page.click("#submit-button")
    problem = frame.locator("crowd-form > .lc-problem")
    expect(problem).to_contain_text('<crowd-sketchpad name="drawing"> is an element loopin does not know')
    expect(problem).to_contain_text("Your answer was not sent")
    assert re.search(r"/worker/tasks/\d+$", page.url)
    assert live.admin.describe_loop(loop).status == "InProgress"


def test_a_submit_handler_that_throws_stops_the_submit_and_tells_the_worker(live: Live, page: Page):
    template = (
        SCRIPT
        + """<crowd-form>
  <crowd-input name="title" value="kept"></crowd-input>
  <input type="hidden" name="extra" id="extra">
</crowd-form>
<script>
  document.querySelector('crowd-form').onsubmit = function () {
    if (!window.fixed) throw new Error('labels were not loaded');
    document.getElementById('extra').value = 'added by the handler';
  };
</script>"""
    )
    (loop,) = setup(live, template, [{}])
    sign_in(page, live, "worker0@myteam.example")
    frame = start_working(page)
    page.click("#submit-button")
    problem = frame.locator("crowd-form > .lc-problem")
    expect(problem).to_contain_text("labels were not loaded")
    expect(problem).to_contain_text("Your answer was not sent")
    assert live.admin.describe_loop(loop).status == "InProgress"
    assert [e for e in errors(page) if "labels were not loaded" not in e] == []
    errors(page).clear()
    # Once the handler works, the answer goes out with what it adds.
    frame.evaluate("window.fixed = true")
    submit(page)
    answer = live.output(loop)["humanAnswers"][0]["answerContent"]
    assert answer == {"title": "kept", "extra": "added by the handler"}


# -- outside assets -------------------------------------------------------------------------------


def _pdf() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (200, 100), "white").save(out, "PDF")
    return out.getvalue()


def test_a_signed_pdf_shows_in_an_iframe_of_the_task_without_a_csp_violation(live: Live, page: Page):
    live.services.store.put("s3://review-bucket/docs/form.pdf", _pdf(), content_type="application/pdf")
    template = (
        SCRIPT
        + """<crowd-form>
  <iframe id="doc" src="{{ task.input.document | grant_read_access }}" width="600" height="400"></iframe>
  <crowd-classifier name="ok" categories="['Complete', 'Incomplete']" header="Is the form complete?">
    <classification-target>See the document.</classification-target></crowd-classifier>
</crowd-form>"""
    )
    (loop,) = setup(live, template, [{"document": "s3://review-bucket/docs/form.pdf"}])
    sign_in(page, live, "worker0@myteam.example")
    loaded: list[int] = []
    page.context.on(
        "response", lambda r: loaded.append(r.status) if "/store/review-bucket/docs/form.pdf" in r.url else None
    )
    frame = start_working(page)
    page.wait_for_timeout(500)
    assert loaded == [200]
    assert [e for e in errors(page) if "Content Security Policy" in e] == []
    # Chromium shows no PDF inside a sandboxed frame: a link opens it in a tab of its own.
    link = frame.locator("#doc + .lc-document-link a")
    assert link.get_attribute("target") == "_blank" and "/store/review-bucket/docs/form.pdf" in str(
        link.get_attribute("href")
    )
    with page.context.expect_page() as opened:
        link.click()
    document = opened.value
    document.wait_for_load_state()
    assert "/store/review-bucket/docs/form.pdf" in document.url and loaded == [200, 200]
    document.close()
    frame.click(".lc-choice-button:has-text('Complete')")
    submit(page)
    assert live.output(loop)["humanAnswers"][0]["answerContent"] == {"ok": {"label": "Complete"}}


# -- A2I's built-in task types ---------------------------------------------------------------------

TEXTRACT = (
    SCRIPT
    + """{% capture doc %}s3://{{ task.input.aiServiceRequest.document.s3Object.bucket }}/{{
  task.input.aiServiceRequest.document.s3Object.name }}{% endcapture %}
<crowd-form>
  <crowd-textract-analyze-document src="{{ doc | grant_read_access }}"
    initial-value="{{ task.input.selectedAiServiceResponse.blocks }}" header="Check the form fields"
    no-key-edit no-geometry-edit keys="{{ task.input.humanLoopContext.importantFormKeys }}"
    block-types="['KEY_VALUE_SET']">
    <short-instructions>Correct each value to match the document.</short-instructions>
  </crowd-textract-analyze-document>
</crowd-form>"""
)
BOX = {"boundingBox": {"width": 0.2, "height": 0.05, "left": 0.1, "top": 0.1}}
TEXTRACT_INPUT = {
    "aiServiceRequest": {"document": {"s3Object": {"bucket": "review-bucket", "name": "images/coffee.jpg"}}},
    "aiServiceResponse": {
        "blocks": [
            {
                "blockType": "KEY_VALUE_SET",
                "id": "k1",
                "entityTypes": ["KEY"],
                "geometry": BOX,
                "relationships": [{"type": "VALUE", "ids": ["v1"]}, {"type": "CHILD", "ids": ["w1"]}],
            },
            {
                "blockType": "KEY_VALUE_SET",
                "id": "v1",
                "entityTypes": ["VALUE"],
                "relationships": [{"type": "CHILD", "ids": ["w2"]}],
            },
            {"blockType": "WORD", "id": "w1", "text": "Name:"},
            {"blockType": "WORD", "id": "w2", "text": "Jane Doe"},
            {
                "blockType": "KEY_VALUE_SET",
                "id": "k2",
                "entityTypes": ["KEY"],
                "text": "Phone",
                "relationships": [{"type": "VALUE", "ids": ["v2"]}],
            },
            {"blockType": "KEY_VALUE_SET", "id": "v2", "entityTypes": ["VALUE"], "text": "555"},
        ],
        "documentMetadata": {"pages": 1},
    },
    "humanLoopContext": {"importantFormKeys": [{"importantFormKey": "Address", "importantFormKeyAliases": ["Addr."]}]},
}


def test_textract_analyze_document_takes_a2is_input_and_answers_under_its_task_type(live: Live, page: Page):
    (loop,) = setup(live, TEXTRACT, [TEXTRACT_INPUT])
    sign_in(page, live, "worker0@myteam.example")
    frame = start_working(page)
    element = "crowd-textract-analyze-document"
    assert frame.input_value(f"{element} input[aria-label='Key 1']") == "Name:"  # from its CHILD words
    assert frame.is_editable(f"{element} input[aria-label='Key 1']") is False  # no-key-edit
    expect(frame.locator(f"{element} .lc-doc-mark")).to_have_count(1)
    frame.fill(f"{element} input[aria-label='Value of Name:']", "Jane Q. Doe")
    frame.check(f"{element} fieldset[data-index='1'] label:has-text('Not a key-value pair') input")
    page.click("#submit-button")  # the important key the model missed needs an answer first
    expect(frame.locator(f"{element} .lc-problem")).to_contain_text('Type the value of "Address"')
    frame.fill(f"{element} input[aria-label='Value of Address']", "1 Main St")
    submit(page)
    doc = live.output(loop)
    assert doc["inputContent"] == TEXTRACT_INPUT  # as given: no selectedAiServiceResponse added
    assert doc["humanAnswers"][0]["answerContent"] == {
        "AWS/Textract/AnalyzeDocument/Forms/V1": {
            "blocks": [
                {
                    "blockType": "KEY_VALUE_SET",
                    "id": "k1",
                    "relationships": [{"type": "VALUE", "ids": ["v1"]}, {"type": "CHILD", "ids": ["w1"]}],
                    "entityTypes": ["KEY"],
                    "text": "Name:",
                },
                {
                    "blockType": "KEY_VALUE_SET",
                    "id": "v1",
                    "relationships": [{"type": "CHILD", "ids": ["w2"]}],
                    "entityTypes": ["VALUE"],
                    "text": "Jane Q. Doe",
                },
                {
                    "blockType": "KEY_VALUE_SET",
                    "id": "loopin-key-0",
                    "relationships": [{"type": "VALUE", "ids": ["loopin-value-0"]}],
                    "entityTypes": ["KEY"],
                    "text": "Address",
                },
                {"blockType": "KEY_VALUE_SET", "id": "loopin-value-0", "entityTypes": ["VALUE"], "text": "1 Main St"},
            ]
        }
    }
    assert errors(page) == []


REKOGNITION = (
    SCRIPT
    + """{% capture image %}s3://{{ task.input.aiServiceRequest.image.s3Object.bucket }}/{{
  task.input.aiServiceRequest.image.s3Object.name }}{% endcapture %}
<crowd-form>
  <crowd-rekognition-detect-moderation-labels
    categories='[
      {% for label in task.input.selectedAiServiceResponse.moderationLabels %}
        { name: "{{ label.name }}", parentName: "{{ label.parentName }}", },
      {% endfor %}
    ]'
    src="{{ image | grant_read_access }}" header="Choose every category the image shows">
    <short-instructions>If none applies, choose None.</short-instructions>
  </crowd-rekognition-detect-moderation-labels>
</crowd-form>"""
)
REKOGNITION_INPUT = {
    "aiServiceRequest": {"image": {"s3Object": {"bucket": "review-bucket", "name": "images/coffee.jpg"}}},
    "aiServiceResponse": {
        "moderationLabels": [
            {"confidence": 61.2, "name": "Drinking", "parentName": "Alcohol"},
            {"confidence": 55.0, "name": "Smoking", "parentName": "Tobacco"},
        ],
        "moderationModelVersion": "3.0",
    },
}


def test_rekognition_moderation_labels_return_the_chosen_category_objects(live: Live, page: Page):
    (loop,) = setup(live, REKOGNITION, [REKOGNITION_INPUT])
    sign_in(page, live, "worker0@myteam.example")
    frame = start_working(page)
    element = "crowd-rekognition-detect-moderation-labels"
    # The exclusion clears and disables the categories; choosing it again enables them.
    frame.click(f"{element} .lc-choice-button:has-text('Smoking')")
    frame.click(f"{element} .lc-exclusion")
    assert frame.evaluate(f"document.querySelector('{element}').value") == {"moderationLabels": []}
    assert frame.is_disabled(f"{element} .lc-choice-button:has-text('Drinking')")
    frame.click(f"{element} .lc-exclusion")
    frame.click(f"{element} .lc-choice-button:has-text('Drinking')")
    submit(page)
    assert live.output(loop)["humanAnswers"][0]["answerContent"] == {
        "AWS/Rekognition/DetectModerationLabels/Image/V3": {
            "moderationLabels": [{"name": "Drinking", "parentName": "Alcohol"}]
        }
    }
    assert errors(page) == []
