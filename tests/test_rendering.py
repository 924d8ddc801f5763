"""Task templates render as A2I renders them: ``task.input`` bound, output escaped, lists and
objects printed as JSON, A2I's filters, errors with a line number."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from loopin.errors import AccessDeniedError, ValidationError
from loopin.rendering import CROWD_SCRIPT_PATH, RenderError, render_task
from loopin.store import LocalStore

WALKTHROUGH = """<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>
<crowd-form>
  <crowd-bounding-box
    name="annotatedResult"
    src="{{ task.input.taskObject | grant_read_access }}"
    header="Draw bounding boxes around all the objects in this image"
    labels="{{ task.input.labels }}"
    initial-value="{{ task.input.initialValue }}"
  >
    <full-instructions header="Bounding box instructions">Draw tight boxes.</full-instructions>
    <short-instructions>Draw a box around each vehicle and bike.</short-instructions>
  </crowd-bounding-box>
</crowd-form>
"""
INPUT = {
    "taskObject": "s3://my-bucket/images/street.jpg",
    "labels": ["car", "bicycle", "person"],
    "initialValue": [
        {"label": "car", "left": 10, "top": 20, "width": 100, "height": 50},
        {"label": "person", "left": 300, "top": 40, "width": 30, "height": 90},
    ],
}


def fake_grant(uri: str) -> str:
    return "https://signed.example/" + uri


def render(template: str, task_input: dict[str, object] | None = None) -> str:
    return render_task(template, task_input or {}, grant_read_access=fake_grant)


class Elements(HTMLParser):
    """Every start tag with its (browser-decoded) attributes, and the text of scripts."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)

    def first(self, tag: str) -> dict[str, str | None]:
        return next(attrs for name, attrs in self.tags if name == tag)


def test_walkthrough_template_prints_lists_and_objects_as_json_that_the_browser_decodes() -> None:
    page = Elements(render(WALKTHROUGH, INPUT))
    box = page.first("crowd-bounding-box")
    assert json.loads(box["initial-value"] or "") == INPUT["initialValue"]
    assert json.loads(box["labels"] or "") == INPUT["labels"]
    assert box["src"] == "https://signed.example/s3://my-bucket/images/street.jpg"


def test_aws_element_script_is_replaced_by_loopins_own() -> None:
    page = render(WALKTHROUGH, INPUT)
    assert "assets.crowd.aws" not in page
    assert Elements(page).first("script")["src"] == CROWD_SCRIPT_PATH


def test_the_second_generation_element_script_is_replaced_too() -> None:
    page = render('<script src="https://assets.crowd.aws/crowd-html-elements-v2.js"></script>', INPUT)
    assert "assets.crowd.aws" not in page and Elements(page).first("script")["src"] == CROWD_SCRIPT_PATH


def test_a2i_built_in_input_without_a_selection_shows_the_whole_service_response() -> None:
    template = "{{ task.input.selectedAiServiceResponse.moderationLabels[0].name }}"
    labels = {"moderationLabels": [{"name": "Smoking", "parentName": "Tobacco"}]}
    assert render(template, {"aiServiceRequest": {}, "aiServiceResponse": labels}) == "Smoking"
    chosen = {"moderationLabels": [{"name": "Drinking", "parentName": "Alcohol"}]}
    given = {"aiServiceResponse": labels, "selectedAiServiceResponse": chosen}
    assert render(template, given) == "Drinking"  # a selection given is used as it is


def test_the_element_script_url_can_be_chosen() -> None:
    page = render_task(WALKTHROUGH, INPUT, grant_read_access=fake_grant, crowd_script_url="/static/x.js?v=1&a=b")
    assert Elements(page).first("script")["src"] == "/static/x.js?v=1&a=b"


def test_output_is_escaped_by_default_and_the_filters_behave_as_documented() -> None:
    template = (
        "{{ task.input.title }}|{{ task.input.title | escape }}|{{ task.input.title | escape_once }}|"
        "{{ task.input.title | skip_autoescape }}"
    )
    out = render(template, {"title": "Have you read 'James & the Giant Peach'?"})
    escaped = "Have you read &#39;James &amp; the Giant Peach&#39;?"
    assert out.split("|") == [escaped, escaped, escaped, "Have you read 'James & the Giant Peach'?"]


def test_escape_once_does_not_double_escape_entities() -> None:
    out = render("{{ task.input.t | escape_once }}|{{ task.input.t | escape }}", {"t": "a &amp; b < c"})
    assert out == "a &amp; b &lt; c|a &amp;amp; b &lt; c"


def test_to_json_and_escape_in_an_attribute_round_trip() -> None:
    labels = [{"label": "person", "shortDisplayName": "per"}, {"label": "date's"}]
    page = Elements(render('<x-el labels="{{ task.input.labels | to_json | escape }}"></x-el>', {"labels": labels}))
    assert json.loads(page.first("x-el")["labels"] or "") == labels


def test_values_print_like_liquid_and_missing_ones_print_nothing() -> None:
    out = render(
        "{{ task.input.n }} {{ task.input.f }} {{ task.input.yes }} {{ task.input.none }}|"
        "{{ task.input.missing }}|{{ task.input.missing.deeper }}|{{ task.input.missing | to_json }}",
        {"n": 3, "f": 0.25, "yes": True, "none": None},
    )
    assert out == "3 0.25 true |||null"


