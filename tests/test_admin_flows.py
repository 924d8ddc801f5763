"""The admin console's flow definitions: list, create with a message per bad field, edit
the fields that leave running loops alone, delete (refused while loops exist); every POST
checks the CSRF token. Both databases."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from loopin import flows, loops, task_templates, workforce
from loopin.errors import ValidationError
from loopin.models import FlowDefinition, TaskSlot
from loopin.services import Services
from loopin.web.consoles.admin.flows import EDITABLE
from tests.admin_support import AdminConsole

GOOD = {
    "name": "review",
    "team": "reviewers",
    "task_ui": "boxes",
    "output_path": "s3://out/a2i",
    "title": "Check the boxes",
    "description": "Fix the boxes the detector drew",
    "keywords": "boxes, photos",
    "task_count": "1",
    "availability_lifetime_s": "3600",
    "time_limit_s": "300",
    "consolidation": "auto",
    "consolidation_quorum": "",
    "frame_origins": "",
    "default_priority": "50",
    "deadline_s": "",
    "fallback": "fail",
    "escalation_team": "",
    "escalation_s": "",
    "adaptive": "off",
    "adaptive_model_agreement": "",
    "adaptive_worker_agreement": "",
}


@pytest.fixture
def ready(services: Services) -> Services:
    """A team and a template to make flows from."""
    with services.db.write() as s:
        workforce.create_team(s, name="reviewers", description="Reviewers", now_ms=0)
        task_templates.create_task_ui(s, name="boxes", content="<p>{{ task.input.x }}</p>", now_ms=0)
    return services


def _flow(services: Services, name: str = "review") -> FlowDefinition:
    with services.db.read() as s:
        return flows.get_flow(s, name)


def _flow_names(services: Services) -> list[str]:
    with services.db.read() as s:
        return [f.name for f in flows.list_flows(s)]


def _create(console: AdminConsole, status: int = 303, **changes: str) -> Any:
    console.get("/admin/flows/new")
    return console.post("/admin/flows", status, fields={"csrf": console.csrf(), **GOOD, **changes})


def test_create_a_flow_through_the_form(admin_console: AdminConsole, ready: Services) -> None:
    page = admin_console.get("/admin/flows/new")
    assert '<option value="reviewers">reviewers</option>' in page and '<option value="boxes">boxes</option>' in page
    assert 'value="864000"' in page and 'value="3600"' in page  # A2I's defaults
    response = _create(admin_console)
    assert response.headers["location"] == "/admin/flows/review?notice=created"
    flow = _flow(ready)
    assert (flow.title, flow.task_count, flow.availability_lifetime_s, flow.time_limit_s) == (
        "Check the boxes",
        1,
        3600,
        300,
    )
    assert json.loads(flow.keywords) == ["boxes", "photos"] and flow.output_path == "s3://out/a2i"
    page = admin_console.get("/admin/flows/review", notice="created")
    assert "The flow was created." in page and 'href="/admin/flows/review/threshold"' in page
    assert 'value="boxes, photos"' in page and "<code>s3://out/a2i</code>" in page
    listing = admin_console.get("/admin/flows")
    assert 'href="/admin/flows/review"' in listing and 'href="/admin/templates/boxes"' in listing


def test_the_new_flow_page_says_what_is_missing(admin_console: AdminConsole) -> None:
    page = admin_console.get("/admin/flows/new")
    assert 'a <a href="/admin/teams">team</a> and a <a href="/admin/templates/new">template</a>' in page


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", "Bad Name", "Flow definition name &#39;Bad Name&#39; is not valid"),
        ("team", "", "Choose one of the teams."),
        ("task_ui", "gone", "Choose one of the templates."),
        ("output_path", "not-a-path", "s3://"),
        ("title", "", "Task title must be 1 to 128 characters long."),
        ("description", "x" * 256, "Task description must be 1 to 255 characters long."),
        ("keywords", "a, b, c, d, e, f", "Task keywords: at most 5"),
        ("task_count", "4", "TaskCount must be a whole number from 1 to 3."),
        ("availability_lifetime_s", "ten days", "Task availability lifetime must be a whole number from 1 to 864000."),
        ("time_limit_s", "10", "Task time limit must be a whole number from 30 to 28800."),
        ("default_priority", "101", "default_priority must be a whole number from 0 to 100."),
        ("deadline_s", "299", "A deadline may not be shorter than the task time limit (300 s)"),
        ("deadline_s", "soon", "deadline_seconds must be a whole number"),
        ("escalation_team", "reviewers", "The escalation team must be another team than the flow&#39;s own."),
    ],
)
def test_each_bad_field_gets_its_message(
    admin_console: AdminConsole, ready: Services, field: str, value: str, message: str
) -> None:
    response = _create(admin_console, 400, **{field: value})
    assert f'<span class="field-error" id="{field}-error">' in response.text
    assert message in response.text.split(f'id="{field}-error">', 1)[1].split("</span>", 1)[0]
    assert 'aria-invalid="true"' in response.text
    assert _flow_names(ready) == []


def test_several_bad_fields_are_reported_together(admin_console: AdminConsole, ready: Services) -> None:
    response = _create(admin_console, 400, title="", task_count="0", team="")
    assert "Some fields need a change" in response.text
    for field in ("title", "task_count", "team"):
        assert f'id="{field}-error"' in response.text
    assert 'value="Fix the boxes the detector drew"' in response.text  # what was typed comes back
    assert _flow_names(ready) == []


def test_a_taken_name_is_the_name_fields_problem(admin_console: AdminConsole, ready: Services) -> None:
    _create(admin_console)
    response = _create(admin_console, 409)
    assert "A flow definition named &#39;review&#39; exists already." in response.text.split('id="name-error">')[1]


def test_update_changes_only_loops_started_afterwards(admin_console: AdminConsole, ready: Services) -> None:
    _create(admin_console)
    with ready.db.write() as s:
        loops.start_loop(s, name="before", flow_name="review", input_content='{"x": 1}', now_ms=1_000)
    admin_console.get("/admin/flows/review")
    fields = {
        "title": "Check the boxes again",
        "description": "Fix them",
        "keywords": "",
        "task_count": "2",
        "availability_lifetime_s": "7200",
        "time_limit_s": "600",
    }
    response = admin_console.post("/admin/flows/review", fields={"csrf": admin_console.csrf(), **fields})
    assert response.headers["location"] == "/admin/flows/review?notice=saved"
    with ready.db.write() as s:
        loops.start_loop(s, name="after", flow_name="review", input_content='{"x": 2}', now_ms=2_000)
    with ready.db.read() as s:
        slots = {
            name: len(s.scalars(select(TaskSlot).where(TaskSlot.loop_id == loops.get_loop(s, name).id)).all())
            for name in ("before", "after")
        }
        expiry = {name: loops.get_loop(s, name).expires_at for name in ("before", "after")}
    assert slots == {"before": 1, "after": 2}
    assert expiry == {"before": 1_000 + 3_600_000, "after": 2_000 + 7_200_000}
    flow = _flow(ready)
    assert (flow.title, flow.time_limit_s, json.loads(flow.keywords)) == ("Check the boxes again", 600, [])
    assert flow.output_path == "s3://out/a2i"
    page = admin_console.get("/admin/flows/review")
    assert "Tasks waiting</dt><dd>3</dd>" in page


def test_update_refuses_bad_fields_and_changes_nothing(admin_console: AdminConsole, ready: Services) -> None:
    _create(admin_console)
    admin_console.get("/admin/flows/review")
    fields = {**{k: GOOD[k] for k in EDITABLE}, "time_limit_s": "99999", "description": ""}
    response = admin_console.post("/admin/flows/review", 400, fields={"csrf": admin_console.csrf(), **fields})
    assert "Task time limit must be a whole number from 30 to 28800." in response.text
    assert "Task description must be 1 to 255 characters long." in response.text
    assert 'value="99999"' in response.text
    assert _flow(ready).time_limit_s == 300
    with ready.db.write() as s, pytest.raises(ValidationError) as caught:
        flows.update_flow(s, "review", **{**_editable_values(), "task_count": 9})
    assert caught.value.details["fields"] == {"task_count": "TaskCount must be a whole number from 1 to 3."}
    admin_console.post("/admin/flows/nope", 404, fields={"csrf": admin_console.csrf(), **fields})


def test_consolidation_settings_through_the_form(admin_console: AdminConsole, ready: Services) -> None:
    _create(admin_console, task_count="3", consolidation="on", consolidation_quorum="3")
    flow = _flow(ready)
    assert (flow.consolidation, flow.consolidation_quorum) == (True, 3)
    page = admin_console.get("/admin/flows/review")
    assert '<option value="on" selected>On</option>' in page and 'name="consolidation_quorum" value="3"' in page
    fields = {**{k: GOOD[k] for k in EDITABLE}, "task_count": "2", "consolidation_quorum": "3"}
    response = admin_console.post("/admin/flows/review", 400, fields={"csrf": admin_console.csrf(), **fields})
    assert "Consolidation quorum must be a whole number from 1 to the task count (2)" in response.text
    assert _flow(ready).task_count == 3
    fields = {**fields, "consolidation": "auto", "consolidation_quorum": ""}
    admin_console.post("/admin/flows/review", fields={"csrf": admin_console.csrf(), **fields})
    flow = _flow(ready)
    assert (flow.task_count, flow.consolidation, flow.consolidation_quorum) == (2, None, None)
    assert flows.consolidation_settings(flow) == (True, 2)


def test_adaptive_settings_through_the_form(admin_console: AdminConsole, ready: Services) -> None:
    response = _create(admin_console, 400, adaptive="on", adaptive_model_agreement="2")
    assert "Adaptive reviewers need a task count of 2 to 3" in response.text
    assert "adaptive_model_agreement must be a number from 0 to 1" in response.text and _flow_names(ready) == []
    _create(admin_console, task_count="3", adaptive="on", adaptive_model_agreement="0.9")
    flow = _flow(ready)
    assert (flow.adaptive, flow.adaptive_model_agreement, flow.adaptive_worker_agreement) == (True, 0.9, None)
    page = admin_console.get("/admin/flows/review")
    assert '<option value="on" selected>On: one worker first' in page
    assert 'name="adaptive_model_agreement" value="0.9"' in page


def test_delete_is_refused_while_the_flow_has_loops(admin_console: AdminConsole, ready: Services) -> None:
    _create(admin_console)
    with ready.db.write() as s:
        loops.start_loop(s, name="open", flow_name="review", input_content="{}", now_ms=1_000)
    page = admin_console.get("/admin/flows/review")
    assert 'data-confirm="Delete the flow review?"' in page
    refused = admin_console.post("/admin/flows/review/delete", 409)
    assert "still has active human loops (for example &#39;open&#39;); stop them first." in refused.text
    with ready.db.write() as s:
        loops.stop_loop(s, "open", now_ms=2_000)
    refused = admin_console.post("/admin/flows/review/delete", 409)
    assert "still has human loops; delete them first." in refused.text
    assert _flow_names(ready) == ["review"]


def test_delete_a_flow_without_loops(admin_console: AdminConsole, ready: Services) -> None:
    _create(admin_console)
    admin_console.get("/admin/flows/review")
    response = admin_console.post("/admin/flows/review/delete")
    assert response.headers["location"] == "/admin/flows?notice=deleted"
    assert _flow_names(ready) == []
    assert "The flow was deleted." in admin_console.get("/admin/flows", notice="deleted")


def test_every_post_needs_the_csrf_token(admin_console: AdminConsole, ready: Services) -> None:
    _create(admin_console)
    http = admin_console.http
    assert http.post("/admin/flows", data={**GOOD, "name": "other", "csrf": "forged"}).status_code == 403
    assert http.post("/admin/flows/review", data={**GOOD, "title": "Hijacked", "csrf": "x"}).status_code == 403
    assert http.post("/admin/flows/review/delete", data={}).status_code == 403
    assert _flow_names(ready) == ["review"] and _flow(ready).title == "Check the boxes"


def _editable_values() -> dict[str, Any]:
    return {
        "title": "T",
        "description": "D",
        "keywords": [],
        "task_count": 1,
        "availability_lifetime_s": 60,
        "time_limit_s": 60,
    }


def test_the_flow_page_shows_and_changes_the_extra_origins_of_its_task_frames(
    admin_console: AdminConsole, ready: Services
) -> None:
    _create(admin_console, frame_origins="https://cdn.example.com")
    page = admin_console.get("/admin/flows/review")
    assert '<dd id="frame-origins"><code>https://cdn.example.com</code></dd>' in page
    admin_console.get("/admin/flows/review")
    fields = {**{k: GOOD[k] for k in EDITABLE}, "frame_origins": "https://a.example.com https://b.example.com:8443"}
    admin_console.post("/admin/flows/review", fields={"csrf": admin_console.csrf(), **fields})
    assert flows.frame_origins(_flow(ready)) == ["https://a.example.com", "https://b.example.com:8443"]
    page = admin_console.get("/admin/flows/review")
    assert "<code>https://a.example.com</code>, <code>https://b.example.com:8443</code>" in page
    bad = {**fields, "frame_origins": "http://plain.example.com"}
    response = admin_console.post("/admin/flows/review", 400, fields={"csrf": admin_console.csrf(), **bad})
    assert "is not a plain https origin" in response.text
    assert flows.frame_origins(_flow(ready)) == ["https://a.example.com", "https://b.example.com:8443"]


def test_priority_deadline_fallback_and_escalation_through_the_form(
    admin_console: AdminConsole, ready: Services
) -> None:
    with ready.db.write() as s:
        workforce.create_team(s, name="experts", description="Second opinion", now_ms=0)
    page = admin_console.get("/admin/flows/new")
    assert 'name="default_priority" value="50"' in page and '<option value="experts">experts</option>' in page
    settings = {
        "default_priority": "70",
        "deadline_s": "600",
        "fallback": "model",
        "escalation_team": "experts",
        "escalation_s": "900",
    }
    _create(admin_console, **settings)
    flow = _flow(ready)
    assert (flow.default_priority, flow.deadline_s, flow.fallback, flow.escalation_s) == (70, 600, "model", 900)
    page = admin_console.get("/admin/flows/review")
    assert '<option value="experts" selected>experts</option>' in page and 'value="900"' in page
    assert "then escalation to team" in page and 'id="escalation"' in page
    # 600 s of deadline and 3,000 s of escalation would end after the 3,600 s lifetime.
    fields = {**{k: GOOD[k] for k in EDITABLE}, **settings, "escalation_s": "3001"}
    response = admin_console.post("/admin/flows/review", 400, fields={"csrf": admin_console.csrf(), **fields})
    assert 'id="escalation_s-error"' in response.text and "(3000 s)" in response.text
    assert 'value="3001"' in response.text  # what was typed comes back
    assert _flow(ready).escalation_s == 900
    fields = {**fields, "escalation_team": "", "escalation_s": "", "deadline_s": ""}
    admin_console.post("/admin/flows/review", fields={"csrf": admin_console.csrf(), **fields})
    flow = _flow(ready)
    assert (flow.escalation_team_id, flow.escalation_s, flow.deadline_s) == (None, None, None)
