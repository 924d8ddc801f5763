"""Deadlines, fallbacks, declines and priorities (docs/deadlines.md), through the SDK with
a manual clock, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from loopin.background import run_once
from loopin.clock import ManualClock
from loopin.deadlines import fall_back_overdue
from loopin.errors import TaskStateError, ValidationError
from loopin.events import eventbridge, events_after
from loopin.loops import PRIORITY_POINT_MS
from loopin.models import Prediction
from loopin.services import Services
from tests.admin_support import AdminConsole
from tests.helpers import admin_client, setup_flow, worker_client

BOXES = [{"label": "cat", "left": 10, "top": 20, "width": 30, "height": 40}]
INPUT = {"taskObject": "s3://images/cat.jpg", "labels": ["cat", "dog"], "initialValue": BOXES}
ANSWER = {"annotatedResult": {"boundingBoxes": BOXES}}


@pytest.fixture
def admin(app_client: TestClient, access_key: tuple[str, str]):
    return admin_client(app_client, access_key)


def _output(services: Services, admin, name: str) -> dict[str, Any]:
    loop = admin.describe_loop(name)
    assert loop.output_uri, loop
    doc: dict[str, Any] = json.loads(services.store.get(loop.output_uri))
    return doc


def _events(services: Services, name: str) -> list[dict[str, Any]]:
    with services.db.read() as s:
        return [eventbridge(e, region="us-east-1", account_id="0")["detail"] for e in events_after(s, 0, loop=name)]


# -- priorities ----------------------------------------------------------------------


def test_workers_get_the_most_urgent_then_the_oldest_task(admin, app_client, clock: ManualClock):
    emails = setup_flow(admin, workers=1)
    admin.update_flow("review", default_priority=20)
    for name, priority in [("old-default", None), ("urgent", 90), ("mid", 50), ("urgent-later", 90), ("low", 0)]:
        clock.advance(1)
        admin.start_loop(name, flow="review", input={**INPUT, "n": name}, priority=priority)
    assert admin.describe_loop("old-default").priority == 20
    assert _served(app_client, emails[0]) == ["urgent", "urgent-later", "mid", "old-default", "low"]


def _served(app_client: TestClient, email: str) -> list[str]:
    """The loops a worker is given, in order (each answered before taking the next)."""
    worker = worker_client(app_client, email)
    order = []
    while (task := worker.next_task()) is not None:
        order.append(task.input["n"])
        worker.submit(task.task_id, ANSWER)
    return order


def test_a_low_priority_loop_is_overtaken_only_within_the_ageing_window(admin, app_client, clock: ManualClock):
    emails = setup_flow(admin, workers=1, availability=864_000)
    window_ms = 100 * PRIORITY_POINT_MS  # priority 0 against 100: one hour
    assert window_ms == 3_600_000
    admin.start_loop("low", flow="review", input={**INPUT, "n": "low"}, priority=0)
    clock.advance((window_ms - 1000) / 1000)
    admin.start_loop("urgent-within", flow="review", input={**INPUT, "n": "urgent-within"}, priority=100)
    clock.advance(2)  # now 1 s past the window
    admin.start_loop("urgent-after", flow="review", input={**INPUT, "n": "urgent-after"}, priority=100)
    assert _served(app_client, emails[0]) == ["urgent-within", "low", "urgent-after"]


def test_a_near_deadline_goes_ahead_of_later_urgent_work(admin, app_client, clock: ManualClock):
    emails = setup_flow(admin, workers=1, flow="fast", team="Fast", time_limit=60)
    admin.update_flow("fast", deadline_seconds=600, fallback="fail")
    admin.start_loop("due-soon", flow="fast", input=INPUT, priority=0)
    # Ranked as a priority-100 loop started at (deadline - time limit) = +540 s.
    clock.advance(541)
    admin.start_loop("urgent-later", flow="fast", input=INPUT, priority=100)
    worker = worker_client(app_client, emails[0])
    task = worker.next_task()
    assert task is not None
    worker.submit(task.task_id, ANSWER)
    assert admin.describe_loop("due-soon").status == "Completed"
    assert admin.describe_loop("urgent-later").status == "InProgress"


# -- deadlines -----------------------------------------------------------------------


def test_answered_in_time_is_an_ordinary_completion(admin, app_client, services: Services, clock: ManualClock):
    emails = setup_flow(admin, workers=1)
    flow = admin.update_flow("review", deadline_seconds=120, fallback="model")
    assert (flow.deadline_seconds, flow.fallback) == (120, "model")
    admin.start_loop("in-time", flow="review", input=INPUT)
    assert admin.describe_loop("in-time").deadline == "2026-01-01T00:02:00.000Z"
    worker = worker_client(app_client, emails[0])
    task = worker.next_task()
    assert task is not None
    clock.advance(50)
    worker.submit(task.task_id, ANSWER)
    clock.advance(100)
    assert run_once(services)["deadline_fallbacks"] == 0
    doc = _output(services, admin, "in-time")
    assert "loopinFallback" not in doc and len(doc["humanAnswers"]) == 1
    assert admin.describe_loop("in-time").fallback is None
    assert all("loopinFallback" not in e for e in _events(services, "in-time"))


def test_deadline_falls_back_to_the_models_prediction(admin, services: Services, clock: ManualClock):
    setup_flow(admin, workers=1)
    admin.update_flow("review", deadline_seconds=120, fallback="model")
    admin.start_loop("nobody-came", flow="review", input=INPUT)
    clock.advance(119.999)
    assert run_once(services)["deadline_fallbacks"] == 0
    assert admin.describe_loop("nobody-came").status == "InProgress"
    clock.advance(0.001)
    assert run_once(services)["deadline_fallbacks"] == 1
    assert run_once(services)["deadline_fallbacks"] == 0  # idempotent
    loop = admin.describe_loop("nobody-came")
    assert loop.status == "Completed" and loop.failure_code is None
    doc = _output(services, admin, "nobody-came")
    assert doc["humanAnswers"] == []
    assert doc["inputContent"] == INPUT
    assert doc["loopinFallback"] == {
        "kind": "model",
        "trigger": "deadline",
        "reason": "The deadline (120 s after the start) passed before all answers were in.",
        "time": "2026-01-01T00:02:00.000Z",
        "answersReceived": 0,
        "answersWanted": 1,
        "modelAnswer": {"source": "inputContent.initialValue", "boundingBoxes": BOXES},
    }
    assert loop.fallback == doc["loopinFallback"]
    statuses = [(e["humanLoopStatus"], e.get("loopinFallback")) for e in _events(services, "nobody-came")]
    assert statuses == [("InProgress", None), ("Completed", doc["loopinFallback"])]


def test_without_prefilled_boxes_the_model_answer_comes_from_the_prediction_log(
    admin, services: Services, clock: ManualClock
):
    setup_flow(admin, workers=1)
    admin.update_flow("review", deadline_seconds=60, fallback="model")
    detections = [
        {"class_index": 15, "label": "cat", "score": 0.9, "left": 1.2, "top": 2.0, "right": 11.0, "bottom": 22.4},
        {"class_index": 16, "label": "dog", "score": 0.3, "left": 5.0, "top": 5.0, "right": 9.0, "bottom": 9.0},
    ]
    with services.db.write() as s:
        s.add(
            Prediction(
                endpoint_name="detector",
                model_name="nanodet",
                image_sha256="0" * 64,
                image_width=100,
                image_height=100,
                detections=json.dumps(detections),
                flow_name="review",
                threshold=0.5,
                routed_reason="low-confidence",
                loop_name="logged",
                response="{}",
                created_at=clock.now_ms(),
            )
        )
    admin.start_loop("logged", flow="review", input={"taskObject": "s3://images/x.jpg"})
    clock.advance(60)
    run_once(services)
    answer = _output(services, admin, "logged")["loopinFallback"]["modelAnswer"]
    assert answer["source"] == "predictionLog" and answer["predictionId"] >= 1
    assert (answer["endpointName"], answer["modelName"]) == ("detector", "nanodet")
    assert answer["boundingBoxes"] == [{"label": "cat", "left": 1, "top": 2, "width": 10, "height": 20, "score": 0.9}]


def test_deadline_falls_back_to_the_partial_answers_and_withdraws_held_tasks(
    admin, app_client, services: Services, clock: ManualClock
):
    emails = setup_flow(admin, workers=3, task_count=3)
    admin.update_flow("review", deadline_seconds=300, fallback="fail")
    admin.start_loop("half-done", flow="review", input=INPUT)
    first, second = (worker_client(app_client, e) for e in emails[:2])
    task1 = first.next_task()
    assert task1 is not None
    clock.advance(10)
    first.submit(task1.task_id, {"by": "first"})
    clock.advance(260)
    task2 = second.next_task()  # held when the deadline passes
    assert task2 is not None
    clock.advance(30)
    assert run_once(services)["deadline_fallbacks"] == 1
    with pytest.raises(TaskStateError):
        second.submit(task2.task_id, {"by": "second, too late"})
    assert worker_client(app_client, emails[2]).next_task() is None
    doc = _output(services, admin, "half-done")
    assert [a["answerContent"] for a in doc["humanAnswers"]] == [{"by": "first"}]
    assert doc["loopinFallback"]["kind"] == "partialAnswers"
    assert (doc["loopinFallback"]["answersReceived"], doc["loopinFallback"]["answersWanted"]) == (1, 3)
    assert admin.describe_loop("half-done").status == "Completed"


def test_fallback_fail_or_no_prediction_fails_the_loop(admin, services: Services, clock: ManualClock):
    setup_flow(admin, workers=1)
    admin.update_flow("review", deadline_seconds=60, fallback="fail")
    admin.start_loop("fails", flow="review", input=INPUT)
    clock.advance(61)
    assert run_once(services)["deadline_fallbacks"] == 1
    admin.update_flow("review", fallback="model")
    admin.start_loop("no-boxes", flow="review", input={"taskObject": "s3://images/x.jpg"})
    admin.update_flow("review", deadline_seconds=0)  # no deadline for loops started from now
    admin.start_loop("no-deadline", flow="review", input=INPUT)
    clock.advance(61)
    assert run_once(services)["deadline_fallbacks"] == 1
    for name in ("fails", "no-boxes"):
        loop = admin.describe_loop(name)
        assert (loop.status, loop.failure_code, loop.output_uri) == ("Failed", "Expired", None)
        assert loop.fallback is not None and loop.fallback["kind"] == "fail"
    assert "no model prediction" in (admin.describe_loop("no-boxes").failure_reason or "")
    assert admin.describe_loop("no-deadline").status == "InProgress"
    assert _events(services, "no-boxes")[-1]["loopinFallback"]["kind"] == "fail"


def test_several_runners_fall_back_once(admin, services: Services, clock: ManualClock):
    setup_flow(admin, workers=1)
    admin.update_flow("review", deadline_seconds=60, fallback="model")
    for i in range(5):
        admin.start_loop(f"due-{i}", flow="review", input=INPUT)
    clock.advance(60)
    with services.db.write() as one, services.db.write() as other:
        if services.db.engine.dialect.name == "sqlite":
            done = fall_back_overdue(one, now_ms=clock.now_ms(), limit=3)
        else:  # PostgreSQL: the second runner skips the rows the first has locked
            done = fall_back_overdue(one, now_ms=clock.now_ms(), limit=3)
            done += fall_back_overdue(other, now_ms=clock.now_ms())
    assert run_once(services)["deadline_fallbacks"] == 5 - done
    assert run_once(services)["deadline_fallbacks"] == 0
    assert {loop.status for loop in admin.list_loops().loops} == {"Completed"}
    assert all(len(_events(services, f"due-{i}")) == 2 for i in range(5))


# -- declines ------------------------------------------------------------------------


def test_when_every_worker_declined_the_fallback_answers_at_once(
    admin, app_client, services: Services, clock: ManualClock, admin_console: AdminConsole
):
    emails = setup_flow(admin, workers=2)
    admin.update_flow("review", fallback="model")  # no deadline: only the declines end it
    admin.start_loop("unwanted", flow="review", input=INPUT)
    first, second = (worker_client(app_client, e) for e in emails)
    task = first.next_task()
    assert task is not None
    clock.advance(5)
    first.decline(task.task_id)
    assert admin.describe_loop("unwanted").status == "InProgress"
    task = second.next_task()
    assert task is not None
    clock.advance(5)
    second.decline(task.task_id)
    loop = admin.describe_loop("unwanted")
    assert loop.status == "Completed"  # written right after the decline's commit
    assert loop.declined_by == emails
    doc = _output(services, admin, "unwanted")
    assert doc["loopinFallback"]["kind"] == "model" and doc["loopinFallback"]["trigger"] == "allDeclined"
    page = admin_console.get("/admin/loops/unwanted")
    assert "Declined by" in page and all(e in page for e in emails)
    assert "answered by the model&#39;s prediction" in page or "answered by the model's prediction" in page


def test_declines_after_an_answer_complete_with_the_partial_answers(admin, app_client, services: Services):
    emails = setup_flow(admin, workers=3, task_count=2)
    admin.start_loop("one-answer", flow="review", input=INPUT)
    w0, w1, w2 = (worker_client(app_client, e) for e in emails)
    t1 = w1.next_task()
    assert t1 is not None
    w1.decline(t1.task_id)
    t0, t2 = w0.next_task(), w2.next_task()
    assert t0 is not None and t2 is not None
    w2.decline(t2.task_id)  # w0 still holds a task: not yet
    assert admin.describe_loop("one-answer").status == "InProgress"
    w0.submit(t0.task_id, {"by": "w0"})  # one answer of two, and nobody left to give the other
    loop = admin.describe_loop("one-answer")
    assert loop.status == "Completed" and loop.fallback is not None
    assert loop.fallback["kind"] == "partialAnswers" and loop.fallback["trigger"] == "allDeclined"
    assert [a["answerContent"] for a in _output(services, admin, "one-answer")["humanAnswers"]] == [{"by": "w0"}]


def test_a_disabled_worker_is_not_waited_for_but_a_fresh_one_is(admin, app_client):
    emails = setup_flow(admin, workers=3)
    admin.set_worker_status(emails[2], "disabled")
    admin.start_loop("two-left", flow="review", input=INPUT)
    w0 = worker_client(app_client, emails[0])
    task = w0.next_task()
    assert task is not None
    w0.decline(task.task_id)
    assert admin.describe_loop("two-left").status == "InProgress"  # worker 1 may still answer
    w1 = worker_client(app_client, emails[1])
    task = w1.next_task()
    assert task is not None
    w1.decline(task.task_id)
    loop = admin.describe_loop("two-left")
    assert loop.status == "Failed" and loop.failure_code == "Expired"  # fallback 'fail', no answer


# -- bad input -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"deadline_seconds": 59}, "deadline_s"),  # shorter than the 60 s task time limit
        ({"deadline_seconds": 3601}, "deadline_s"),  # after the availability lifetime
        ({"deadline_seconds": -5}, "deadline_s"),
        ({"default_priority": 101}, "default_priority"),
        ({"default_priority": -1}, "default_priority"),
    ],
)
def test_bad_flow_settings_are_validation_errors_and_change_nothing(admin, changes, field):
    setup_flow(admin, workers=1)
    with pytest.raises(ValidationError) as raised:
        admin.create_flow(
            "other",
            team="MyTeam",
            task_ui="boxes",
            title="t",
            description="d",
            output_path="s3://b/p",
            time_limit_seconds=60,
            availability_lifetime_seconds=3600,
            **changes,
        )
    assert raised.value.code == "ValidationException" and field in raised.value.details["fields"]
    assert [f.name for f in admin.list_flows()] == ["review"]
    with pytest.raises(ValidationError) as raised:
        admin.update_flow("review", **changes)
    assert field in raised.value.details["fields"]
    flow = admin.get_flow("review")
    assert (flow.deadline_seconds, flow.default_priority, flow.fallback) == (None, 50, "fail")


def test_bad_fallback_and_priorities_name_the_field(admin, app_client, admin_headers):
    setup_flow(admin, workers=1)
    response = app_client.patch("/api/v1/flows/review", json={"fallback": "guess"}, headers=admin_headers)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "ValidationException" and "fallback" in response.text
    for priority in (101, -1, 2.5):
        response = app_client.post(
            "/api/v1/loops",
            json={"name": "p", "flow": "review", "input": INPUT, "priority": priority},
            headers=admin_headers,
        )
        assert response.status_code == 400, priority
        assert response.json()["error"]["code"] == "ValidationException" and "priority" in response.text
    assert admin.list_loops().loops == []
    with pytest.raises(ValidationError):
        admin.update_flow("review", time_limit_seconds=120, deadline_seconds=90)


# -- the service-level view ----------------------------------------------------------


def test_the_flow_page_shows_the_service_level(
    admin, app_client, services: Services, clock: ManualClock, admin_console: AdminConsole
):
    emails = setup_flow(admin, workers=1)
    admin.update_flow("review", deadline_seconds=120, fallback="model")
    admin.start_loop("answered", flow="review", input=INPUT)
    admin.start_loop("fell-back", flow="review", input=INPUT)
    worker = worker_client(app_client, emails[0])
    task = worker.next_task()
    assert task is not None
    clock.advance(30)
    worker.submit(task.task_id, ANSWER)
    clock.advance(100)
    run_once(services)
    admin.start_loop("waiting", flow="review", input=INPUT)
    page = admin_console.get("/admin/flows/review")
    assert "Service level" in page and "Deadline 120 s" in page
    assert re.search(r"<dt>under 10 min</dt><dd>1</dd>", page)
    assert "50.0 %" in page and "1 of 2 with a deadline" in page
    assert "<dt>model</dt><dd>1</dd>" in page and "<dt>partial answers</dt><dd>0</dd>" in page
    assert '<p class="median-answer">30.0 s</p>' in page
    assert page.count('<rect class="people"') == 1 and page.count('<rect class="fallback"') == 1
