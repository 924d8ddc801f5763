"""Exports over the native API (both databases): each format read back with its own reader —
pycocotools for COCO, a YOLO reader, an XML parser for Pascal VOC, a manifest reader, csv —
gives the boxes and labels of the loops' output.json files, to the pixel; filters; the
errors for bad requests; nothing half-written; datasets."""

from __future__ import annotations

import csv
import io
import json
import uuid
import zipfile
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from pycocotools.coco import COCO

from loopin.client import Client
from loopin.errors import NotFoundError, ResourceInUseError, ValidationError
from loopin.exports import run_pending_exports
from loopin.services import Services
from tests.helpers import admin_client, setup_flow, worker_client

SIZES = {"a": (80, 60), "b": (120, 90), "c": (64, 64)}
# (initial boxes the model pre-filled, the boxes the person submitted)
LOOPS: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {
    "a": (
        [{"label": "cat", "left": 10, "top": 10, "width": 20, "height": 20}],
        [{"label": "cat", "left": 10, "top": 10, "width": 20, "height": 20}],  # unchanged
    ),
    "b": (
        [{"label": "cat", "left": 5, "top": 5, "width": 30, "height": 30}],
        [
            {"label": "dog", "left": 5, "top": 6, "width": 31, "height": 29},
            {"label": "cat", "left": 60, "top": 40, "width": 50, "height": 45},
        ],
    ),
    "c": ([], [{"label": "bird", "left": 1, "top": 2, "width": 3, "height": 4}]),
}


@pytest.fixture
def api(app_client: TestClient, access_key: tuple[str, str]) -> Client:
    return admin_client(app_client, access_key)


def png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((height, width, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def reviewed(api: Client, services: Services, app_client: TestClient, *, props: bool = True) -> dict[str, str]:
    """Three finished loops of flow ``review`` (one answer each); loop name by image key."""
    emails = setup_flow(api, workers=1)
    names = {}
    for key, (initial, _) in LOOPS.items():
        uri = f"s3://review-bucket/images/{key}.png"
        services.store.put(uri, png(*SIZES[key]), content_type="image/png")
        names[key] = f"loop-{key}"
        api.start_loop(names[key], flow="review", input={"taskObject": uri, "initialValue": initial, "labels": []})
    worker = worker_client(app_client, emails[0])
    for _ in LOOPS:
        task = worker.next_task()
        assert task is not None
        key = task.input["taskObject"].rsplit("/", 1)[-1][0]
        answer: dict[str, Any] = {"boundingBoxes": LOOPS[key][1]}
        if props:
            answer["inputImageProperties"] = {"width": SIZES[key][0], "height": SIZES[key][1]}
        worker.submit(task.task_id, {"annotatedResult": answer})
    for name in names.values():
        assert api.describe_loop(name).status == "Completed"
    return names


def output_boxes(api: Client, services: Services, names: dict[str, str]) -> dict[str, set[tuple[Any, ...]]]:
    """Each loop's boxes as its output.json has them: {loop: {(label, l, t, w, h)}}."""
    found = {}
    for name in names.values():
        uri = api.describe_loop(name).output_uri
        assert uri is not None
        doc = json.loads(services.store.get(uri))
        boxes = doc["humanAnswers"][0]["answerContent"]["annotatedResult"]["boundingBoxes"]
        found[name] = {(b["label"], b["left"], b["top"], b["width"], b["height"]) for b in boxes}
    return found


def export(api: Client, services: Services, tmp_path: Path, **options: Any) -> zipfile.ZipFile:
    info = api.create_export("review", **options)
    assert info.state == "queued" and info.total >= 1
    assert run_pending_exports(services) == 1
    done = api.get_export(info.export_id)
    assert done.state == "succeeded", done
    assert done.progress == 1.0 and done.content_sha256 and done.loops_sha256
    dest = tmp_path / f"{info.export_id}.zip"
    assert api.download_export(info.export_id, dest) == dest.stat().st_size
    return zipfile.ZipFile(dest)


def test_coco_round_trip_with_pycocotools(
    api: Client, services: Services, app_client: TestClient, tmp_path: Path
) -> None:
    names = reviewed(api, services, app_client)
    archive = export(api, services, tmp_path, format="coco")
    path = tmp_path / "coco.json"
    path.write_bytes(archive.read("coco.json"))
    coco = COCO(str(path))
    found: dict[str, set[tuple[Any, ...]]] = {}
    for image in coco.dataset["images"]:
        key = image["file_name"].rsplit("/", 1)[-1][0]
        assert (image["width"], image["height"]) == SIZES[key]
        assert image["file_name"] == f"s3://review-bucket/images/{key}.png"
        boxes = set()
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]])):
            label = coco.loadCats([ann["category_id"]])[0]["name"]
            assert ann["area"] == ann["bbox"][2] * ann["bbox"][3] and ann["iscrowd"] == 0
            boxes.add((label, *ann["bbox"]))
        found[image["loopin"]["loop"]] = boxes
    assert found == output_boxes(api, services, names)
    assert [c["name"] for c in coco.dataset["categories"]] == ["cat", "dog", "bird"]  # first seen
    meta = json.loads(archive.read("loopin-export.json"))
    assert meta["items"] == 3 and meta["annotations"] == 4
    assert archive.read("loops.txt").decode().splitlines()[0].split("\t")[1] == "loop-a"


