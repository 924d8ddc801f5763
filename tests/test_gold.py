"""Gold items through the native API and the SDK, on SQLite and PostgreSQL: loading them
(with the template's answer shape checked), serving them mixed into a worker's tasks so
that they look like any task, scoring the answers, never writing them as output, pausing a
worker whose gold accuracy falls below the flow's limit and un-pausing them."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from loopin import gold, gold_serving, loop_stats, worker_quality
from loopin.client import Client
from loopin.errors import NotFoundError, ValidationError
from loopin.models import Event, FlowDefinition, GoldItem, GoldTask, HumanLoop, Worker
from loopin.services import Services
from tests.helpers import admin_client, setup_flow, worker_client

PROPS = {"height": 400, "width": 600}


def box(label: str, left: float, top: float, width: float, height: float) -> dict[str, Any]:
    return {"label": label, "left": left, "top": top, "width": width, "height": height}


def boxes(*items: dict[str, Any]) -> dict[str, Any]:
    return {"annotatedResult": {"boundingBoxes": list(items), "inputImageProperties": PROPS}}


CAR = box("car", 100, 100, 200, 100)
BIKE = box("bicycle", 400, 250, 60, 40)


def gold_input(i: int) -> dict[str, Any]:
    return {"taskObject": f"s3://review-bucket/gold/{i}.jpg", "labels": ["car", "bicycle"], "initialValue": []}


def real_input(i: int) -> dict[str, Any]:
    return {"taskObject": f"s3://review-bucket/real/{i}.jpg", "labels": ["car", "bicycle"], "initialValue": []}


@pytest.fixture
def admin(app_client: TestClient, access_key: tuple[str, str]) -> Client:
    return admin_client(app_client, access_key)


def _counts(services: Services) -> tuple[int, int, dict[str, int], int]:
    """Loops, events, the admin's loop counters and the store's objects: what a gold task must not touch."""
    with services.db.read() as s:
        loops = s.scalar(select(func.count()).select_from(HumanLoop)) or 0
        events = s.scalar(select(func.count()).select_from(Event)) or 0
        counters = loop_stats.status_counts(s)
    stored = sum(1 for p in (services.settings.data_dir).rglob("*") if p.is_file() and "output.json" in p.name)
    return loops, events, counters, stored


# -- settings and items ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"gold_rate": -0.1}, "gold_rate"),
        ({"gold_rate": 1.5}, "gold_rate"),
        ({"gold_rate": 0.2, "gold_min_accuracy": 1.2}, "gold_min_accuracy"),
        ({"gold_rate": 0.2, "gold_min_scored": 0}, "gold_min_scored"),
    ],
)
def test_bad_gold_settings_are_refused_and_nothing_changes(admin, app_client, admin_headers, body, field):
    setup_flow(admin, workers=1)
    admin.set_gold_settings("review", rate=0.1, min_accuracy=0.5, min_scored=4)
    response = app_client.put("/api/v1/flows/review/gold/settings", json=body, headers=admin_headers)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "ValidationException" and field in error["message"]
    assert field in error["details"]["problems"]
    kept = admin.gold_settings("review")
    assert (kept.gold_rate, kept.gold_min_accuracy, kept.gold_min_scored) == (0.1, 0.5, 4)


def test_settings_of_an_unknown_flow_are_404(app_client, admin_headers):
    response = app_client.put("/api/v1/flows/nope/gold/settings", json={"gold_rate": 0.1}, headers=admin_headers)
    assert response.status_code == 404 and response.json()["error"]["code"] == "ResourceNotFound"


def test_items_are_added_listed_and_deleted(admin):
    setup_flow(admin, workers=1)
    item = admin.add_gold_item("review", input=gold_input(1), answer=boxes(CAR, BIKE), note="two objects")
    assert item.input == gold_input(1) and item.answer == boxes(CAR, BIKE) and item.note == "two objects"
    assert (item.answered, item.mean_score) == (0, None)
    more = admin.add_gold_items(
        "review", [{"input": gold_input(2), "answer": boxes(CAR)}, {"input": gold_input(3), "answer": boxes()}]
    )
    assert [i.id for i in admin.list_gold_items("review")] == [item.id, *(i.id for i in more)]
    admin.delete_gold_item("review", item.id)
    assert [i.id for i in admin.list_gold_items("review")] == [i.id for i in more]
    with pytest.raises(NotFoundError):
        admin.delete_gold_item("review", item.id)


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        ({"annotatedResult": {"boundingBoxes": [{"label": "car", "left": 1, "top": 2, "width": 3}]}}, "box 1 must"),
        ({"annotatedResult": {"boundingBoxes": [{**CAR, "width": 0}]}}, "box 1 must"),
        ({"annotatedResult": {"label": "car"}}, "boundingBoxes"),
        ({"category": {"label": "car"}}, "'category' are not in the flow's template"),
        ({}, "at least one field"),
    ],
)
def test_an_answer_that_does_not_fit_the_template_is_refused(admin, app_client, admin_headers, answer, words):
    setup_flow(admin, workers=1)
    response = app_client.post(
        "/api/v1/flows/review/gold/items", json={"input": gold_input(1), "answer": answer}, headers=admin_headers
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "ValidationException"
    assert words in response.json()["error"]["message"]
    assert admin.list_gold_items("review") == []


def test_a_bad_line_in_a_batch_writes_nothing(admin):
    setup_flow(admin, workers=1)
    with pytest.raises(ValidationError) as caught:
        admin.add_gold_items(
            "review",
            [
                {"input": gold_input(1), "answer": boxes(CAR)},
                {"input": "[1, 2]", "answer": boxes(CAR)},
            ],
        )
    assert caught.value.message.startswith("Line 2: InputContent must be a JSON object")
    assert admin.list_gold_items("review") == []


def test_a_classifier_template_takes_a_label(admin):
    setup_flow(admin, workers=1)
    template = (
        "<crowd-form><crowd-classifier name=\"category\" categories=\"['cat', 'dog']\"></crowd-classifier></crowd-form>"
    )
    admin.create_task_ui("classify", template=template)
    admin.create_flow(
        "pets", team="MyTeam", task_ui="classify", title="t", description="d", output_path="s3://review-bucket/o"
    )
    admin.add_gold_item("pets", input={"image": "x"}, answer={"category": {"label": "cat"}})
    with pytest.raises(ValidationError, match=r"crowd-classifier\) must be"):
        admin.add_gold_item("pets", input={"image": "x"}, answer={"category": "cat"})


# -- scoring -----------------------------------------------------------------------------


def test_scores_on_hand_made_answers():
    truth = boxes(CAR, BIKE)
    assert gold.score(boxes(CAR, BIKE), truth) == 1.0
    moved = {**CAR, "left": 110}  # IoU 0.9 with the car: still right
    assert gold.score(boxes(moved, BIKE), truth) == 1.0
    assert gold.score(boxes(CAR), truth) == pytest.approx(2 / 3)  # one of two found
    assert gold.score(boxes(CAR, BIKE, box("car", 0, 0, 50, 50)), truth) == pytest.approx(0.8)  # one extra
    assert gold.score(boxes({**CAR, "label": "bicycle"}, BIKE), truth) == pytest.approx(0.5)  # wrong label
    assert gold.score(boxes({**CAR, "left": 260}), boxes(CAR)) == 0.0  # IoU under 0.5
    assert gold.score(boxes(), boxes()) == 1.0
    assert gold.score({}, truth) == 0.0  # the field is missing
    assert gold.score({"c": {"label": "cat"}}, {"c": {"label": "cat"}}) == 1.0
    assert gold.score({"c": {"label": "dog"}}, {"c": {"label": "cat"}}) == 0.0
    assert gold.score({"c": {"labels": ["a", "b"]}}, {"c": {"labels": ["a"]}}) == 0.5
    assert gold.score({"t": "  The  Cat "}, {"t": "the cat"}) == 1.0
    assert gold.score({"n": 3}, {"n": 3.0}) == 1.0 and gold.score({"n": 4}, {"n": 3}) == 0.0
    assert gold.score({"a": True, "t": "x"}, {"a": True, "t": "y"}) == 0.5
    assert (
        gold.score(
            {"k": {"keypoints": [{"label": "eye", "x": 12, "y": 10}]}},
            {"k": {"keypoints": [{"label": "eye", "x": 10, "y": 10}]}},
        )
        == 1.0
    )


# -- serving -----------------------------------------------------------------------------


def test_a_gold_task_looks_like_any_task_and_is_never_output(admin, app_client, services):
    emails = setup_flow(admin, workers=2, task_count=1)
    admin.set_gold_settings("review", rate=1.0)
    golds = [admin.add_gold_item("review", input=gold_input(i), answer=boxes(CAR)) for i in range(2)]
    for i in range(3):
        admin.start_loop(f"loop-{i}", flow="review", input=real_input(i))
    before = _counts(services)
    worker = worker_client(app_client, emails[0])
    headers = {"Authorization": f"Bearer {worker._http._headers['Authorization'].split()[1]}"}

    served = []
    for _ in range(2):
        raw = app_client.post("/api/v1/worker/tasks/next", json={"flow": "review"}, headers=headers)
        assert raw.status_code == 200
        served.append(raw.json())
        assert app_client.get(f"/api/v1/worker/tasks/{raw.json()['task_id']}", headers=headers).json() == raw.json()
        worker.submit(raw.json()["task_id"], boxes(CAR))
    assert sorted(t["input"]["taskObject"] for t in served) == [gold_input(i)["taskObject"] for i in range(2)]
    assert _counts(services) == before  # no loop, event, counter or output.json

    real = app_client.post("/api/v1/worker/tasks/next", json={"flow": "review"}, headers=headers).json()
    assert real["input"]["taskObject"].startswith("s3://review-bucket/real/")  # gold used up: real work
    assert set(real) == set(served[0])  # exactly the same keys
    for key in ("flow", "title", "description", "time_limit_seconds"):
        assert real[key] == served[0][key]
    assert all(isinstance(t["task_id"], int) for t in [real, *served])
    assert len({real["task_id"], *(t["task_id"] for t in served)}) == 3
    worker.submit(real["task_id"], boxes(CAR))
    assert admin.describe_loop(_loop_of(services, real)).status == "Completed"

    listed = {i.id: i for i in admin.list_gold_items("review")}
    assert all((listed[g.id].answered, listed[g.id].mean_score) == (1, 1.0) for g in golds)
    with services.db.read() as s:
        assert s.scalar(select(func.count()).select_from(GoldTask).where(GoldTask.status == "submitted")) == 2
    with pytest.raises(NotFoundError):  # the answered gold task is not another worker's
        worker_client(app_client, emails[1]).get_task(served[0]["task_id"])


def _loop_of(services: Services, task: dict[str, Any]) -> str:
    with services.db.read() as s:
        return next(
            loop.name for loop in s.scalars(select(HumanLoop)) if task["input"]["taskObject"] in loop.input_content
        )


def test_gold_comes_only_with_real_work_and_never_twice(admin, app_client):
    emails = setup_flow(admin, workers=1)
    admin.set_gold_settings("review", rate=1.0)
    admin.add_gold_item("review", input=gold_input(0), answer=boxes(CAR))
    worker = worker_client(app_client, emails[0])
    assert worker.next_task("review") is None  # an empty queue never serves gold
    admin.start_loop("loop-0", flow="review", input=real_input(0))
    admin.start_loop("loop-1", flow="review", input=real_input(1))
    first = worker.next_task("review")
    assert first is not None and first.input == gold_input(0)
    assert worker.next_task("review") == first  # held: the same task again
    worker.release(first.task_id)
    again = worker.next_task("review")
    assert again is not None and again.input == real_input(0)  # a released gold item is not served again


def test_rate_zero_never_serves_gold(admin, app_client):
    emails = setup_flow(admin, workers=1)
    admin.add_gold_item("review", input=gold_input(0), answer=boxes(CAR))
    admin.start_loop("loop-0", flow="review", input=real_input(0))
    task = worker_client(app_client, emails[0]).next_task("review")
    assert task is not None and task.input == real_input(0)


@pytest.mark.slow  # 200 claims
def test_the_serving_rate(admin, services):
    setup_flow(admin, workers=1)
    admin.set_gold_settings("review", rate=0.25)
    admin.add_gold_items("review", [{"input": gold_input(i), "answer": boxes(CAR)} for i in range(80)])
    admin.start_loop("loop-0", flow="review", input=real_input(0))
    rng = random.Random(7)
    served = {"gold": 0, "real": 0}
    for _ in range(200):

        def claim_and_answer(s):
            me = s.scalar(select(Worker))
            held = gold_serving.claim_next(s, me, flow_name="review", now_ms=services.clock.now_ms(), rng=rng)
            assert held is not None
            is_gold = held.loop.name.startswith("gold-item-")
            if is_gold:
                gold_serving.submit(s, me, held.slot.id, boxes(CAR), now_ms=services.clock.now_ms())
            else:  # back to the queue: the real loop stays waiting for the next claim
                gold_serving.release(s, me, held.slot.id, now_ms=services.clock.now_ms())
            return is_gold

        served["gold" if services.write(claim_and_answer) else "real"] += 1
    share = served["gold"] / 200
    assert 0.16 <= share <= 0.34, served  # 0.25 +- 3 standard deviations (the draw is seeded)


# -- pausing -----------------------------------------------------------------------------


def test_low_gold_accuracy_pauses_the_worker_and_the_admin_unpauses(admin, app_client, admin_headers):
    emails = setup_flow(admin, workers=2)
    admin.set_gold_settings("review", rate=1.0, min_accuracy=0.6, min_scored=2)
    admin.add_gold_items("review", [{"input": gold_input(i), "answer": boxes(CAR, BIKE)} for i in range(4)])
    for i in range(3):
        admin.start_loop(f"loop-{i}", flow="review", input=real_input(i))
    careless = worker_client(app_client, emails[0])
    task = careless.next_task("review")
    careless.submit(task.task_id, boxes(CAR))  # 2/3
    assert admin.worker_quality("review").workers[0].paused is None  # one scored: under min_scored
    task = careless.next_task("review")
    careless.submit(task.task_id, boxes())  # 0: mean 1/3 over 2
    report = admin.worker_quality("review")
    row = next(r for r in report.workers if r.email == emails[0])
    assert row.gold_scored == 2 and row.gold_accuracy == pytest.approx(1 / 3, abs=1e-4)
    assert row.paused is not None and row.paused.reason == (
        "Gold accuracy 33% over 2 gold tasks is below the flow's limit of 60%."
    )
    with pytest.raises(NotFoundError):
        careless.next_task("review")
    assert careless.jobs() == []
    other = worker_client(app_client, emails[1])
    assert other.next_task("review") is not None  # others keep working

    response = app_client.post(f"/api/v1/flows/review/workers/{emails[1]}/unpause", headers=admin_headers)
    assert response.status_code == 400 and "is not paused" in response.json()["error"]["message"]
    admin.unpause_worker("review", emails[0])
    assert next(r for r in admin.worker_quality("review").workers if r.email == emails[0]).paused is None
    task = careless.next_task("review")
    assert task is not None
    careless.submit(task.task_id, boxes())  # counted anew: one scored since the un-pause
    assert next(r for r in admin.worker_quality("review").workers if r.email == emails[0]).paused is None


# -- quality and reliability -------------------------------------------------------------


def test_quality_shows_agreement_pace_and_gold(admin, app_client, services, clock):
    emails = setup_flow(admin, workers=3, task_count=3)
    for i in range(2):
        admin.start_loop(f"loop-{i}", flow="review", input=real_input(i))
    spam = boxes(box("car", 0, 0, 600, 400), box("bicycle", 10, 10, 20, 20))
    for _ in range(2):
        for email, answer in zip(emails, [boxes(CAR, BIKE), boxes(CAR, BIKE), spam], strict=True):
            worker = worker_client(app_client, email)
            task = worker.next_task("review")
            clock.advance(30)
            worker.submit(task.task_id, answer)
    report = admin.worker_quality("review")
    rows = {r.email: r for r in report.workers}
    assert [rows[e].consolidated_loops for e in emails] == [2, 2, 2]
    assert rows[emails[0]].agreement == 1.0 and rows[emails[2]].agreement == 0.0
    assert rows[emails[0]].tasks == 2 and rows[emails[0]].seconds_per_task == 30.0
    assert rows[emails[0]].tasks_per_hour == 2.0  # both in one hour
    assert rows[emails[0]].gold_scored == 0 and rows[emails[0]].gold_accuracy is None


def test_worker_reliability_is_gold_accuracy_shrunk_toward_the_prior(admin, services):
    emails = setup_flow(admin, workers=3)
    item = admin.add_gold_item("review", input=gold_input(0), answer=boxes(CAR))

    def rows(s):
        flow = s.scalar(select(FlowDefinition))
        workers = list(s.scalars(select(Worker).order_by(Worker.email)))
        scores = {emails[0]: [1.0] * 20, emails[1]: [0.0]}
        next_id = 1000
        for w in workers:
            for value in scores.get(w.email, []):
                next_id += 1
                s.add(
                    GoldTask(
                        id=next_id,
                        gold_item_id=None if next_id > 1001 else s.get_one(GoldItem, item.id).id,
                        flow_id=flow.id,
                        worker_id=w.id,
                        status="submitted",
                        accepted_at=0,
                        lease_expires_at=1,
                        submitted_at=1,
                        score=value,
                    )
                )
        s.flush()
        return flow.id, [w.worker_id for w in workers]

    flow_id, ids = services.write(rows)
    with services.db.read() as s:
        weights = worker_quality.worker_reliability(s, flow_id, ids)
        k, prior = worker_quality.RELIABILITY_PRIOR_WEIGHT, worker_quality.RELIABILITY_PRIOR
        assert weights[ids[0]] == pytest.approx((20 + k * prior) / (20 + k))
        assert weights[ids[1]] == pytest.approx(k * prior / (1 + k))
        assert weights[ids[2]] == prior  # no gold yet
        assert worker_quality.worker_reliability(s, flow_id, [ids[2]]) == {}


def test_gold_accuracy_weighs_the_workers_in_consolidation(admin, app_client, services):
    """Two workers who fail their gold items agree; the one who passes them is trusted."""
    emails = setup_flow(admin, workers=3, task_count=3)

    def consolidated_label(loop: str) -> str:
        for email, label in zip(emails, ["dog", "dog", "cat"], strict=True):
            worker = worker_client(app_client, email)
            task = worker.next_task("review")
            worker.submit(task.task_id, {"category": {"label": label}})
        output = json.loads(services.store.get(admin.describe_loop(loop).output_uri))
        return output["consolidatedAnswer"]["answerContent"]["category"]["label"]

    admin.start_loop("before-gold", flow="review", input=real_input(0))
    assert consolidated_label("before-gold") == "dog"  # nothing known: the majority

    def scored_gold(s):
        flow = s.scalar(select(FlowDefinition))
        for n, w in enumerate(s.scalars(select(Worker).order_by(Worker.email))):
            for i in range(20):
                s.add(
                    GoldTask(
                        id=5000 + 100 * n + i,
                        flow_id=flow.id,
                        worker_id=w.id,
                        status="submitted",
                        accepted_at=0,
                        lease_expires_at=1,
                        submitted_at=1,
                        score=1.0 if w.email == emails[2] else 0.0,
                    )
                )

    services.write(scored_gold)
    admin.start_loop("after-gold", flow="review", input=real_input(1))
    assert consolidated_label("after-gold") == "cat"


def test_gold_labelling_accuracy_settles_box_label_ties(admin, app_client, services):
    """One worker scores better on gold (finds every box) but mixes labels up; the other
    finds fewer boxes but labels them right. When they draw the same box with two labels,
    the one who labels right wins, not the one with the better gold score."""
    emails = setup_flow(admin, workers=2, task_count=2)
    truth = [box("car", 10 + 150 * i, 10, 100, 80) for i in range(4)]
    wrong_once = [truth[0] | {"label": "bicycle"}, *truth[1:]]  # box F1 0.75, labelling 3/4
    answers = {emails[0]: boxes(*wrong_once), emails[1]: boxes(truth[0])}  # box F1 0.4, labelling 1/1
    items = [admin.add_gold_item("review", input=gold_input(i), answer=boxes(*truth)).id for i in range(10)]

    def answered_gold(s):
        flow = s.scalar(select(FlowDefinition))
        workers = {w.email: w for w in s.scalars(select(Worker))}
        for n, email in enumerate(emails):
            for i, item in enumerate(items):
                s.add(
                    GoldTask(
                        id=7000 + 100 * n + i,
                        gold_item_id=item,
                        flow_id=flow.id,
                        worker_id=workers[email].id,
                        status="submitted",
                        accepted_at=0,
                        lease_expires_at=1,
                        submitted_at=1,
                        answer=json.dumps(answers[email]),
                        score=gold.score(answers[email], boxes(*truth)),
                    )
                )
        s.flush()
        return flow.id, [workers[email].worker_id for email in emails]

    flow_id, ids = services.write(answered_gold)
    with services.db.read() as s:
        assert (
            worker_quality.worker_reliability(s, flow_id, ids)[ids[0]]
            > worker_quality.worker_reliability(s, flow_id, ids)[ids[1]]
        )
        labelling = worker_quality.worker_label_reliability(s, flow_id, ids)
        assert labelling[ids[0]] == pytest.approx(worker_quality.shrunk_accuracy(30, 40, 5.0))
        assert labelling[ids[1]] == pytest.approx(worker_quality.shrunk_accuracy(10, 10, 5.0))

    admin.start_loop("tie", flow="review", input=real_input(0))
    for email, label in zip(emails, ["bicycle", "car"], strict=True):
        worker = worker_client(app_client, email)
        task = worker.next_task("review")
        worker.submit(task.task_id, boxes(CAR | {"label": label}))
    output = json.loads(services.store.get(admin.describe_loop("tie").output_uri))
    consolidated = output["consolidatedAnswer"]["answerContent"]["annotatedResult"]["boundingBoxes"]
    assert [b["label"] for b in consolidated] == ["car"]
