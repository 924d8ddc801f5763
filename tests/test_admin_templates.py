"""The admin console's task templates: list, editor, sandboxed preview, errors with their
line, save as new, delete; every POST checks the CSRF token. Both databases."""

from __future__ import annotations

import json
import re

from loopin import flows, task_templates, workforce
from loopin.models import TaskUi
from loopin.services import Services
from tests.admin_support import AdminConsole
from tests.test_console_browser import WALKTHROUGH, WALKTHROUGH_INPUT

SIMPLE = "<p>Hello {{ task.input.name }}</p>\n"


def _preview(console: AdminConsole, content: str, task_input: object, status: int = 200) -> str:
    console.get("/admin/templates/new")
    text = task_input if isinstance(task_input, str) else json.dumps(task_input)
    response = console.post("/admin/templates/preview", status, content=content, input=text)
    csp = response.headers["content-security-policy"]
    assert "sandbox allow-scripts" in csp and "allow-same-origin" not in csp
    assert "allow-popups-to-escape-sandbox" not in csp  # a pasted template's windows stay sandboxed
    assert "connect-src 'none'" in csp and "form-action 'none'" in csp
    return response.text


def _check(console: AdminConsole, content: str, task_input: str) -> dict[str, object] | None:
    console.get("/admin/templates/new")
    response = console.fetch("/admin/templates/check", json.dumps({"content": content, "input": task_input}))
    problem: dict[str, object] | None = response.json()["problem"]
    return problem


def _names(services: Services) -> list[str]:
    with services.db.read() as s:
        return [ui.name for ui in task_templates.list_task_uis(s)]


def test_new_template_editor_offers_the_walkthrough_template_and_sample(admin_console: AdminConsole) -> None:
    page = admin_console.get("/admin/templates/new")
    assert "crowd-bounding-box" in page and "grant_read_access" in page
    assert "s3://loopin-sample/astronaut.jpg" in page
    assert 'formtarget="preview"' in page and 'sandbox="allow-scripts allow-forms allow-popups"' in page
    assert "<script>" not in page


def test_create_lists_and_shows_a_template(admin_console: AdminConsole, services: Services) -> None:
    admin_console.get("/admin/templates")
    assert "No templates yet" in admin_console.last_page
    admin_console.get("/admin/templates/new")
    response = admin_console.post("/admin/templates", name="boxes", content=WALKTHROUGH, input="{}")
    assert response.headers["location"] == "/admin/templates/boxes?notice=created"
    page = admin_console.get("/admin/templates/boxes", notice="created")
    assert "The template was saved." in page and "Not used by any flow." in page
    assert "initial-value=&#34;{{ task.input.initialValue }}&#34;" in page  # the content, escaped
    listing = admin_console.get("/admin/templates")
    assert 'href="/admin/templates/boxes"' in listing
    assert _names(services) == ["boxes"]


def test_save_as_new_keeps_the_original(admin_console: AdminConsole, services: Services) -> None:
    admin_console.get("/admin/templates/new")
    admin_console.post("/admin/templates", name="greeting", content=SIMPLE)
    page = admin_console.get("/admin/templates/greeting")
    assert "Save as new" in page
    admin_console.post("/admin/templates", name="greeting-v2", content="<p>Hi</p>", existing="greeting")
    taken = admin_console.post("/admin/templates", 409, name="greeting", content="<p>Changed</p>", existing="greeting")
    assert "exists already" in taken.text and "&lt;p&gt;Changed&lt;/p&gt;" in taken.text
    with services.db.read() as s:
        assert task_templates.get_task_ui(s, "greeting").content == SIMPLE
    assert _names(services) == ["greeting", "greeting-v2"]


def test_save_refuses_a_syntax_error_with_its_line(admin_console: AdminConsole, services: Services) -> None:
    admin_console.get("/admin/templates/new")
    broken = "<p>one</p>\n<p>two</p>\n{% if task.input.x %}\n<p>three</p>\n{% endfor %}\n"
    response = admin_console.post("/admin/templates", 400, name="broken", content=broken, input='{"a": 1}')
    assert "Template syntax error on line 5" in response.text
    assert 'data-where="template" data-line="5"' in response.text
    assert "{&#34;a&#34;: 1}" in response.text  # the sample input comes back too
    bad_name = admin_console.post("/admin/templates", 400, name="Bad Name", content=SIMPLE)
    assert "Task UI name &#39;Bad Name&#39; is not valid" in bad_name.text
    assert _names(services) == []


def test_preview_renders_with_the_worker_consoles_renderer_in_a_sandbox(
    admin_console: AdminConsole, services: Services
) -> None:
    services.store.put("s3://review-bucket/images/astronaut.jpg", b"jpeg", content_type="image/jpeg")
    html = _preview(admin_console, WALKTHROUGH, WALKTHROUGH_INPUT)
    assert "<crowd-bounding-box" in html
    assert "/static/crowd-html-elements.js?v=" in html and "assets.crowd.aws" not in html
    signed = re.search(r'src="([^"]+)"', html.split("<crowd-bounding-box", 1)[1])
    assert signed and "/store/review-bucket/images/astronaut.jpg?expires=" in signed.group(1)
    assert "&#34;label&#34;:&#34;person&#34;" in html  # initial boxes, escaped JSON in the attribute