def read_yolo(archive: zipfile.ZipFile) -> tuple[list[str], dict[str, list[tuple[Any, ...]]]]:
    """A YOLO reader: names from data.yaml, normalised boxes from labels/*.txt."""
    lines = archive.read("data.yaml").decode().splitlines()
    start = lines.index("names:")
    names = [json.loads(line.split(": ", 1)[1]) for line in lines[start + 1 :]]
    labels = {}
    for member in archive.namelist():
        if member.startswith("labels/"):
            rows = [line.split() for line in archive.read(member).decode().splitlines()]
            labels[member[len("labels/") : -len(".txt")]] = [(names[int(r[0])], *map(float, r[1:])) for r in rows]
    return names, labels


@pytest.mark.parametrize("images", ["reference", "copy"])
def test_yolo_round_trip(api: Client, services: Services, app_client: TestClient, tmp_path: Path, images: str) -> None:
    names = reviewed(api, services, app_client, props=images == "reference")  # copy: sizes read from the images
    archive = export(api, services, tmp_path, format="yolo", images=images)
    classes, labels = read_yolo(archive)
    assert classes == ["cat", "dog", "bird"]
    found = {}
    for loop, rows in labels.items():
        w, h = SIZES[loop[-1]]
        found[loop] = {
            (label, round((cx - bw / 2) * w), round((cy - bh / 2) * h), round(bw * w), round(bh * h))
            for label, cx, cy, bw, bh in rows
        }
    assert found == output_boxes(api, services, names)
    listed = archive.read("train.txt").decode().split()
    if images == "copy":
        assert listed == ["images/loop-a.png", "images/loop-b.png", "images/loop-c.png"]
        with Image.open(io.BytesIO(archive.read("images/loop-b.png"))) as image:
            assert image.size == SIZES["b"]
        assert "train: images" in archive.read("data.yaml").decode()
    else:
        assert listed == [f"s3://review-bucket/images/{k}.png" for k in "abc"]


def test_voc_round_trip(api: Client, services: Services, app_client: TestClient, tmp_path: Path) -> None:
    names = reviewed(api, services, app_client)
    archive = export(api, services, tmp_path, format="voc")
    found = {}
    for member in archive.namelist():
        if not member.startswith("Annotations/"):
            continue
        root = ET.fromstring(archive.read(member))
        loop = member.removeprefix("Annotations/").removesuffix(".xml")
        size = root.find("size")
        assert (
            size is not None and (int(size.findtext("width", "")), int(size.findtext("height", ""))) == SIZES[loop[-1]]
        )
        boxes = set()
        for obj in root.iter("object"):
            bb = obj.find("bndbox")
            assert bb is not None
            x0, y0, x1, y1 = (int(bb.findtext(t, "")) for t in ("xmin", "ymin", "xmax", "ymax"))
            boxes.add((obj.findtext("name"), x0, y0, x1 - x0, y1 - y0))
        found[loop] = boxes
    assert found == output_boxes(api, services, names)
    assert archive.read("labels.txt").decode().split() == ["cat", "dog", "bird"]


