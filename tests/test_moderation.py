"""Image moderation: the built-in classifier (nsfwjs-image-moderation) on a bundled photo, a
user's ONNX classifier whose classes map to moderation labels (through the HTTP API), routing
to a review in A2I's Rekognition shape that a worker answers (output.json), and a flow's
activation conditions (CreateFlowDefinition as boto3 signs it) deciding in place of the rule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from loopin.background import run_once
from loopin.inference import Detector
from loopin.schemas import RoutingRule, VariantSpec
from tests.aws_support import signed_headers
from tests.helpers import admin_client, setup_flow, worker_client
from tests.test_inference import constant_model

MODEL = "nsfwjs-image-moderation"
DATA = Path(__file__).parent / "data"
ASTRONAUT = (DATA / "astronaut.jpg").read_bytes()
REKOGNITION = "AWS/Rekognition/DetectModerationLabels/Image/V3"
ROLE = "arn:aws:iam::123456789012:role/service-role/AmazonSageMaker-ExecutionRole"

# A user's classifier: four classes, constant logits (so known probabilities), and a mapping
# of its classes to Rekognition's labels.
USER_CLASSES = ["safe", "nude", "swimwear", "weapon"]
USER_PROBABILITIES = np.array([0.1, 0.2, 0.6, 0.1])
USER_SPEC = {
    "head": "classifier",
    "class_names": USER_CLASSES,
    "input_size": [32, 32],
    "softmax": True,
    "moderation_labels": [
        {"name": "Explicit Nudity", "classes": ["nude"]},
        {"name": "Suggestive", "classes": ["swimwear"]},
        {"name": "Female Swimwear Or Underwear", "parent_name": "Suggestive", "classes": ["swimwear"]},
        {"name": "Violence", "classes": ["weapon"]},
    ],
}


@pytest.fixture
def admin(app_client: TestClient, access_key: tuple[str, str]):
    return admin_client(app_client, access_key)


def deploy(admin, services, model: str, routing: RoutingRule | None = None) -> None:
    admin.create_endpoint_config(f"{model}-config", variants=[VariantSpec(model=model)])
    admin.create_endpoint("moderation", config=f"{model}-config", routing=routing)
    run_once(services)
    assert admin.describe_endpoint("moderation").status == "InService"


def register_user_classifier(admin, tmp_path: Path) -> None:
    path = tmp_path / "classifier.onnx"
    path.write_bytes(constant_model({"scores": np.log(USER_PROBABILITIES)[np.newaxis]}, [1, 3, 32, 32]))
    admin.register_model("mine", onnx_uri=f"file://{path}", spec=USER_SPEC)


def test_the_builtin_classifier_labels_a_bundled_photo() -> None:
    classifier = Detector.builtin(MODEL)
    result = classifier.detect(ASTRONAUT)
    assert result.moderation is not None
    by_name = {label.name: label for label in result.moderation}
    assert set(by_name) == {"Explicit Nudity", "Illustrated Explicit Nudity", "Suggestive"}
    assert by_name["Illustrated Explicit Nudity"].parent_name == "Explicit Nudity"
    assert by_name["Explicit Nudity"].confidence >= by_name["Illustrated Explicit Nudity"].confidence
    # A portrait in a space suit: nothing to moderate.
    assert all(label.confidence < 0.5 for label in result.moderation)
    confidences = [label.confidence for label in result.moderation]
    assert confidences == sorted(confidences, reverse=True)
    # Its detections are the labels over the whole image, for routing.
    assert [(d.label, d.score, d.right, d.bottom) for d in result.detections] == [
        (label.name, label.confidence, 512, 512) for label in result.moderation
    ]
    answer = result.to_dict()["moderation"]
    assert answer["ModerationLabels"][0].keys() == {"Name", "ParentName", "Confidence"}


def test_a_users_classifier_maps_its_classes_to_moderation_labels(
    admin, services, tmp_path, app_client, access_key, clock
):
    register_user_classifier(admin, tmp_path)
    deploy(admin, services, "mine")
    answer = admin.invoke_endpoint("moderation", ASTRONAUT, content_type="image/jpeg")
    assert answer.moderation is not None
    assert [(m.Name, m.ParentName, round(m.Confidence, 2)) for m in answer.moderation.ModerationLabels] == [
        ("Suggestive", "", 60.0),
        ("Female Swimwear Or Underwear", "Suggestive", 60.0),
        ("Explicit Nudity", "", 20.0),
        ("Violence", "", 10.0),
    ]
    # InvokeEndpoint as boto3 signs it answers with the native body.
    url = "http://testserver/endpoints/moderation/invocations"
    headers = signed_headers(
        "POST", url, access_key, body=ASTRONAUT, headers={"Content-Type": "image/jpeg"}, at_ms=clock.now_ms()
    )
    response = app_client.post(url, content=ASTRONAUT, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["moderation"]["ModerationLabels"][0]["Name"] == "Suggestive"


def test_a_spec_that_does_not_fit_the_classifier_is_refused(tmp_path) -> None:
    from loopin.errors import ValidationError
    from loopin.inference import ModelSpec

    model = constant_model({"scores": np.zeros((1, 3), dtype=np.float32)}, [1, 3, 32, 32])
    with pytest.raises(ValidationError, match="3 scores for 4 classes"):
        Detector.from_onnx(model, ModelSpec.from_dict(USER_SPEC), name="bad")
    with pytest.raises(ValidationError, match="unknown classes"):
        ModelSpec.from_dict(USER_SPEC | {"moderation_labels": [{"name": "Violence", "classes": ["gun"]}]})


def test_doubtful_labels_go_to_review_in_rekognitions_shape(admin, services, app_client, tmp_path) -> None:
    setup_flow(admin, workers=1)
    register_user_classifier(admin, tmp_path)
    # Violence (0.1) is under the lower bound: not reported; the rest are below 0.9: doubtful.
    deploy(admin, services, "mine", routing=RoutingRule(flow="review", threshold=0.9, min_score=0.15))
    answer = admin.invoke_endpoint("moderation", ASTRONAUT, content_type="image/jpeg")
    assert answer.routing is not None and answer.routing.reason == "low-confidence"
    assert answer.human_loop is not None
    task_input = admin.describe_loop(answer.human_loop.name).input
    s3 = task_input["aiServiceRequest"]["image"]["s3Object"]
    assert services.store.get(f"s3://{s3['bucket']}/{s3['name']}") == ASTRONAUT
    reported = task_input["aiServiceResponse"]["moderationLabels"]
    assert [(m["name"], m["parentName"], round(m["confidence"])) for m in reported] == [
        ("Suggestive", "", 60),
        ("Female Swimwear Or Underwear", "Suggestive", 60),
        ("Explicit Nudity", "", 20),
    ]
    assert task_input["selectedAiServiceResponse"]["moderationLabels"] == reported
    assert task_input["awsManagedHumanLoopRequestSource"] == REKOGNITION
    (condition,) = task_input["humanTaskActivationConditionResults"]["Conditions"]
    assert condition["EvaluationResult"] is True and condition["ConditionParameters"]["ConfidenceLessThan"] == 90

    # A worker answers as crowd-rekognition-detect-moderation-labels does; output.json has it.
    worker = worker_client(app_client, "worker0@myteam.example")
    task = worker.next_task()
    assert task is not None
    chosen = [{"name": "Suggestive", "parentName": ""}]
    worker.submit(task.task_id, {REKOGNITION: {"moderationLabels": chosen}})
    run_once(services)
    loop = admin.describe_loop(answer.human_loop.name)
    assert loop.status == "Completed"
    output = json.loads(services.store.get(loop.output_uri))
    assert output["humanAnswers"][0]["answerContent"] == {REKOGNITION: {"moderationLabels": chosen}}
    assert output["inputContent"] == task_input


def create_flow(app_client: TestClient, access_key, clock, name: str, **extra: Any):
    """CreateFlowDefinition as boto3 sends it, through the in-process app."""
    body = {
        "FlowDefinitionName": name,
        "HumanLoopConfig": {
            "WorkteamArn": "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/MyTeam",
            "HumanTaskUiArn": "arn:aws:sagemaker:us-east-1:123456789012:human-task-ui/boxes",
            "TaskTitle": "Moderate",
            "TaskDescription": "Check the labels",
            "TaskCount": 1,
        },
        "OutputConfig": {"S3OutputPath": "s3://review-bucket/moderation"},
        "RoleArn": ROLE,
        **extra,
    }
    data = json.dumps(body).encode()
    headers = {"X-Amz-Target": "SageMaker.CreateFlowDefinition", "Content-Type": "application/x-amz-json-1.1"}
    url = "http://testserver/"
    signed = signed_headers("POST", url, access_key, body=data, headers=headers, at_ms=clock.now_ms())
    return app_client.post(url, content=data, headers=signed)


def test_the_flows_activation_conditions_decide_for_the_builtin_classifier(
    admin, services, app_client, access_key, clock
) -> None:
    setup_flow(admin, workers=1)
    conditions = {
        "Conditions": [
            {
                "ConditionType": "ModerationLabelConfidenceCheck",
                "ConditionParameters": {"ModerationLabelName": "Suggestive", "ConfidenceLessThanEquals": 100},
            }
        ]
    }
    created = create_flow(
        app_client,
        access_key,
        clock,
        "suggestive",
        HumanLoopRequestSource={"AwsManagedHumanLoopRequestSource": REKOGNITION},
        HumanLoopActivationConfig={
            "HumanLoopActivationConditionsConfig": {"HumanLoopActivationConditions": json.dumps(conditions)}
        },
    )
    assert created.status_code == 200, created.text
    # The rule alone would send nothing (threshold 0); the conditions send the image.
    deploy(admin, services, MODEL, routing=RoutingRule(flow="suggestive", threshold=0.0, min_score=0.0))
    answer = admin.invoke_endpoint("moderation", ASTRONAUT, content_type="image/jpeg")
    assert answer.routing is not None and answer.routing.reason == "conditions"
    assert answer.human_loop is not None
    task_input = admin.describe_loop(answer.human_loop.name).input
    assert [m["name"] for m in task_input["selectedAiServiceResponse"]["moderationLabels"]] == ["Suggestive"]
    results = task_input["humanTaskActivationConditionResults"]["Conditions"]
    assert results == [conditions["Conditions"][0] | {"EvaluationResult": True}]
    # A condition that holds for no label: the image is not routed, whatever the rule says.
    never = {
        "Conditions": [
            conditions["Conditions"][0]
            | {"ConditionParameters": {"ModerationLabelName": "Violence", "ConfidenceGreaterThan": 0}}
        ]
    }
    created = create_flow(
        app_client,
        access_key,
        clock,
        "violence",
        HumanLoopRequestSource={"AwsManagedHumanLoopRequestSource": REKOGNITION},
        HumanLoopActivationConfig={
            "HumanLoopActivationConditionsConfig": {"HumanLoopActivationConditions": json.dumps(never)}
        },
    )
    assert created.status_code == 200, created.text
    answer = admin.invoke_endpoint("moderation", ASTRONAUT, content_type="image/jpeg", flow="violence", threshold=1.0)
    assert answer.routing is not None and answer.routing.reason is None and answer.human_loop is None


def test_bad_request_sources_and_conditions_are_validation_exceptions(admin, app_client, access_key, clock) -> None:
    setup_flow(admin, workers=1)
    bad_source = create_flow(
        app_client, access_key, clock, "bad", HumanLoopRequestSource={"AwsManagedHumanLoopRequestSource": "AWS/Nope"}
    )
    assert bad_source.status_code == 400
    assert bad_source.json()["__type"] == "ValidationException"
    assert "HumanLoopRequestSource.AwsManagedHumanLoopRequestSource" in bad_source.json()["message"]
    malformed = create_flow(
        app_client,
        access_key,
        clock,
        "bad",
        HumanLoopRequestSource={"AwsManagedHumanLoopRequestSource": REKOGNITION},
        HumanLoopActivationConfig={"HumanLoopActivationConditionsConfig": {"HumanLoopActivationConditions": "{"}},
    )
    assert malformed.status_code == 400
    assert "HumanLoopActivationConditions is not valid JSON" in malformed.json()["message"]
    assert not any(f.name == "bad" for f in admin.list_flows())  # nothing half-written


def test_the_native_api_and_the_admin_page_show_a_flows_request_source_and_conditions(
    admin, app_client, access_key, clock, admin_headers, admin_console
) -> None:
    setup_flow(admin, workers=1)
    # A label name is any string: the page must show it as text, not as markup.
    conditions = {
        "Conditions": [
            {
                "ConditionType": "ModerationLabelConfidenceCheck",
                "ConditionParameters": {"ModerationLabelName": "<b>Suggestive</b>", "ConfidenceLessThan": 80},
            },
            {"ConditionType": "Sampling", "ConditionParameters": {"RandomSamplingPercentage": 5}},
        ]
    }
    created = create_flow(
        app_client,
        access_key,
        clock,
        "moderate",
        HumanLoopRequestSource={"AwsManagedHumanLoopRequestSource": REKOGNITION},
        HumanLoopActivationConfig={
            "HumanLoopActivationConditionsConfig": {"HumanLoopActivationConditions": json.dumps(conditions)}
        },
    )
    assert created.status_code == 200, created.text
    flow = admin.get_flow("moderate")
    assert (flow.request_source, flow.activation_conditions) == (REKOGNITION, conditions)
    listed = {f.name: f for f in admin.list_flows()}
    assert listed["moderate"].activation_conditions == conditions
    assert (listed["review"].request_source, listed["review"].activation_conditions) == (None, None)
    raw = app_client.get("/api/v1/flows/review", headers=admin_headers).json()
    assert raw["request_source"] is None and raw["activation_conditions"] is None
    created = create_flow(
        app_client,
        access_key,
        clock,
        "unconditional",
        HumanLoopRequestSource={"AwsManagedHumanLoopRequestSource": REKOGNITION},
    )
    assert created.status_code == 200, created.text
    raw = app_client.get("/api/v1/flows/unconditional", headers=admin_headers).json()
    assert (raw["request_source"], raw["activation_conditions"]) == (REKOGNITION, None)

    page = admin_console.get("/admin/flows/moderate")
    assert "Amazon Rekognition DetectModerationLabels V3" in page and f"<code>{REKOGNITION}</code>" in page
    assert "<b>Suggestive</b>" not in page
    assert "&#34;ModerationLabelName&#34;: &#34;&lt;b&gt;Suggestive&lt;/b&gt;&#34;" in page  # indented, escaped
    assert "the endpoint's routing rule decides" in admin_console.get("/admin/flows/unconditional")
    assert 'id="request-source"' not in admin_console.get("/admin/flows/review")  # a custom task type
