"""Escalation to a second team before the fallback (docs/deadlines.md), through the SDK,
the worker API and the admin console with a manual clock, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from html import unescape
from typing import Any

import pytest
from fastapi.testclient import TestClient

from loopin.background import run_once
from loopin.clock import ManualClock
from loopin.errors import NotFoundError, ResourceInUseError, TaskStateError, ValidationError
from loopin.events import eventbridge, events_after
from loopin.services import Services
from tests.admin_support import AdminConsole
from tests.helpers import PASSWORD, admin_client, setup_flow, worker_client

BOXES = [{"label": "cat", "left": 10, "top": 20, "width": 30, "height": 40}]
INPUT = {"taskObject": "s3://images/cat.jpg", "labels": ["cat", "dog"], "initialValue": BOXES}
ANSWER = {"annotatedResult": {"boundingBoxes": BOXES}}
EXPERT = "expert@experts.example"


@pytest.fixture
def admin(app_client: TestClient, access_key: tuple[str, str]):
    return admin_client(app_client, access_key)


def _escalating_flow(admin, *, workers: int = 1, fallback: str = "model") -> list[str]:
    """Flow 'review' of team MyTeam (time limit 60 s, lifetime 3600 s) with a deadline of
    120 s, then escalation to team Experts (one worker) for 300 s."""
    emails = setup_flow(admin, workers=workers)
    admin.create_team("Experts", description="Second opinion")
    admin.create_worker(EXPERT, teams=["Experts"], password=PASSWORD)
    flow = admin.update_flow(
        "review", deadline_seconds=120, fallback=fallback, escalation_team="Experts", escalation_seconds=300
    )
    assert (flow.escalation_team, flow.escalation_seconds) == ("Experts", 300)
    return emails


def _output(services: Services, admin, name: str) -> dict[str, Any]:
    loop = admin.describe_loop(name)
    assert loop.output_uri, loop
    doc: dict[str, Any] = json.loads(services.store.get(loop.output_uri))
    return doc


def _events(services: Services, name: str) -> list[dict[str, Any]]:
    with services.db.read() as s:
        return [eventbridge(e, region="us-east-1", account_id="0")["detail"] for e in events_after(s, 0, loop=name)]


def test_after_the_deadline_the_second_team_answers_first_in_its_queue(
    admin, app_client, services: Services, clock: ManualClock, admin_console: AdminConsole
):
    emails = _escalating_flow(admin)
    admin.start_loop("urgent", flow="review", input={**INPUT, "n": "urgent"}, priority=0)
    expert = worker_client(app_client, EXPERT)
    own = worker_client(app_client, emails[0])
    # Before the escalation the second team sees nothing of the flow.
    assert expert.jobs() == [] and expert.next_task() is None
    with pytest.raises(NotFoundError):
        expert.next_task(flow="review")
    assert "No jobs yet" in _worker_jobs_page(app_client, EXPERT)

    clock.advance(120)
    assert run_once(services)["deadline_fallbacks"] == 1  # escalated, not finished
    loop = admin.describe_loop("urgent")
    assert loop.status == "InProgress" and loop.fallback is None
    assert loop.escalation == {
        "team": "Experts",
        "trigger": "deadline",
        "reason": "The deadline (120 s after the start) passed before all answers were in.",
        "time": "2026-01-01T00:02:00.000Z",
        "endsAt": "2026-01-01T00:07:00.000Z",
        "escalationSeconds": 300,
    }
    assert run_once(services)["deadline_fallbacks"] == 0  # a loop escalates once
    events = _events(services, "urgent")
    assert [(e["humanLoopStatus"], e.get("loopinEscalation")) for e in events] == [
        ("InProgress", None),
        ("InProgress", loop.escalation),
    ]

    # Both teams may answer now; the escalated loop is served before newer urgent work.
    admin.start_loop("fresh", flow="review", input={**INPUT, "n": "fresh"}, priority=100)
    jobs = expert.jobs()
    assert [(j.flow, j.tasks_waiting, j.escalated) for j in jobs] == [("review", 1, True)]
    assert [(j.flow, j.tasks_waiting, j.escalated) for j in own.jobs()] == [("review", 2, False)]
    assert "Escalated to your team" in _worker_jobs_page(app_client, EXPERT)
    task = own.next_task()
    assert task is not None and task.input["n"] == "urgent"
    own.release(task.task_id)

    task = expert.next_task(flow="review")
    assert task is not None and task.input["n"] == "urgent"
    assert expert.next_task() is not None and expert.get_task(task.task_id).task_id == task.task_id  # holds it
    clock.advance(30)
    expert.submit(task.task_id, ANSWER)
    loop = admin.describe_loop("urgent")
    assert loop.status == "Completed" and loop.fallback is None
    doc = _output(services, admin, "urgent")
    assert [a["answerContent"] for a in doc["humanAnswers"]] == [ANSWER]
    assert doc["loopinEscalation"] == loop.escalation and "loopinFallback" not in doc
    assert _events(services, "urgent")[-1]["loopinEscalation"] == loop.escalation
    # The escalation is over: the second team no longer sees the flow, the first still does.
    assert expert.jobs() == [] and expert.next_task() is None
    assert [j.tasks_waiting for j in own.jobs()] == [1]

    page = admin_console.get("/admin/loops/urgent")
    assert "Escalation" in page and "to team <a" in page and "Experts" in page
    assert "2026-01-01 00:02:00" in page and "2026-01-01 00:07:00" in page


def _worker_jobs_page(app_client: TestClient, email: str) -> str:
    """The worker console's jobs page as the worker sees it (a browser of its own)."""
    http = TestClient(app_client.app, base_url="http://testserver")
    page = http.get("/worker/sign-in").text
    csrf = unescape(re.search(r'name="csrf" value="([^"]+)"', page).group(1))  # type: ignore[union-attr]
    jobs = http.post("/worker/sign-in", data={"csrf": csrf, "email": email, "password": PASSWORD})
    assert jobs.status_code == 200 and str(jobs.url).endswith("/worker/jobs"), jobs.text[:300]
    return jobs.text