def test_ground_truth_manifest_round_trip(
    api: Client, services: Services, app_client: TestClient, tmp_path: Path
) -> None:
    names = reviewed(api, services, app_client)
    archive = export(api, services, tmp_path, format="manifest", label_attribute="boxes")
    found = {}
    for line in archive.read("output.manifest").decode().splitlines():
        entry = json.loads(line)
        meta = entry["boxes-metadata"]
        assert meta["type"] == "groundtruth/object-detection" and meta["human-annotated"] == "yes"
        assert meta["job-name"] == "labeling-job/review" and len(meta["objects"]) == len(entry["boxes"]["annotations"])
        key = entry["source-ref"].rsplit("/", 1)[-1][0]
        assert entry["boxes"]["image_size"] == [{"width": SIZES[key][0], "height": SIZES[key][1], "depth": 3}]
        found[meta["loopin-loop"]] = {
            (meta["class-map"][str(a["class_id"])], a["left"], a["top"], a["width"], a["height"])
            for a in entry["boxes"]["annotations"]
        }
    assert found == output_boxes(api, services, names)


def test_csv_and_filters(api: Client, services: Services, app_client: TestClient, tmp_path: Path) -> None:
    names = reviewed(api, services, app_client)
    archive = export(api, services, tmp_path, format="csv")
    rows = list(csv.DictReader(io.StringIO(archive.read("labels.csv").decode())))
    found: dict[str, set[tuple[Any, ...]]] = {}
    for row in rows:
        box = (row["label"], int(row["left"]), int(row["top"]), int(row["width"]), int(row["height"]))
        found.setdefault(row["loop"], set()).add(box)
    assert found == output_boxes(api, services, names)
    # Only what people changed: loop a kept the model's box.
    archive = export(api, services, tmp_path, format="csv", changed_only=True)
    assert {r["loop"] for r in csv.DictReader(io.StringIO(archive.read("labels.csv").decode()))} == {
        "loop-b",
        "loop-c",
    }
    # Only some classes: the other boxes are left out, and loops without any.
    archive = export(api, services, tmp_path, format="coco", labels=["dog", "bird"])
    coco = json.loads(archive.read("coco.json"))
    assert [c["name"] for c in coco["categories"]] == ["dog", "bird"]
    assert len(coco["images"]) == 2 and len(coco["annotations"]) == 2


def test_classification_answers_go_to_the_manifest_and_csv(
    api: Client, services: Services, app_client: TestClient, tmp_path: Path
) -> None:
    emails = setup_flow(api, workers=1)
    services.store.put("s3://review-bucket/images/x.png", png(10, 10), content_type="image/png")
    api.start_loop("one", flow="review", input={"taskObject": "s3://review-bucket/images/x.png"})
    api.start_loop("two", flow="review", input={"taskObject": "s3://review-bucket/images/x.png", "n": 2})
    worker = worker_client(app_client, emails[0])
    answers = [{"category": {"label": "cat"}}, {"category": {"labels": ["cat", "dog"]}}]
    for answer in answers:
        task = worker.next_task()
        assert task is not None
        worker.submit(task.task_id, answer)
    archive = export(api, services, tmp_path, format="manifest")
    first, second = (json.loads(line) for line in archive.read("output.manifest").decode().splitlines())
    assert first["label"] == 0 and first["label-metadata"]["class-name"] == "cat"
    assert first["label-metadata"]["type"] == "groundtruth/image-classification"
    assert second["label"] == [0, 1] and second["label-metadata"]["class-map"] == {"0": "cat", "1": "dog"}
    archive = export(api, services, tmp_path, format="csv")
    rows = [(r["loop"], r["label"]) for r in csv.DictReader(io.StringIO(archive.read("labels.csv").decode()))]
    assert rows == [("one", "cat"), ("two", "cat"), ("two", "dog")]
    # A detection format has nothing to take from classification answers.
    info = api.create_export("review", format="coco")
    run_pending_exports(services)
    failed = api.get_export(info.export_id)
    assert (failed.state, failed.error_code) == ("failed", "EmptySelection")
    assert not [p for p in (services.settings.data_dir / "exports").iterdir() if info.export_id in p.name]