def test_any_nesting_depth_and_the_tags_a2i_material_uses() -> None:
    template = """{% assign first = task.input.pairs.first %}{% capture uri %}s3://{{ task.input.doc.s3.bucket }}/{{
task.input.doc.s3.name }}{% endcapture %}{{ uri | grant_read_access }}
{% for p in task.input.pairs %}{{ forloop.index }}:{{ p.text }}{% unless forloop.last %},{% endunless %}{% endfor %}
{% if task.input.score.x > 0.5 %}high{% elsif task.input.score.x > 0.1 %}mid{% else %}low{% endif %}
{% case first.text %}{% when "a" %}first is a{% else %}other{% endcase %}"""
    out = render(
        template,
        {
            "doc": {"s3": {"bucket": "b", "name": "k/d.pdf"}},
            "pairs": [{"text": "a"}, {"text": "b"}],
            "score": {"x": 0.3},
        },
    )
    assert out.splitlines() == ["https://signed.example/s3://b/k/d.pdf", "1:a,2:b", "mid", "first is a"]


def test_untrusted_input_cannot_add_markup_or_attributes() -> None:
    payload = '"><script>window.pwned=1</script><img src=x onerror="window.pwned=2">'
    template = (
        '<crowd-bounding-box header="{{ task.input.h }}" initial-value="{{ task.input.boxes }}"></crowd-bounding-box>'
        "<p>{{ task.input.h }}</p><script>var v = '{{ task.input.h }}'; var w = \"{{ task.input.slash }}\";</script>"
    )
    out = render(template, {"h": payload, "boxes": [{"label": payload}], "slash": "\\"})
    page = Elements(out)
    assert [tag for tag, _ in page.tags] == ["crowd-bounding-box", "p", "script"]
    box = page.first("crowd-bounding-box")
    assert box["header"] == payload
    assert json.loads(box["initial-value"] or "")[0]["label"] == payload
    # Inside the script the payload cannot close the string literal: no quote, no backslash.
    assert "'" not in page.scripts[0].split("'")[1] and "\\" not in page.scripts[0]


def test_grant_read_access_accepts_the_s3_forms_a2i_templates_use(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, public_url="http://loopin.example", secret_key="k" * 32)
    now_ms = 1_767_225_600_000

    def grant(uri: str) -> str:
        return store.signed_url(uri, ttl_seconds=900, now_ms=now_ms)

    forms = [
        "s3://my-bucket/images/street.jpg",
        "https://s3.amazonaws.com/my-bucket/images/street.jpg",
        "http://s3.amazonaws.com/my-bucket/images/street.jpg",
        "https://my-bucket.s3.amazonaws.com/images/street.jpg",
    ]
    for uri in forms:
        url = render_task("{{ task.input.o | grant_read_access }}", {"o": uri}, grant_read_access=grant)
        parts = urlsplit(url.replace("&amp;", "&"))
        assert parts.path == "/store/my-bucket/images/street.jpg"
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        store.verify_signature("my-bucket", "images/street.jpg", query["expires"], query["signature"], now_ms=now_ms)
        # The signature opens this one object only, and only until it expires.
        with pytest.raises(AccessDeniedError):
            store.verify_signature("my-bucket", "images/other.jpg", query["expires"], query["signature"], now_ms=now_ms)
        with pytest.raises(AccessDeniedError):
            store.verify_signature(
                "my-bucket", "images/street.jpg", query["expires"], query["signature"], now_ms=now_ms + 901_000
            )


def test_grant_read_access_of_nothing_is_empty() -> None:
    assert render("[{{ task.input.missing | grant_read_access }}]") == "[]"


def test_a_template_error_names_the_line() -> None:
    with pytest.raises(RenderError) as info:
        render("<p>ok</p>\n<p>{{ task.input.x | no_such_filter }}</p>")
    assert info.value.code == "ValidationException" and isinstance(info.value, ValidationError)
    assert info.value.details["line"] == 2
    assert "line 2" in info.value.message and "no_such_filter" in info.value.message


def test_a_syntax_error_names_the_line() -> None:
    with pytest.raises(RenderError) as info:
        render("one\ntwo\n{% if %}three{% endif %}")
    assert info.value.details["line"] == 3


def test_grant_read_access_of_something_that_is_no_s3_location_is_a_render_error(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, public_url="http://loopin.example", secret_key="k" * 32)
    with pytest.raises(RenderError) as info:
        render_task(
            "\n{{ task.input.o | grant_read_access }}",
            {"o": "https://example.com/cat.jpg"},
            grant_read_access=lambda uri: store.signed_url(uri, ttl_seconds=60, now_ms=0),
        )
    assert info.value.details["line"] == 2
    assert "grant_read_access" in info.value.message and "not an S3 location" in info.value.message


def test_a_runaway_loop_is_stopped() -> None:
    with pytest.raises(RenderError, match="limit"):
        render("{% for i in (1..100000000) %}{% endfor %}")