def test_preview_shows_the_bundled_sample_photo(admin_console: AdminConsole) -> None:
    html = _preview(admin_console, WALKTHROUGH, {"taskObject": "s3://loopin-sample/astronaut.jpg", "labels": ["a"]})
    assert 'src="data:image/jpeg;base64,/9j/' in html


def test_preview_keeps_the_input_inert(admin_console: AdminConsole) -> None:
    html = _preview(admin_console, SIMPLE, {"name": "<script>alert(1)</script><img src=x onerror=alert(2)>"})
    assert "<script>alert(1)" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in html


def test_preview_and_check_report_errors_with_their_line(admin_console: AdminConsole) -> None:
    template = "<p>a</p>\n<p>b</p>\n{{ task.input.name | no_such_filter }}\n"
    html = _preview(admin_console, template, {"name": "x"}, status=400)
    assert "The preview cannot be shown" in html and "(line 3): unknown filter" in html
    assert _check(admin_console, template, "{}") == {
        "where": "template",
        "line": 3,
        "message": "The task template cannot be rendered (line 3): unknown filter 'no_such_filter'",
    }
    problem = _check(admin_console, SIMPLE, '{\n  "name": "x",\n}')
    assert problem is not None and problem["where"] == "input" and problem["line"] == 3
    assert "not valid JSON (line 3" in str(problem["message"])
    problem = _check(admin_console, SIMPLE, "[1, 2]")
    assert problem is not None and "must be a JSON object" in str(problem["message"])
    problem = _check(admin_console, "{% if x %}\n", "{}")
    assert problem is not None and problem["where"] == "template" and "syntax error on line" in str(problem["message"])
    assert _check(admin_console, WALKTHROUGH, json.dumps(WALKTHROUGH_INPUT)) is None


def test_delete_is_refused_while_a_flow_uses_the_template(admin_console: AdminConsole, services: Services) -> None:
    with services.db.write() as s:
        task_templates.create_task_ui(s, name="used", content=SIMPLE, now_ms=0)
        task_templates.create_task_ui(s, name="spare", content=SIMPLE, now_ms=0)
        workforce.create_team(s, name="reviewers", description="Reviewers", now_ms=0)
        flows.create_flow(
            s,
            name="review",
            team="reviewers",
            task_ui="used",
            title="Review",
            description="Review it",
            output_path="s3://out/a2i",
            now_ms=0,
        )
    listing = admin_console.get("/admin/templates")
    assert '<a href="/admin/flows/review">review</a>' in listing
    page = admin_console.get("/admin/templates/used")
    assert "It cannot be deleted while flows use it" in page and "/admin/templates/used/delete" not in page
    refused = admin_console.post("/admin/templates/used/delete", 409)
    assert "used by flow definition(s) review" in refused.text
    page = admin_console.get("/admin/templates/spare")
    assert 'data-confirm="Delete the template spare?"' in page
    response = admin_console.post("/admin/templates/spare/delete")
    assert response.headers["location"] == "/admin/templates?notice=deleted"
    assert _names(services) == ["used"]
    admin_console.get("/admin/templates/spare", 404)


def test_every_post_needs_the_csrf_token(admin_console: AdminConsole, services: Services) -> None:
    with services.db.write() as s:
        task_templates.create_task_ui(s, name="keep", content=SIMPLE, now_ms=0)
    http = admin_console.http
    form = {"csrf": "forged", "name": "evil", "content": SIMPLE, "input": "{}"}
    assert http.post("/admin/templates", data=form).status_code == 403
    assert http.post("/admin/templates/keep/delete", data={"csrf": "forged"}).status_code == 403
    refused = http.post("/admin/templates/preview", data=form)
    assert refused.status_code == 403 and "sandbox allow-scripts" in refused.headers["content-security-policy"]
    assert "Hello" not in refused.text
    check = http.post(
        "/admin/templates/check",
        content=json.dumps({"content": SIMPLE, "input": "{}"}),
        headers={"Content-Type": "application/json"},
    )
    assert check.status_code == 403
    with services.db.read() as s:
        assert [ui.name for ui in s.query(TaskUi)] == ["keep"]


def test_signed_out_preview_and_pages(admin_console: AdminConsole) -> None:
    admin_console.get("/admin/templates/new")
    token = admin_console.csrf()
    admin_console.http.cookies.clear()
    response = admin_console.http.post(
        "/admin/templates/preview", data={"csrf": token, "content": SIMPLE, "input": "{}"}
    )
    assert response.status_code == 401 and "Your session has ended" in response.text
    assert admin_console.http.get("/admin/templates").status_code == 303


def test_the_editor_warns_of_elements_loopin_does_not_know(admin_console: AdminConsole) -> None:
    content = "<crowd-form><crowd-sketchpad name='drawing'></crowd-sketchpad></crowd-form>"
    admin_console.get("/admin/templates/new")
    answer = admin_console.fetch("/admin/templates/check", json.dumps({"content": content, "input": "{}"})).json()
    assert answer["problem"] is None
    assert len(answer["warnings"]) == 1 and "<crowd-sketchpad> is not an element loopin knows" in answer["warnings"][0]
    clean = admin_console.fetch("/admin/templates/check", json.dumps({"content": SIMPLE, "input": "{}"})).json()
    assert clean["warnings"] == []
    admin_console.post("/admin/templates", name="sketch", content=content, input="{}")
    page = admin_console.get("/admin/templates/sketch")
    assert "&lt;crowd-sketchpad&gt; is not an element loopin knows" in page
