"""Model endpoints with the built-in detector and user models, invocation through the
native API and the SageMaker runtime path, bad input, and routing to human review."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from loopin import loop_stats, threshold
from loopin.background import run_once
from loopin.errors import NotFoundError, ResourceInUseError, ValidationError
from loopin.inference import Detector
from loopin.routing import AUDIT_BUCKETS
from loopin.schemas import DEFAULT_MIN_SCORE, RoutingRule, VariantSpec
from tests.aws_support import signed_headers
from tests.helpers import admin_client, setup_flow
from tests.test_inference import ASTRONAUT_PERSON, COFFEE_CUP, MOTORCYCLE, YOLO_ROWS, constant_model, iou, yolo_spec

DATA = Path(__file__).parent / "data"
ASTRONAUT = (DATA / "astronaut.jpg").read_bytes()
BUILTIN = "nanodet-g-416-coco"


@pytest.fixture
def admin(app_client: TestClient, access_key: tuple[str, str]):
    return admin_client(app_client, access_key)


def deploy(admin, services, name: str = "detector", model: str = BUILTIN, routing: RoutingRule | None = None):
    admin.create_endpoint_config(f"{name}-config", variants=[VariantSpec(model=model, instance_count=2)])
    created = admin.create_endpoint(name, config=f"{name}-config", routing=routing)
    assert created.status == "Creating"
    run_once(services)
    return admin.describe_endpoint(name)


def _sagemaker(http, key, clock, name: str, body: bytes, content_type: str = "image/jpeg", accept: str | None = None):
    """InvokeEndpoint on the SageMaker runtime path, signed with SigV4 as boto3 signs it."""
    url = f"http://testserver/endpoints/{name}/invocations"
    headers = {"Content-Type": content_type} | ({"Accept": accept} if accept else {})
    signed = signed_headers("POST", url, key, body=body, headers=headers, at_ms=clock.now_ms())
    return http.post(url, content=body, headers=signed)


def _box(d) -> tuple[float, float, float, float]:
    return (d.left, d.top, d.right, d.bottom)


def test_builtin_detector_finds_what_the_photos_show(admin, services) -> None:
    assert deploy(admin, services).status == "InService"
    for image, label, expected in [
        ("astronaut.jpg", "person", ASTRONAUT_PERSON),
        ("motorcycle_left.jpg", "motorcycle", MOTORCYCLE),
        ("coffee.jpg", "cup", COFFEE_CUP),
    ]:
        result = admin.invoke_endpoint("detector", (DATA / image).read_bytes())
        best = max((d for d in result.detections if d.label == label), key=lambda d: d.score)
        assert iou(_box(best), expected) >= 0.7, image
        assert result.model.name == BUILTIN and result.human_loop is None
        with Image.open(DATA / image) as photo:
            assert (result.image.width, result.image.height) == (photo.width, photo.height)


def test_native_api_sagemaker_path_and_library_agree(admin, services, app_client, access_key, clock) -> None:
    deploy(admin, services)
    native = admin.invoke_endpoint("detector", ASTRONAUT)
    for accept in ("json", "application/json", None):
        response = _sagemaker(app_client, access_key, clock, "detector", ASTRONAUT, accept=accept)
        assert response.status_code == 200 and response.headers["x-amzn-invoked-production-variant"] == "AllTraffic"
        gluon = response.json()
        assert set(gluon[0]) == {"id", "score", "left", "top", "right", "bottom"}
        assert [(g["id"], g["score"]) for g in gluon] == [(d.label, d.score) for d in native.detections]
    library = Detector.builtin(BUILTIN).detect(ASTRONAUT)
    assert len(library.detections) == len(native.detections)
    for mine, theirs in zip(library.detections, native.detections, strict=True):
        assert mine.label == theirs.label and abs(mine.score - theirs.score) <= 0.01
        assert max(abs(a - b) for a, b in zip(_box(mine), _box(theirs), strict=True)) <= 1


def _jpeg(size=(64, 48), color=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "JPEG")
    return buf.getvalue()


def _bomb() -> bytes:
    buf = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(buf, "PNG")  # 400 M pixels, a few kB compressed
    return buf.getvalue()


@pytest.mark.parametrize(
    "body,content_type,problem",
    [
        (b"", "image/jpeg", "empty"),
        (b"this is not an image at all", "image/jpeg", "image"),
        (ASTRONAUT[: len(ASTRONAUT) // 2], "image/jpeg", "truncated"),
        (_bomb(), "image/png", "pixels"),
        (b"\xff\xd8\xff" + b"\0" * 6_291_456, "image/jpeg", "larger"),
        (ASTRONAUT, "text/plain", "Content-Type"),
    ],
)
def test_bad_images_get_a_clear_400_on_both_paths(
    admin, services, app_client, admin_headers, access_key, clock, body, content_type, problem
) -> None:
    deploy(admin, services)
    headers = {"Content-Type": content_type}
    native = app_client.post("/api/v1/endpoints/detector/invoke", content=body, headers=admin_headers | headers)
    assert native.status_code == 400 and native.json()["error"]["code"] == "ValidationException"
    assert problem.lower() in native.json()["error"]["message"].lower()
    aws = _sagemaker(app_client, access_key, clock, "detector", body, content_type)
    assert aws.status_code == 400 and aws.headers["x-amzn-errortype"] == "ValidationError"
    assert aws.json()["message"]
    assert app_client.get("/healthz").status_code == 200
    assert admin.invoke_endpoint("detector", _jpeg()).image.model_dump() == {"width": 64, "height": 48}


def test_unknown_and_not_in_service_endpoints(admin, services, app_client, access_key, clock) -> None:
    with pytest.raises(NotFoundError):
        admin.invoke_endpoint("nope", ASTRONAUT)
    aws = _sagemaker(app_client, access_key, clock, "nope", ASTRONAUT)
    assert aws.status_code == 400 and aws.headers["x-amzn-errortype"] == "ValidationError"
    admin.create_endpoint_config("c", variants=[VariantSpec(model=BUILTIN)])
    admin.create_endpoint("creating", config="c")
    with pytest.raises(ValidationError, match="Creating, not InService"):
        admin.invoke_endpoint("creating", ASTRONAUT)
    unsigned = app_client.post("/endpoints/creating/invocations", content=ASTRONAUT)
    assert unsigned.status_code in (400, 403) and unsigned.headers["x-amzn-errortype"]


def test_an_endpoint_whose_model_cannot_load_fails_with_the_reason(admin, services, tmp_path: Path) -> None:
    spec = yolo_spec().model_dump(mode="json")
    admin.register_model("missing", onnx_uri=f"file://{tmp_path}/missing.onnx", spec=spec)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx file")
    admin.register_model("broken", onnx_uri=f"file://{broken}", spec=spec)
    for name in ("missing", "broken"):
        endpoint = deploy(admin, services, name=f"ep-{name}", model=name)
        assert endpoint.status == "Failed" and endpoint.failure_reason
    assert "missing.onnx" in admin.describe_endpoint("ep-missing").failure_reason


def test_user_yolov8_model_from_a_file(admin, services, tmp_path: Path) -> None:
    path = tmp_path / "tiny-yolo.onnx"
    path.write_bytes(constant_model({"output0": YOLO_ROWS.T[np.newaxis]}, [1, 3, 64, 64]))
    model = admin.register_model("tiny-yolo", onnx_uri=f"file://{path}", spec=yolo_spec().model_dump(mode="json"))
    assert model.kind == "onnx" and model.arn.endswith(":model/tiny-yolo")
    assert deploy(admin, services, name="yolo", model="tiny-yolo").status == "InService"
    result = admin.invoke_endpoint("yolo", _jpeg(size=(64, 48)))
    direct = Detector.from_onnx(path.read_bytes(), yolo_spec(), name="tiny-yolo").detect(_jpeg(size=(64, 48)))
    assert [(d.label, d.score, _box(d)) for d in result.detections] == [
        (d.label, d.score, _box(d)) for d in direct.detections
    ]
    assert {d.label for d in result.detections} == {"a", "b", "c"}


def test_python_callable_model(admin, services) -> None:
    admin.register_model("reds", callable="tests.data.callable_model:red_boxes")
    deploy(admin, services, name="reds", model="reds")
    image = np.zeros((40, 60, 3), dtype=np.uint8)
    image[10:20, 30:50] = (255, 0, 0)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "PNG")
    result = admin.invoke_endpoint("reds", buf.getvalue(), content_type="image/png")
    assert [(d.label, _box(d)) for d in result.detections] == [("red", (30, 10, 50, 20))]


def test_model_registration_errors(admin) -> None:
    with pytest.raises(ValidationError):
        admin.register_model("x", onnx_uri="http://example.com/m.onnx", spec=yolo_spec().model_dump(mode="json"))
    with pytest.raises(ValidationError):
        admin.register_model("x", onnx_uri="file:///m.onnx")
    with pytest.raises(ValidationError):
        admin.register_model("x", onnx_uri="file:///m.onnx", spec={"head": "unknown"})
    with pytest.raises(ValidationError):
        admin.register_model("x", callable="not a target")
    with pytest.raises(NotFoundError):
        admin.register_model("x", builtin="no-such-model")
    with pytest.raises(ValidationError):
        admin.create_endpoint_config("c", variants=[VariantSpec(model=BUILTIN, instance_count=0)])
    with pytest.raises(NotFoundError):
        admin.create_endpoint_config("c", variants=[VariantSpec(model="unknown")])
    assert admin.list_models() == [] and admin.list_endpoint_configs() == []
    assert [m.name for m in admin.model_catalog()] == [BUILTIN, "ppocrv4-document-text", "nsfwjs-image-moderation"]


def test_update_keeps_serving_the_old_config_until_the_new_one_is_loaded(admin, services) -> None:
    deploy(admin, services)
    admin.register_model("renamed", builtin=BUILTIN)
    admin.create_endpoint_config("second", variants=[VariantSpec(variant_name="Second", model="renamed")])
    assert admin.update_endpoint("detector", config="second").status == "Updating"
    assert admin.invoke_endpoint("detector", ASTRONAUT).model.variant == "AllTraffic"
    run_once(services)
    endpoint = admin.describe_endpoint("detector")
    assert (endpoint.status, endpoint.config) == ("InService", "second")
    assert admin.invoke_endpoint("detector", ASTRONAUT).model.variant == "Second"
    admin.delete_endpoint("detector")
    with pytest.raises(NotFoundError):
        admin.describe_endpoint("detector")


def test_routing_starts_one_loop_with_the_walkthrough_input(admin, services) -> None:
    setup_flow(admin, workers=1)
    deploy(admin, services, routing=RoutingRule(flow="review", threshold=0.5))
    first = admin.invoke_endpoint("detector", ASTRONAUT, idempotency_key="upload-1")
    assert first.routing is not None
    assert first.routing.model_dump() == {"reason": "low-confidence", "flow": "review", "threshold": 0.5}
    loop = admin.describe_loop(first.human_loop.name)
    assert loop.status == "InProgress" and loop.arn == first.human_loop.arn
    task_input = loop.input
    assert services.store.get(task_input["taskObject"]) == ASTRONAUT
    assert task_input["taskObject"].endswith(hashlib.sha256(ASTRONAUT).hexdigest() + ".jpg")
    confident = [d for d in first.detections if d.score >= 0.5]
    assert task_input["initialValue"] == [
        {
            "label": d.label,
            "left": round(d.left),
            "top": round(d.top),
            "width": round(d.right - d.left),
            "height": round(d.bottom - d.top),
        }
        for d in confident
    ]
    assert task_input["initialValue"][0]["label"] == "person"
    counted = [d for d in first.detections if d.score >= DEFAULT_MIN_SCORE]  # the rest is noise
    assert 0 < len(task_input["predictions"]) == len(counted) < len(first.detections)
    assert len(task_input["labels"]) == 80  # the model's classes (every COCO class)
    # A retry with the same key returns the same answer and starts nothing.
    again = admin.invoke_endpoint("detector", ASTRONAUT, idempotency_key="upload-1")
    assert again.human_loop == first.human_loop and again.prediction_id == first.prediction_id
    assert again == first  # the whole first answer, detections and all
    assert len(admin.list_loops().loops) == 1
    # Without a key, another call is another review.
    assert admin.invoke_endpoint("detector", ASTRONAUT).human_loop.name != first.human_loop.name


def test_invocations_are_counted_for_the_overview(admin, services) -> None:
    """The prediction row is written without the ORM: the invocation counters the admin
    overview reads are still kept, routed or not."""
    setup_flow(admin, workers=1)
    deploy(admin, services, routing=RoutingRule(flow="review", threshold=0.5))
    assert admin.invoke_endpoint("detector", ASTRONAUT).human_loop is not None
    assert admin.invoke_endpoint("detector", ASTRONAUT, threshold=0.0).human_loop is None
    with services.db.read() as s:
        assert loop_stats.invocations_since(s, 0) == loop_stats.Invocations(total=2, routed=1)


def test_confident_images_are_not_routed_and_class_filter(admin, services) -> None:
    setup_flow(admin, workers=1)
    deploy(admin, services, routing=RoutingRule(flow="review", threshold=0.01))
    assert admin.invoke_endpoint("detector", ASTRONAUT).human_loop is None
    only_cats = admin.invoke_endpoint("detector", ASTRONAUT, threshold=0.9, classes=["cat"])
    assert only_cats.human_loop is None  # no cat on the astronaut photo: nothing doubtful
    person = admin.invoke_endpoint("detector", ASTRONAUT, threshold=0.9, classes=["person"])
    assert person.routing.reason == "low-confidence"
    assert admin.describe_loop(person.human_loop.name).input["labels"] == ["person"]


def test_audit_sampling_is_deterministic(admin, services) -> None:
    setup_flow(admin, workers=1)
    deploy(admin, services, routing=RoutingRule(flow="review", threshold=0.0, sample_percent=50))
    for name in ("astronaut.jpg", "motorcycle_left.jpg", "coffee.jpg", "chelsea.jpg"):
        image = (DATA / name).read_bytes()
        expected = int(hashlib.sha256(image).hexdigest()[:8], 16) % AUDIT_BUCKETS < 5000
        decisions = {admin.invoke_endpoint("detector", image).routing.reason for _ in range(2)}
        assert decisions == {"audit" if expected else None}, name


def test_routing_to_an_unknown_flow_is_refused(admin, services) -> None:
    deploy(admin, services)
    with pytest.raises(NotFoundError):
        admin.invoke_endpoint("detector", ASTRONAUT, flow="nope")
    with pytest.raises(ValidationError):
        admin.invoke_endpoint("detector", ASTRONAUT, threshold=0.5)  # no flow to route to
    with pytest.raises(ValidationError):
        admin.invoke_endpoint("detector", ASTRONAUT, flow="x", threshold=1.5)
    assert json.loads(json.dumps(admin.list_loops().loops)) == []


def _red_square(box: tuple[int, int, int, int] | None) -> bytes:
    image = np.zeros((60, 80, 3), dtype=np.uint8)
    if box:
        left, top, right, bottom = box
        image[top:bottom, left:right] = (255, 0, 0)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "PNG")
    return buf.getvalue()


def test_threshold_curve_replays_the_prediction_log_against_the_answers(
    admin, services, app_client, monkeypatch
) -> None:
    from tests.helpers import worker_client

    emails = setup_flow(admin, workers=1)
    admin.register_model("reds", callable="tests.data.callable_model:red_boxes")  # one "red" box, score 0.9
    deploy(admin, services, name="reds", model="reds", routing=RoutingRule(flow="review", threshold=0.95))
    kept = admin.invoke_endpoint("reds", _red_square((10, 10, 30, 30)), content_type="image/png")
    fixed = admin.invoke_endpoint("reds", _red_square((40, 20, 70, 50)), content_type="image/png")
    empty = admin.invoke_endpoint("reds", _red_square(None), content_type="image/png")
    assert kept.human_loop and fixed.human_loop and empty.human_loop is None
    worker = worker_client(app_client, emails[0])
    answers = {
        kept.human_loop.name: [{"label": "red", "left": 10, "top": 10, "width": 20, "height": 20}],
        fixed.human_loop.name: [
            {"label": "red", "left": 40, "top": 20, "width": 30, "height": 30},
            {"label": "red", "left": 0, "top": 0, "width": 5, "height": 5},  # the model missed this one
        ],
    }
    for _ in range(2):
        task = worker.next_task()
        loop_name = next(name for name in answers if admin.describe_loop(name).input == task.input)
        boxes = answers[loop_name]
        worker.submit(task.task_id, {"annotatedResult": {"boundingBoxes": boxes, "inputImageProperties": {}}})
    curve = admin.threshold_curve("review")
    assert (curve.images, curve.reviewed) == (3, 2)
    by_threshold = {p.threshold: (p.routed, p.missed) for p in curve.points}
    assert by_threshold[0.0] == by_threshold[0.9] == (0, 1)  # nothing goes to people; the fix is missed
    assert by_threshold[0.95] == by_threshold[1.0] == (2, 0)  # both go to people; nothing is missed
    # Replayed as the rule looks: with a noise floor over the model's 0.9, its boxes count
    # for nothing, no image would go to people, and both corrected images would be missed.
    admin.update_endpoint("reds", routing=RoutingRule(flow="review", threshold=0.95, min_score=0.92))
    by_threshold = {p.threshold: (p.routed, p.missed) for p in admin.threshold_curve("review").points}
    assert by_threshold[0.95] == (0, 2)
    monkeypatch.setattr(threshold, "REPLAY_LIMIT", 2)  # only the latest images are replayed
    assert admin.threshold_curve("review").images == 2


def test_deleting_rules_for_models_configs_and_endpoints(admin, services) -> None:
    admin.register_model("mine", builtin=BUILTIN)
    deploy(admin, services, model="mine")
    with pytest.raises(ResourceInUseError, match="used by endpoint 'detector'"):
        admin.delete_model("mine")
    with pytest.raises(ResourceInUseError, match="used by endpoint 'detector'"):
        admin.delete_endpoint_config("detector-config")
    admin.create_endpoint_config("shared", variants=[VariantSpec(model="mine")])
    assert admin.update_endpoint("detector", config="shared").status == "Updating"
    with pytest.raises(ResourceInUseError):  # being loaded
        admin.delete_endpoint_config("shared")
    run_once(services)
    admin.delete_endpoint_config("detector-config")  # no longer used
    admin.delete_endpoint("detector")
    assert [c.name for c in admin.list_endpoint_configs()] == ["shared"]  # not the endpoint's own: kept
    deploy(admin, services, model="mine")  # the name is free again
    admin.delete_endpoint("detector")  # and its own config goes with it
    assert [c.name for c in admin.list_endpoint_configs()] == ["shared"]
    admin.delete_model("mine")
    assert admin.list_models() == []


def test_a_routing_rules_noise_floor_stays_below_its_threshold() -> None:
    from pydantic import ValidationError as PydanticValidationError

    from loopin.routing import with_overrides

    assert RoutingRule(flow="f").min_score == DEFAULT_MIN_SCORE
    assert RoutingRule(flow="f", threshold=0.15).min_score == 0  # "below 0.15" keeps its meaning
    with pytest.raises(PydanticValidationError, match="must be below the threshold"):
        RoutingRule(flow="f", threshold=0.5, min_score=0.6)
    base = RoutingRule(flow="f", threshold=0.8, min_score=0.3)
    assert with_overrides(base, {"threshold": 0.9}).min_score == 0.3  # type: ignore[union-attr]
    assert with_overrides(base, {"threshold": 0.28}).min_score == 0  # type: ignore[union-attr]
    base = RoutingRule(flow="f", threshold=0.8, min_score=0.5, class_min_scores={"cat": 0.6, "dog": 0.1})
    lower = with_overrides(base, {"threshold": 0.4})
    assert lower is not None and (lower.min_score, lower.class_min_scores) == (DEFAULT_MIN_SCORE, {"dog": 0.1})
    assert with_overrides(base, {"threshold": 0.1}).min_score == 0  # type: ignore[union-attr]


PHOTOS = ("astronaut.jpg", "chelsea.jpg", "coffee.jpg", "motorcycle_left.jpg")


def test_the_default_rule_routes_only_uncertain_detections_of_the_bundled_photos(admin, services) -> None:
    # The detector reports everything down to 0.05: that long tail is noise, not doubt. With
    # the default lower bound and the demo's threshold, only photos with a real doubt go.
    setup_flow(admin, workers=1)
    deploy(admin, services, routing=RoutingRule(flow="review", threshold=0.5))
    routed = {name for name in PHOTOS if admin.invoke_endpoint("detector", (DATA / name).read_bytes()).human_loop}
    # astronaut: a chair at 0.32; chelsea: "dog" 0.41 beside "cat" 0.54; motorcycle: a second
    # motorcycle at 0.33. The coffee photo's doubts (cups at 0.27 and 0.25) are under 0.3.
    assert routed == {"astronaut.jpg", "chelsea.jpg", "motorcycle_left.jpg"}
    # The threshold picture replays the same rule: a gradual curve, not 0 % then 100 %.
    by_threshold = {p.threshold: p.routed for p in admin.threshold_curve("review").points}
    assert [by_threshold[t] for t in (0.2, 0.3, 0.35, 0.4, 0.5, 0.55, 0.8)] == [0, 0, 2, 2, 3, 4, 4]


def test_a_class_can_have_its_own_lower_bound(admin, services) -> None:
    setup_flow(admin, workers=1)
    rule = RoutingRule(flow="review", threshold=0.5, class_min_scores={"chair": 0.4, "cell phone": 0.25})
    deploy(admin, services, routing=rule)
    assert admin.invoke_endpoint("detector", ASTRONAUT).human_loop is None  # the chair at 0.32 is noise now
    coffee = admin.invoke_endpoint("detector", (DATA / "coffee.jpg").read_bytes())
    assert coffee.human_loop is None
    chelsea = admin.invoke_endpoint("detector", (DATA / "chelsea.jpg").read_bytes())
    predictions = admin.describe_loop(chelsea.human_loop.name).input["predictions"]
    assert not any(p["label"] == "chair" for p in predictions)
    assert {p["label"] for p in predictions if p["score"] < 0.3} == {"cell phone"}  # 0.26: counts for phones
    by_threshold = {p.threshold: p.routed for p in admin.threshold_curve("review").points}
    assert by_threshold[0.5] == 1  # the replay follows the class's bound too
    from pydantic import ValidationError as PydanticValidationError

    with pytest.raises(PydanticValidationError, match=r"class_min_scores\['cat'\] \(0.6\) must be below the threshold"):
        RoutingRule(flow="review", threshold=0.5, class_min_scores={"cat": 0.6})


def test_the_loop_offers_the_whole_label_set_not_only_what_the_model_saw(admin, services) -> None:
    from loopin.inference import BUILTIN_MODELS

    setup_flow(admin, workers=1)
    deploy(admin, services, routing=RoutingRule(flow="review", threshold=0.5))
    every_class = list(BUILTIN_MODELS[BUILTIN].classes)
    result = admin.invoke_endpoint("detector", ASTRONAUT)
    labels = admin.describe_loop(result.human_loop.name).input["labels"]
    assert labels == every_class and "bicycle" in labels  # a worker can label a bicycle the model missed
    # A configured label set (the flow's) is offered as it is; a pre-filled box's label is added.
    admin.update_endpoint(
        "detector", routing=RoutingRule(flow="review", threshold=0.5, labels=("car", "bicycle", "motorcycle"))
    )
    result = admin.invoke_endpoint("detector", ASTRONAUT)
    assert admin.describe_loop(result.human_loop.name).input["labels"] == ["car", "bicycle", "motorcycle", "person"]


def test_the_builtin_model_is_named_for_what_it_is_and_its_old_name_still_works(admin, services) -> None:
    catalog = admin.model_catalog()
    assert [(m.name, m.aliases) for m in catalog] == [
        ("nanodet-g-416-coco", ["nanodet-m-416-coco"]),
        ("ppocrv4-document-text", []),
        ("nsfwjs-image-moderation", []),
    ]
    assert "NanoDet-g" in catalog[0].description
    # An endpoint config (and a registered model) written with the old name deploy and run the same model.
    endpoint = deploy(admin, services, name="old", model="nanodet-m-416-coco")
    assert endpoint.status == "InService"
    old = admin.invoke_endpoint("old", ASTRONAUT)
    assert old.model.name == "nanodet-g-416-coco"
    admin.register_model("gluoncv-model", builtin="nanodet-m-416-coco")
    deploy(admin, services, name="mine", model="gluoncv-model")
    assert admin.invoke_endpoint("mine", ASTRONAUT).detections == old.detections
    with pytest.raises(ResourceInUseError):
        admin.register_model("nanodet-m-416-coco", builtin=BUILTIN)  # still a built-in's name
    with pytest.raises(ValidationError):
        admin.delete_model("nanodet-m-416-coco")


def test_the_sdk_returns_typed_models_all_the_way_down(admin, services) -> None:
    setup_flow(admin, workers=1)
    deploy(admin, services, routing=RoutingRule(flow="review", threshold=0.5))
    result = admin.invoke_endpoint("detector", ASTRONAUT, idempotency_key="typed")
    assert result.human_loop is not None and result.routing is not None
    assert admin.describe_loop(result.human_loop.name).arn == result.human_loop.arn
    assert result.human_loop.status == "InProgress" and result.routing.reason == "low-confidence"
    assert (result.routing.flow, result.routing.threshold) == ("review", 0.5)
    assert (result.model.name, result.model.variant) == (BUILTIN, "AllTraffic")
    assert (result.image.width, result.image.height) == (512, 512)
    # Code written against the dicts of earlier versions keeps working.
    assert result.human_loop["name"] == result.human_loop.name and result.model["version"] == "1"
    variant = next(c for c in admin.list_endpoint_configs() if c.name == "detector-config").variants[0]
    assert (variant.variant_name, variant.model, variant.instance_count, variant.weight) == (
        "AllTraffic",
        BUILTIN,
        2,
        1.0,
    )
