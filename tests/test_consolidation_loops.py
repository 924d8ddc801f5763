"""Consolidation in the loop lifecycle, through the SDK, on SQLite and PostgreSQL: the flow
settings, ``consolidatedAnswer`` in output.json and the summary in the Completed event."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from loopin.client import Client
from loopin.errors import ValidationError
from loopin.events import eventbridge, events_after
from loopin.services import Services
from tests.helpers import admin_client, setup_flow, worker_client

INPUT = {"taskObject": "s3://images/street.jpg", "labels": ["car", "bicycle"], "initialValue": []}
PROPS = {"height": 400, "width": 600}
HUMAN_ANSWER_KEYS = {
    "acceptanceTime",
    "answerContent",
    "submissionTime",
    "timeSpentInSeconds",
    "workerId",
    "workerMetadata",
}


def box(label: str, left: int, top: int, width: int, height: int) -> dict[str, Any]:
    return {"height": height, "label": label, "left": left, "top": top, "width": width}


def answer(*boxes: dict[str, Any]) -> dict[str, Any]:
    return {"annotatedResult": {"boundingBoxes": list(boxes), "inputImageProperties": PROPS}}


CAR = box("car", 100, 100, 200, 100)
BIKE = box("bicycle", 400, 250, 60, 40)


@pytest.fixture
def admin(app_client: TestClient, access_key: tuple[str, str]) -> Client:
    return admin_client(app_client, access_key)


def run_loop(admin: Client, app_client: TestClient, services: Services, emails: list[str], answers: list[dict]) -> dict:
    admin.start_loop("loop-1", flow="review", input=INPUT)
    for email, content in zip(emails, answers, strict=False):
        worker = worker_client(app_client, email)
        task = worker.next_task("review")
        assert task is not None
        worker.submit(task.task_id, content)
    loop = admin.describe_loop("loop-1")
    assert loop.status == "Completed" and loop.output_uri
    return json.loads(services.store.get(loop.output_uri))


def test_flow_consolidation_defaults_follow_the_task_count(admin):
    setup_flow(admin, task_count=1)
    single = admin.get_flow("review")
    assert (single.consolidation, single.consolidation_quorum) == (False, 1)
    updated = admin.update_flow("review", task_count=3)
    assert (updated.consolidation, updated.consolidation_quorum) == (True, 2)
    assert (admin.update_flow("review", task_count=2).consolidation_quorum) == 2
    explicit = admin.update_flow("review", task_count=3, consolidation=False, consolidation_quorum=3)
    assert (explicit.consolidation, explicit.consolidation_quorum) == (False, 3)
    # Left out: stays. Explicit null in the PATCH: back to the default.
    assert admin.update_flow("review", title="New title").consolidation_quorum == 3
    admin.update_flow("review", consolidation=True)
    assert admin.get_flow("review").consolidation is True


def test_explicit_null_resets_to_the_default(admin, app_client, admin_headers):
    setup_flow(admin, task_count=3)
    admin.update_flow("review", consolidation=False, consolidation_quorum=3)
    response = app_client.patch(
        "/api/v1/flows/review", json={"consolidation": None, "consolidation_quorum": None}, headers=admin_headers
    )
    assert response.status_code == 200, response.text
    assert (response.json()["consolidation"], response.json()["consolidation_quorum"]) == (True, 2)


def test_the_client_sends_none_as_null_and_leaves_out_what_is_not_given(admin):
    setup_flow(admin, task_count=3)
    admin.update_flow("review", consolidation=False, consolidation_quorum=3, deadline_seconds=600)
    admin.update_flow("review", adaptive=True, adaptive_model_agreement=0.9, adaptive_worker_agreement=0.8)
    kept = admin.update_flow("review", title="Kept")
    assert (kept.consolidation, kept.consolidation_quorum, kept.deadline_seconds) == (False, 3, 600)
    assert (kept.adaptive_model_agreement, kept.adaptive_worker_agreement) == (0.9, 0.8)
    reset = admin.update_flow("review", consolidation=None, consolidation_quorum=None, adaptive_model_agreement=None)
    assert (reset.consolidation, reset.consolidation_quorum) == (True, 2)  # the defaults for three workers
    assert (reset.adaptive_model_agreement, reset.adaptive_worker_agreement) == (0.6, 0.8)
    # Null keeps the fields that have no default to go back to; the deadline goes with 0.
    assert admin.update_flow("review", title=None, deadline_seconds=None).deadline_seconds == 600
    assert admin.update_flow("review", deadline_seconds=0).deadline_seconds is None


@pytest.mark.parametrize("quorum", [0, -1, 4])
def test_a_bad_quorum_is_refused_and_nothing_is_written(admin, quorum):
    setup_flow(admin, task_count=1, flow="other")
    with pytest.raises(ValidationError) as caught:
        admin.create_flow(
            "review",
            team="MyTeam",
            task_ui="boxes",
            title="t",
            description="d",
            output_path="s3://bucket/out",
            task_count=3,
            consolidation_quorum=quorum,
        )
    assert caught.value.code == "ValidationException"
    assert "consolidation_quorum" in caught.value.details["fields"]
    assert "Consolidation quorum must be a whole number from 1 to the task count (3)" in caught.value.message
    assert [f.name for f in admin.list_flows()] == ["other"]


def test_a_quorum_above_a_lowered_task_count_is_refused_and_the_flow_stays(admin):
    setup_flow(admin, task_count=3)
    admin.update_flow("review", consolidation_quorum=3)
    with pytest.raises(ValidationError) as caught:
        admin.update_flow("review", task_count=2, title="Changed")
    assert caught.value.details["fields"] == {
        "consolidation_quorum": "Consolidation quorum must be a whole number from 1 to the task count (2): "
        "how many of the workers must agree on a box or a label for it to be kept."
    }
    flow = admin.get_flow("review")
    assert (flow.task_count, flow.title, flow.consolidation_quorum) == (3, "Check the boxes", 3)


def test_three_workers_one_spammer_consolidated_beside_untouched_human_answers(admin, app_client, services):
    emails = setup_flow(admin, workers=3, task_count=3)
    moved = {**CAR, "left": 104, "width": 196}
    spam = answer(box("car", 0, 0, 600, 400), box("bicycle", 10, 10, 20, 20))
    answers = [answer(CAR, BIKE), answer(moved, BIKE), spam]
    doc = run_loop(admin, app_client, services, emails, answers)

    assert [a["answerContent"] for a in doc["humanAnswers"]] == answers
    assert all(set(a) == HUMAN_ANSWER_KEYS for a in doc["humanAnswers"])
    ids = [a["workerId"] for a in doc["humanAnswers"]]
    consolidated = doc["consolidatedAnswer"]
    assert consolidated["answerContent"] == {
        "annotatedResult": {"boundingBoxes": [box("car", 102, 100, 198, 100), BIKE], "inputImageProperties": PROPS}
    }
    assert consolidated["method"] == {"annotatedResult": "weighted-box-fusion"}
    assert consolidated["workers"] == ids[:2]
    assert consolidated["quorum"] == 2 and consolidated["notConsolidated"] == {}
    objects = consolidated["perField"]["annotatedResult"]["objects"]
    assert [o["workers"] for o in objects] == [ids[:2], ids[:2]]
    assert 0 < consolidated["agreement"] < 1

    # The Completed event carries the summary for webhooks (an extension of A2I's detail).
    with services.db.read() as session:
        events = [e for e in events_after(session, 0, loop="loop-1") if e.status == "Completed"]
        assert len(events) == 1
        detail = eventbridge(events[0], region="us-east-1", account_id="000000000000")["detail"]
    assert detail["humanLoopStatus"] == "Completed" and detail["humanLoopOutput"]["outputS3Uri"]
    assert detail["consolidation"] == {
        "agreement": consolidated["agreement"],
        "notConsolidated": [],
        "workers": ids[:2],
    }


def test_the_event_stream_shows_the_consolidation_summary(admin, app_client, services, admin_headers):
    emails = setup_flow(admin, workers=2, task_count=2)
    run_loop(admin, app_client, services, emails, [answer(CAR), answer(CAR)])
    with services.db.read() as session:
        completed = [e for e in events_after(session, 0) if e.status == "Completed"][0]
        started = [e for e in events_after(session, 0) if e.status == "InProgress"][0]
        assert "consolidation" not in eventbridge(started, region="r", account_id="1")["detail"]
        assert eventbridge(completed, region="r", account_id="1")["detail"]["consolidation"]["agreement"] == 1.0


def test_answers_that_cannot_be_consolidated_still_complete_the_loop(admin, app_client, services):
    emails = setup_flow(admin, workers=2, task_count=2)
    polygon = {"polygons": [{"label": "car", "vertices": [{"x": 1, "y": 2}]}]}
    doc = run_loop(admin, app_client, services, emails, [{"shape": polygon}, {"shape": polygon}])
    consolidated = doc["consolidatedAnswer"]
    assert consolidated["answerContent"] == {} and consolidated["agreement"] is None
    assert "polygons" in consolidated["notConsolidated"]["shape"]
    assert len(doc["humanAnswers"]) == 2


def test_no_consolidated_answer_with_one_worker_or_when_switched_off(admin, app_client, services):
    emails = setup_flow(admin, workers=2, task_count=1)
    doc = run_loop(admin, app_client, services, emails, [answer(CAR)])
    assert set(doc) == {"flowDefinitionArn", "humanAnswers", "humanLoopName", "inputContent"}
    admin.delete_loop("loop-1")
    admin.update_flow("review", task_count=2, consolidation=False)
    doc = run_loop(admin, app_client, services, emails, [answer(CAR), answer(BIKE)])
    assert "consolidatedAnswer" not in doc


def test_classification_learns_from_the_flows_history(admin, app_client, services):
    """After 20+ loops, Dawid-Skene learns that the third worker swaps the two labels."""
    emails = setup_flow(admin, workers=3, task_count=3)
    workers = [worker_client(app_client, e) for e in emails]
    swap = {"cat": "dog", "dog": "cat"}
    truth = ["cat", "dog"] * 12
    for i, label in enumerate(truth):
        admin.start_loop(f"h-{i:02d}", flow="review", input={**INPUT, "i": i})
        noisy = label if i % 4 else swap[label]
        for worker, given in zip(workers, [label, noisy, swap[label]], strict=True):
            task = worker.next_task("review")
            assert task is not None
            worker.submit(task.task_id, {"animal": {"label": given}})
    admin.start_loop("now", flow="review", input=INPUT)
    for worker, given in zip(workers, ["cat", "dog", "dog"], strict=True):
        task = worker.next_task("review")
        assert task is not None
        worker.submit(task.task_id, {"animal": {"label": given}})
    doc = json.loads(services.store.get(admin.describe_loop("now").output_uri or ""))
    consolidated = doc["consolidatedAnswer"]
    assert consolidated["method"] == {"animal": "dawid-skene"}
    assert consolidated["answerContent"] == {"animal": {"label": "cat"}}
    # The first loops had no history: weighted majority.
    first = json.loads(services.store.get(admin.describe_loop("h-00").output_uri or ""))
    assert first["consolidatedAnswer"]["method"] == {"animal": "weighted-majority"}


def test_flow_settings_in_the_raw_api_shape(app_client: TestClient, admin, admin_headers):
    setup_flow(admin, task_count=3)
    flow = app_client.get("/api/v1/flows/review", headers=admin_headers).json()
    assert (flow["consolidation"], flow["consolidation_quorum"]) == (True, 2)
    response = app_client.patch("/api/v1/flows/review", json={"consolidation_quorum": 5}, headers=admin_headers)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "ValidationException"
    assert app_client.get("/api/v1/flows/review", headers=admin_headers).json()["consolidation_quorum"] == 2