def test_per_worker_answers_without_consolidation(
    api: Client, services: Services, app_client: TestClient, tmp_path: Path
) -> None:
    emails = setup_flow(api, workers=2, task_count=2)
    api.update_flow("review", consolidation=False)  # on by default for two workers
    services.store.put("s3://review-bucket/images/a.png", png(80, 60), content_type="image/png")
    api.start_loop("two-people", flow="review", input={"taskObject": "s3://review-bucket/images/a.png"})
    for i, email in enumerate(emails):
        worker = worker_client(app_client, email)
        task = worker.next_task()
        assert task is not None
        box = {"label": "cat", "left": 10 + i, "top": 10, "width": 20, "height": 20}
        worker.submit(task.task_id, {"annotatedResult": {"boundingBoxes": [box]}})
    archive = export(api, services, tmp_path, format="coco")
    coco = json.loads(archive.read("coco.json"))
    assert len(coco["images"]) == 2  # no consolidatedAnswer: one image entry per worker's answer
    assert sorted(a["bbox"][0] for a in coco["annotations"]) == [10, 11]
    # With a consolidatedAnswer in output.json (the consolidation branch writes one), it wins.
    uri = api.describe_loop("two-people").output_uri
    assert uri is not None
    doc = json.loads(services.store.get(uri))
    doc["consolidatedAnswer"] = {
        "answerContent": {
            "annotatedResult": {"boundingBoxes": [{"label": "cat", "left": 10.5, "top": 10, "width": 20, "height": 20}]}
        },
        "agreement": 0.9,
        "workers": [a["workerId"] for a in doc["humanAnswers"]],
    }
    services.store.put(uri, json.dumps(doc).encode(), content_type="application/json")
    archive = export(api, services, tmp_path, format="coco")
    coco = json.loads(archive.read("coco.json"))
    assert len(coco["images"]) == 1 and coco["images"][0]["loopin"]["consolidated"] is True
    assert [a["bbox"] for a in coco["annotations"]] == [[10.5, 10, 20, 20]]
    archive = export(api, services, tmp_path, format="coco", answers="per-worker")
    assert len(json.loads(archive.read("coco.json"))["images"]) == 2


def test_bad_requests_are_clear_errors_and_create_nothing(
    api: Client, services: Services, app_client: TestClient, tmp_path: Path
) -> None:
    with pytest.raises(NotFoundError):
        api.create_export("nope")
    reviewed(api, services, app_client)
    api.create_flow(
        "empty",
        team="MyTeam",
        task_ui="boxes",
        title="Nothing yet",
        description="A flow without loops",
        output_path="s3://review-bucket/empty",
    )
    with pytest.raises(ValidationError) as empty:
        api.create_export("empty")
    assert empty.value.details == {"reason": "EmptySelection"}
    with pytest.raises(ValidationError) as late:
        api.create_export("review", created_after="2030-01-01T00:00:00Z")
    assert late.value.details == {"reason": "EmptySelection"}
    with pytest.raises(ValidationError) as outside:
        api.create_export("review", target="folder", location="../../elsewhere")
    assert outside.value.details == {"reason": "TargetOutsideDataDir"}
    with pytest.raises(ValidationError) as absolute:
        api.create_export("review", target="folder", location=str(tmp_path / "not-data"))
    assert absolute.value.details == {"reason": "TargetOutsideDataDir"}
    with pytest.raises(ValidationError):
        api.create_export("review", format="pascal")
    with pytest.raises(ValidationError):
        api.create_export("review", target="s3")  # no location
    assert api.list_exports() == []
    with pytest.raises(NotFoundError):
        api.get_export("exp-0000")


