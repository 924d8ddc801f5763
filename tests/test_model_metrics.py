"""Model versus humans (both databases): hand-made loops whose answers are known, the
figures worked out by hand, and AP@0.5 checked against pycocotools' COCOeval."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from loopin.client import Client
from loopin.clock import ManualClock
from loopin.errors import NotFoundError
from loopin.exports import run_pending_exports
from loopin.model_metrics import Box, average_precision, compare_boxes
from loopin.models import Prediction
from loopin.services import Services
from tests.helpers import admin_client, setup_flow, worker_client


@pytest.fixture
def api(app_client: TestClient, access_key: tuple[str, str]) -> Client:
    return admin_client(app_client, access_key)


def det(label: str, left: float, top: float, w: float, h: float, score: float) -> dict[str, Any]:
    return {"label": label, "score": score, "left": left, "top": top, "right": left + w, "bottom": top + h}


def human(label: str, left: float, top: float, w: float, h: float) -> dict[str, Any]:
    return {"label": label, "left": left, "top": top, "width": w, "height": h}


# loop: (endpoint, model, the model's detections (threshold 0.5), the people's boxes)
LOOPS: dict[str, tuple[str, str, list[dict[str, Any]], list[dict[str, Any]]]] = {
    "l1": (
        "e1",
        "m1",
        [det("cat", 10, 10, 20, 20, 0.9), det("dog", 50, 50, 20, 20, 0.8)],
        [human("cat", 10, 10, 20, 20), human("dog", 52, 50, 20, 20)],  # kept, moved (IoU 360/440)
    ),
    "l2": (
        "e1",
        "m1",
        [det("cat", 0, 0, 10, 10, 0.7), det("bird", 30, 30, 10, 10, 0.6), det("cat", 60, 60, 10, 10, 0.3)],
        [human("dog", 0, 0, 10, 10), human("cat", 60, 60, 10, 10)],  # relabelled, bird deleted, cat added
    ),
    "l3": ("e2", "m2", [], [human("bird", 5, 5, 10, 10)]),  # added
}


def hand_made(api: Client, services: Services, app_client: TestClient, clock: ManualClock) -> None:
    emails = setup_flow(api, workers=1)
    for name, (endpoint, model, detections, answer) in LOOPS.items():
        if name == "l3":
            clock.advance(7 * 86400)  # another week
        api.start_loop(name, flow="review", input={"taskObject": f"s3://review-bucket/{name}.png"})
        with services.db.write() as session:
            session.add(
                Prediction(
                    endpoint_name=endpoint,
                    model_name=model,
                    image_sha256=name.ljust(64, "0"),
                    image_width=100,
                    image_height=100,
                    detections=json.dumps(detections),
                    flow_name="review",
                    threshold=0.5,
                    routed_reason="low-confidence",
                    loop_name=name,
                    image_uri=f"s3://review-bucket/{name}.png",
                    response="{}",
                    created_at=clock.now_ms(),
                )
            )
        worker = worker_client(app_client, emails[0])
        task = worker.next_task()
        assert task is not None
        worker.submit(task.task_id, {"annotatedResult": {"boundingBoxes": answer}})


def coco_ap50(tmp_path: Path) -> tuple[float, dict[str, float]]:
    """AP@0.5 of the same detections against the same boxes, by pycocotools."""
    classes = ["cat", "dog", "bird"]
    images, annotations, results = [], [], []
    for image_id, (_, _, detections, answer) in enumerate(LOOPS.values(), start=1):
        images.append({"id": image_id, "width": 100, "height": 100, "file_name": f"{image_id}.png"})
        for box in answer:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": classes.index(box["label"]) + 1,
                    "bbox": [box["left"], box["top"], box["width"], box["height"]],
                    "area": box["width"] * box["height"],
                    "iscrowd": 0,
                }
            )
        for d in detections:
            results.append(
                {
                    "image_id": image_id,
                    "category_id": classes.index(d["label"]) + 1,
                    "bbox": [d["left"], d["top"], d["right"] - d["left"], d["bottom"] - d["top"]],
                    "score": d["score"],
                }
            )
    path = tmp_path / "gt.json"
    categories = [{"id": i + 1, "name": c} for i, c in enumerate(classes)]
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO(str(path))
        evaluation = COCOeval(truth, truth.loadRes(results), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    precision = evaluation.eval["precision"]  # [iou, recall, class, area, max detections]
    per_class = {c: float(precision[0, :, k, 0, 2].mean()) for k, c in enumerate(classes)}
    return float(evaluation.stats[1]), per_class


def test_figures_on_hand_made_loops(
    api: Client, services: Services, app_client: TestClient, clock: ManualClock, tmp_path: Path
) -> None:
    hand_made(api, services, app_client, clock)
    report = api.model_metrics(flow="review")
    total = report.total
    assert report.loops == 3
    assert (total.model_boxes, total.human_boxes) == (4, 5)
    assert (total.kept, total.moved, total.relabelled, total.deleted, total.added) == (1, 1, 1, 1, 2)
    assert (total.precision, total.recall, total.mean_moved_iou) == (0.5, 0.4, round(360 / 440, 4))
    by_class = {row.key: row for row in report.per_class}
    assert (by_class["cat"].kept, by_class["cat"].relabelled, by_class["cat"].added) == (1, 1, 1)
    assert (by_class["cat"].precision, by_class["cat"].recall) == (0.5, 0.5)
    assert (by_class["dog"].moved, by_class["dog"].precision, by_class["dog"].recall) == (1, 1.0, 0.5)
    assert (by_class["bird"].deleted, by_class["bird"].added, by_class["bird"].precision) == (1, 1, 0.0)
    expected, expected_per_class = coco_ap50(tmp_path)
    assert total.ap50 == pytest.approx(expected, abs=1e-4)
    for label, value in expected_per_class.items():
        assert by_class[label].ap50 == pytest.approx(value, abs=1e-4), label
    endpoints = {row.key: row for row in report.per_endpoint}
    assert set(endpoints) == {"e1 (m1)", "e2 (m2)"}
    assert (endpoints["e1 (m1)"].loops, endpoints["e2 (m2)"].loops) == (2, 1)
    assert endpoints["e2 (m2)"].recall == 0.0 and endpoints["e2 (m2)"].precision is None
    assert [row.loops for row in report.per_week] == [2, 1]
    assert [row.key for row in report.per_flow] == ["review"]
    rows = list(csv.DictReader(io.StringIO(api.model_metrics_csv(flow="review"))))
    assert rows[0]["group"] == "total" and rows[0]["precision"] == "0.5"
    assert {r["key"] for r in rows if r["group"] == "class"} == {"cat", "dog", "bird"}
    assert api.model_metrics().loops == 3  # every flow
    # The answers carry no image size: an export takes it from the prediction log.
    info = api.create_export("review", format="coco")
    run_pending_exports(services)
    location = api.get_export(info.export_id).location
    assert location is not None
    with zipfile.ZipFile(location) as archive:
        images = json.loads(archive.read("coco.json"))["images"]
    assert [(i["width"], i["height"]) for i in images] == [(100, 100)] * 3
    with pytest.raises(NotFoundError):
        api.model_metrics(flow="nope")


def test_matching_rules() -> None:
    c = compare_boxes(
        [Box("a", 0, 0, 10, 10), Box("a", 100, 100, 10, 10), Box("b", 50, 50, 10, 10)],
        [Box("a", 0, 0, 10, 10.2), Box("c", 51, 50, 10, 10)],
    )
    assert c.kept == ["a"] and c.relabelled == [("b", "c")] and c.deleted == ["a"] and c.added == []
    # A box the same label can claim is not taken by relabelling first.
    c = compare_boxes([Box("a", 0, 0, 10, 10)], [Box("b", 0, 0, 10, 10), Box("a", 1, 0, 10, 10)])
    assert [label for label, _ in c.moved] == ["a"] and c.added == ["b"] and c.relabelled == []
    assert average_precision([], 0) is None
    assert average_precision([(0.9, 0, True)], 1) == 1.0
    assert average_precision([(0.9, 0, False), (0.8, 1, True)], 1) == pytest.approx(0.5)