def test_when_all_declined_it_escalates_at_once_and_then_falls_back_when_all_declined(
    admin, app_client, services: Services, clock: ManualClock, admin_console: AdminConsole
):
    emails = _escalating_flow(admin, workers=2)
    admin.start_loop("unwanted", flow="review", input=INPUT)
    first, second = (worker_client(app_client, e) for e in emails)
    for worker in (first, second):
        task = worker.next_task()
        assert task is not None
        clock.advance(5)
        worker.decline(task.task_id)
    loop = admin.describe_loop("unwanted")
    assert loop.status == "InProgress" and loop.escalation is not None
    assert loop.escalation["trigger"] == "allDeclined"
    assert loop.escalation["reason"] == "Every active worker of the flow's team who had not answered declined the task."
    assert loop.escalation["endsAt"] == "2026-01-01T00:05:10.000Z"  # 300 s after the second decline
    expert = worker_client(app_client, EXPERT)
    task = expert.next_task()
    assert task is not None
    clock.advance(5)
    expert.decline(task.task_id)  # nobody left in either team: the fallback answers at once
    loop = admin.describe_loop("unwanted")
    assert loop.status == "Completed" and loop.fallback is not None
    assert (loop.fallback["kind"], loop.fallback["trigger"]) == ("model", "allDeclined")
    assert "escalation team" in loop.fallback["reason"]
    assert loop.declined_by == [*emails, EXPERT]
    doc = _output(services, admin, "unwanted")
    assert doc["loopinEscalation"]["trigger"] == "allDeclined" and doc["loopinFallback"]["kind"] == "model"
    page = admin_console.get("/admin/loops/unwanted")
    assert "Declined by" in page and all(e in page for e in [*emails, EXPERT]) and "Escalation" in page


def test_when_the_escalation_time_runs_out_the_model_answers(admin, app_client, services: Services, clock: ManualClock):
    _escalating_flow(admin)
    admin.start_loop("slow", flow="review", input=INPUT)
    clock.advance(120)
    run_once(services)
    expert = worker_client(app_client, EXPERT)
    clock.advance(250)
    task = expert.next_task()  # held when the escalation ends
    assert task is not None
    clock.advance(49.999)
    assert run_once(services)["deadline_fallbacks"] == 0
    clock.advance(0.001)
    assert run_once(services)["deadline_fallbacks"] == 1
    assert run_once(services)["deadline_fallbacks"] == 0
    with pytest.raises(TaskStateError):
        expert.submit(task.task_id, ANSWER)
    loop = admin.describe_loop("slow")
    assert loop.status == "Completed"
    doc = _output(services, admin, "slow")
    assert doc["humanAnswers"] == []
    assert doc["loopinEscalation"]["team"] == "Experts"
    fallback = doc["loopinFallback"]
    assert (fallback["kind"], fallback["trigger"]) == ("model", "escalationEnded")
    assert fallback["reason"] == "The escalation to team 'Experts' (300 s) ended before all answers were in."
    assert fallback["time"] == "2026-01-01T00:07:00.000Z"
    assert fallback["modelAnswer"]["boundingBoxes"] == BOXES
    statuses = [e["humanLoopStatus"] for e in _events(services, "slow")]
    assert statuses == ["InProgress", "InProgress", "Completed"]
    assert expert.jobs() == []