def test_folder_target_inside_the_data_directory(
    api: Client, services: Services, app_client: TestClient, tmp_path: Path
) -> None:
    reviewed(api, services, app_client)
    info = api.create_export("review", format="yolo", target="folder", location="training/run-1")
    run_pending_exports(services)
    done = api.get_export(info.export_id)
    folder = services.settings.data_dir.resolve() / "exports" / "training" / "run-1"
    assert done.state == "succeeded" and done.location == str(folder)
    assert sorted(p.name for p in folder.iterdir()) == [
        "data.yaml",
        "labels",
        "loopin-export.json",
        "loops.txt",
        "train.txt",
    ]
    with pytest.raises(ValidationError) as exists:
        api.create_export("review", target="folder", location="training/run-1")
    assert exists.value.details == {"reason": "TargetExists"}
    with pytest.raises(ValidationError) as not_zip:
        api.download_export(info.export_id, tmp_path / "x.zip")
    assert not_zip.value.details == {"reason": "NotAZip"}
    assert not (tmp_path / "x.zip").exists() and not (tmp_path / "x.zip.part").exists()


def test_datasets_are_named_immutable_snapshots(
    api: Client, services: Services, app_client: TestClient, tmp_path: Path
) -> None:
    reviewed(api, services, app_client)
    info = api.create_export("review", format="coco")
    with pytest.raises(ValidationError):  # not finished yet
        api.create_dataset("first", export_id=info.export_id)
    run_pending_exports(services)
    done = api.get_export(info.export_id)
    dataset = api.create_dataset("first", export_id=info.export_id, description="the first three")
    assert (dataset.content_sha256, dataset.loops_sha256) == (done.content_sha256, done.loops_sha256)
    assert (dataset.items, dataset.annotations, dataset.format) == (3, 4, "coco")
    assert dataset.settings["flow"] == "review"
    with pytest.raises(ResourceInUseError):
        api.create_dataset("first", export_id=info.export_id)
    assert [d.name for d in api.list_datasets()] == ["first"]
    dest = tmp_path / "first.zip"
    api.download_dataset("first", dest)
    assert json.loads(zipfile.ZipFile(dest).read("loopin-export.json"))["content_sha256"] == dataset.content_sha256
    # The same selection exported again has the same content hash.
    again = api.create_export("review", format="coco")
    run_pending_exports(services)
    assert api.get_export(again.export_id).content_sha256 == dataset.content_sha256
    # A file changed behind the dataset's back is refused.
    assert done.location is not None
    with zipfile.ZipFile(done.location, "w") as archive:
        archive.writestr("loopin-export.json", json.dumps({"content_sha256": "0" * 64}))
    with pytest.raises(ValidationError):
        api.download_dataset("first", tmp_path / "again.zip")


def test_a_crashed_export_is_taken_over_after_its_lease(
    api: Client, services: Services, app_client: TestClient, clock: Any
) -> None:
    from loopin.exports import claim_export

    reviewed(api, services, app_client)
    info = api.create_export("review", format="coco")
    with services.db.write() as session:
        assert claim_export(session, now_ms=clock.now_ms(), owner=uuid.uuid4().hex[:16]) is not None
    assert run_pending_exports(services) == 0  # leased by the (dead) first process
    leftover = services.settings.data_dir / "exports" / f".tmp-{info.export_id}-deadbeef.zip"
    leftover.parent.mkdir(parents=True, exist_ok=True)
    leftover.write_bytes(b"half")
    clock.advance(121)
    assert run_pending_exports(services) == 1
    done = api.get_export(info.export_id)
    assert done.state == "succeeded" and done.items == 3
    assert not leftover.exists()
