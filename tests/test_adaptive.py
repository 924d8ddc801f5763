"""Adaptive reviewers: the decision (plain unit tests), and loops through the HTTP API
(TestClient) on SQLite and PostgreSQL: one worker when the answer agrees with the model,
one more when it does not, never above the task count, bad settings refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from loopin.adaptive import decide, model_agreement
from loopin.client import Client
from loopin.models import HumanLoop, TaskSlot
from loopin.services import Services
from tests.helpers import admin_client, setup_flow, worker_client

PROPS = {"height": 400, "width": 600}


def box(label: str, left: int, top: int, width: int = 100, height: int = 80) -> dict[str, Any]:
    return {"height": height, "label": label, "left": left, "top": top, "width": width}


def answer(*boxes: dict[str, Any]) -> dict[str, Any]:
    return {"annotatedResult": {"boundingBoxes": list(boxes), "inputImageProperties": PROPS}}


CAR, BIKE, DOG = box("car", 100, 100), box("bicycle", 400, 250), box("dog", 10, 300)
LIMITS = {"task_count": 3, "model_limit": 0.8, "worker_limit": 0.6}


# -- the decision ---------------------------------------------------------------------


def test_one_answer_is_compared_with_the_model():
    assert model_agreement(answer(CAR, BIKE), [CAR, BIKE]) == 1.0
    assert model_agreement(answer(CAR), [CAR, BIKE]) == pytest.approx(2 / 3)
    assert model_agreement({"animal": {"label": "cat"}}, "cat") == 1.0
    assert model_agreement({"tags": {"labels": ["a", "b"]}}, ["a"]) == 0.5
    assert model_agreement(answer(CAR), None) is None
    assert model_agreement({"note": "free text"}, [CAR]) is None  # nothing comparable

    agreed = decide([("w1", answer(CAR, BIKE))], [CAR, BIKE], **LIMITS)
    assert (agreed.add, agreed.reason, agreed.model_agreement) == (False, "agreesWithModel", 1.0)
    disagreed = decide([("w1", answer(CAR))], [CAR, BIKE], **LIMITS)
    assert (disagreed.add, disagreed.reason) == (True, "disagreesWithModel")
    assert decide([("w1", answer(CAR))], None, **LIMITS).reason == "noPrediction"


def test_more_answers_are_compared_with_each_other_up_to_the_task_count():
    agree = decide([("w1", answer(CAR)), ("w2", answer(CAR))], [BIKE], **LIMITS)
    assert (agree.add, agree.reason, agree.worker_agreement) == (False, "workersAgree", 1.0)
    split = decide([("w1", answer(CAR)), ("w2", answer(DOG))], [CAR], **LIMITS)
    assert (split.add, split.reason) == (True, "workersDisagree")
    assert split.model_agreement == 0.0  # the newest answer against the model, for the record
    capped = decide([("w1", answer(CAR)), ("w2", answer(DOG)), ("w3", answer(BIKE))], [CAR], **LIMITS)
    assert (capped.add, capped.reason) == (False, "taskCountReached")
    assert decide([("w1", answer(CAR)), ("w2", answer(DOG))], [CAR], **{**LIMITS, "task_count": 2}).add is False


# -- loops through the API ------------------------------------------------------------


@pytest.fixture
def admin(app_client: TestClient, access_key: tuple[str, str]) -> Client:
    return admin_client(app_client, access_key)


def adaptive_flow(admin: Client, *, task_count: int = 3) -> list[str]:
    emails = setup_flow(admin, workers=3, task_count=task_count)
    admin.update_flow("review", adaptive=True)
    return emails


def submit(app_client: TestClient, email: str, content: dict[str, Any]) -> bool:
    worker = worker_client(app_client, email)
    task = worker.next_task("review")
    if task is None:
        return False
    worker.submit(task.task_id, content)
    return True


def output(admin: Client, services: Services, name: str) -> dict[str, Any]:
    loop = admin.describe_loop(name)
    assert loop.status == "Completed" and loop.output_uri
    return json.loads(services.store.get(loop.output_uri))


def test_an_answer_that_agrees_with_the_model_completes_with_one_worker(admin, app_client, services):
    emails = adaptive_flow(admin)
    admin.start_loop("agree", flow="review", input={"taskObject": "s3://images/a.jpg", "initialValue": [CAR, BIKE]})
    assert submit(app_client, emails[0], answer(CAR, BIKE))
    doc = output(admin, services, "agree")
    assert len(doc["humanAnswers"]) == 1 and "consolidatedAnswer" not in doc
    assert doc["loopinAdaptive"] == {
        "decisions": [
            {
                "action": "completed",
                "answers": 1,
                "modelAgreement": 1.0,
                "reason": "agreesWithModel",
                "workerAgreement": None,
            }
        ],
        "modelAgreementLimit": 0.6,
        "taskCount": 3,
        "tasks": 1,
        "workerAgreementLimit": 0.4,
    }
    assert not submit(app_client, emails[1], answer(CAR))  # no task waits for anybody else


def test_disagreement_adds_a_task_for_another_worker_up_to_the_task_count(admin, app_client, services, admin_console):
    emails = adaptive_flow(admin)
    admin.start_loop(
        "split", flow="review", input={"taskObject": "s3://images/b.jpg", "initialValue": [CAR]}, priority=90
    )
    assert submit(app_client, emails[0], answer(DOG))  # disagrees with the model: one more task
    assert admin.describe_loop("split").status == "InProgress"
    assert not submit(app_client, emails[0], answer(DOG))  # never a second task of the same loop
    assert submit(app_client, emails[1], answer(BIKE))  # disagrees with the first: a third
    assert submit(app_client, emails[2], answer(CAR))  # the task count: done, whatever it says
    doc = output(admin, services, "split")
    assert [a["answerContent"] for a in doc["humanAnswers"]] == [answer(DOG), answer(BIKE), answer(CAR)]
    assert "consolidatedAnswer" in doc
    decisions = doc["loopinAdaptive"]["decisions"]
    assert [(d["answers"], d["action"], d["reason"]) for d in decisions] == [
        (1, "addedTask", "disagreesWithModel"),
        (2, "addedTask", "workersDisagree"),
        (3, "completed", "taskCountReached"),
    ]
    assert doc["loopinAdaptive"]["tasks"] == 3
    page = admin_console.get("/admin/loops/split")  # the admin sees why three workers were asked
    assert (
        "3 of 3 tasks asked · after 1 answer: one more task (disagreesWithModel)"
        " · after 2 answers: one more task (workersDisagree) · after 3 answers: done (taskCountReached)"
    ) in page
    with services.db.read() as session:
        loop_id = session.scalar(select(HumanLoop.id).where(HumanLoop.name == "split"))
        slots = session.scalars(select(TaskSlot).where(TaskSlot.loop_id == loop_id)).all()
        # The added tasks keep the first one's place in the queue (its priority) and escalation team.
        assert len({(s.queue_rank, s.escalation_team_id) for s in slots}) == 1 and len(slots) == 3

    # Two workers who agree stop the loop at two.
    admin.start_loop("two", flow="review", input={"taskObject": "s3://images/c.jpg", "initialValue": []})
    assert submit(app_client, emails[1], answer(CAR))
    assert submit(app_client, emails[2], answer(CAR))
    assert [d["reason"] for d in output(admin, services, "two")["loopinAdaptive"]["decisions"]] == [
        "disagreesWithModel",
        "workersAgree",
    ]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # validation: no SQL of its own
def test_inconsistent_adaptive_settings_are_refused_and_nothing_changes(admin, app_client, admin_headers):
    setup_flow(admin, task_count=1)
    base = {
        "name": "other",
        "team": "MyTeam",
        "task_ui": "boxes",
        "title": "t",
        "description": "d",
        "output_path": "s3://review-bucket/other",
    }
    refused = [
        ({**base, "adaptive": True}, "adaptive"),  # task count 1: nobody to add
        ({**base, "task_count": 2, "adaptive": True, "adaptive_model_agreement": 1.5}, "adaptive_model_agreement"),
        ({**base, "task_count": 2, "adaptive_worker_agreement": 0.5}, "adaptive_worker_agreement"),  # adaptive off
    ]
    for body, field in refused:
        response = app_client.post("/api/v1/flows", json=body, headers=admin_headers)
        assert response.status_code == 400, body
        error = response.json()["error"]
        assert error["code"] == "ValidationException" and field in error["details"]["fields"]
    assert [f["name"] for f in app_client.get("/api/v1/flows", headers=admin_headers).json()] == ["review"]

    flow = app_client.patch(
        "/api/v1/flows/review", json={"task_count": 2, "adaptive": True}, headers=admin_headers
    ).json()
    assert (flow["adaptive"], flow["adaptive_model_agreement"], flow["adaptive_worker_agreement"]) == (True, 0.6, 0.4)
    response = app_client.patch("/api/v1/flows/review", json={"task_count": 1}, headers=admin_headers)
    assert response.status_code == 400 and "adaptive" in response.json()["error"]["details"]["fields"]
    flow = app_client.patch(
        "/api/v1/flows/review", json={"adaptive_model_agreement": 0.9}, headers=admin_headers
    ).json()
    assert (flow["task_count"], flow["adaptive_model_agreement"]) == (2, 0.9)
    flow = app_client.patch("/api/v1/flows/review", json={"adaptive": False}, headers=admin_headers).json()
    assert (flow["adaptive"], flow["adaptive_model_agreement"]) == (False, None)