def test_a_worker_leaving_runs_the_all_declined_check_at_once(admin, app_client):
    emails = setup_flow(admin, workers=3)
    admin.update_flow("review", fallback="model")  # no deadline: only the declines end these loops
    for name in ("disabled", "removed", "left-team"):
        admin.start_loop(name, flow="review", input={**INPUT, "n": name})
    w0 = worker_client(app_client, emails[0])
    while (task := w0.next_task()) is not None:
        w0.decline(task.task_id)
    assert {loop.status for loop in admin.list_loops().loops} == {"InProgress"}
    admin.set_worker_status(emails[1], "disabled")  # worker 2 may still answer every loop
    assert {loop.status for loop in admin.list_loops().loops} == {"InProgress"}
    admin.remove_team_member("MyTeam", emails[2])  # the last eligible worker
    loops = {loop.name: loop for loop in admin.list_loops().loops}
    assert {loop.status for loop in loops.values()} == {"Completed"}
    assert {(loop.fallback or {}).get("trigger") for loop in loops.values()} == {"allDeclined"}


def test_the_last_worker_leaving_escalates_when_the_flow_escalates(admin, app_client):
    emails = _escalating_flow(admin, workers=2)
    admin.start_loop("left", flow="review", input=INPUT)
    w0 = worker_client(app_client, emails[0])
    task = w0.next_task()
    assert task is not None
    w0.decline(task.task_id)
    admin.remove_worker(emails[1])
    loop = admin.describe_loop("left")
    assert loop.status == "InProgress" and loop.escalation is not None
    assert loop.escalation["trigger"] == "allDeclined"
    admin.set_worker_status(EXPERT, "disabled")  # the escalation team's last worker too
    loop = admin.describe_loop("left")
    assert loop.status == "Completed" and loop.fallback is not None and loop.fallback["kind"] == "model"


# -- bad input -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"escalation_team": "Nobody", "escalation_seconds": 300}, "escalation_team"),
        ({"escalation_team": "MyTeam", "escalation_seconds": 300}, "escalation_team"),
        ({"escalation_team": "Experts", "escalation_seconds": 59}, "escalation_s"),  # under the 60 s time limit
        ({"escalation_team": "Experts", "escalation_seconds": 3481}, "escalation_s"),  # 120 + 3481 > 3600
        ({"escalation_team": "Experts"}, "escalation_s"),
        ({"escalation_seconds": 300}, "escalation_team"),
        ({"escalation_team": "Experts", "escalation_seconds": 300, "deadline_seconds": 0}, "deadline_s"),
    ],
)
def test_bad_escalation_settings_name_the_field_and_change_nothing(admin, app_client, admin_headers, changes, field):
    setup_flow(admin, workers=1)
    admin.create_team("Experts", description="Second opinion")
    create = {"deadline_seconds": 120, **changes}
    body = {
        "name": "other",
        "team": "MyTeam",
        "task_ui": "boxes",
        "title": "t",
        "description": "d",
        "output_path": "s3://b/p",
        "time_limit_seconds": 60,
        "availability_lifetime_seconds": 3600,
        **create,
    }
    response = app_client.post("/api/v1/flows", json=body, headers=admin_headers)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "ValidationException" and field in error["details"]["fields"]
    assert [f.name for f in admin.list_flows()] == ["review"]
    admin.update_flow("review", deadline_seconds=120)
    with pytest.raises(ValidationError) as raised:
        admin.update_flow("review", **changes)
    assert field in raised.value.details["fields"]
    flow = admin.get_flow("review")
    assert (flow.escalation_team, flow.escalation_seconds, flow.deadline_seconds) == (None, None, 120)


def test_an_escalation_team_cannot_be_deleted_and_the_escalation_can_be_removed(admin):
    _escalating_flow(admin)
    with pytest.raises(ResourceInUseError) as raised:
        admin.delete_team("Experts")
    assert "escalation team of flow definition(s) review" in raised.value.message
    with pytest.raises(ValidationError):
        admin.update_flow("review", deadline_seconds=0)  # the escalation needs it
    flow = admin.update_flow("review", escalation_team="")
    assert (flow.escalation_team, flow.escalation_seconds) == (None, None)
    admin.update_flow("review", deadline_seconds=0)
    admin.delete_team("Experts")
    assert [t.name for t in admin.list_teams()] == ["MyTeam"]
