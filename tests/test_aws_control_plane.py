"""The SageMaker control plane through boto3 itself: work teams, task UIs (and the render
preview), flow definitions, models, endpoint configs and endpoints; epoch timestamps,
error codes (ResourceNotFound vs ValidationException), pagination and the waiters."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loopin import Client
from loopin.services import Services
from tests import aws_support
from tests.aws_support import client, error_code, signed
from tests.helpers import TEMPLATE
from tests.test_inference import YOLO_ROWS, constant_model, yolo_spec

GLUONCV = (
    "arn:aws:sagemaker:us-east-1:865070037744:model-package/"
    "gluoncv-ssd-resnet501547760463-0f9e6796d2438a1d64bb9b15aac57bc0"
)
ROLE = "arn:aws:iam::123456789012:role/service-role/AmazonSageMaker-ExecutionRole"
FAST = {"Delay": 1, "MaxAttempts": 60}

# The AWS tests' server: real port, clock at the real time (see aws_support).
clock = aws_support.clock
settings = aws_support.settings
url = aws_support.url


@pytest.fixture
def sm(url: str, access_key: tuple[str, str]) -> Any:
    return client("sagemaker", url, access_key)


def raw(url: str, key: tuple[str, str], operation: str, body: dict[str, Any]) -> Any:
    headers = {"X-Amz-Target": f"SageMaker.{operation}", "Content-Type": "application/x-amz-json-1.1"}
    return signed("POST", url + "/", key, body=json.dumps(body).encode(), headers=headers)


def review_setup(sm: Any) -> tuple[str, str, str]:
    team = sm.create_workteam(
        WorkteamName="MyTeam",
        MemberDefinitions=[{"CognitoMemberDefinition": {"UserPool": "p_1", "UserGroup": "g", "ClientId": "c"}}],
        Description="Private reviewers",
    )["WorkteamArn"]
    ui = sm.create_human_task_ui(HumanTaskUiName="object-detection-template", UiTemplate={"Content": TEMPLATE})
    flow = sm.create_flow_definition(
        FlowDefinitionName="fd-gluon",
        HumanLoopConfig={
            "WorkteamArn": team,
            "HumanTaskUiArn": ui["HumanTaskUiArn"],
            "TaskTitle": "Check the boxes",
            "TaskDescription": "Fix the boxes the detector drew",
            "TaskCount": 1,
            "TaskAvailabilityLifetimeInSeconds": 3600,
            "TaskTimeLimitInSeconds": 300,
        },
        OutputConfig={"S3OutputPath": "s3://review-bucket/a2i-results"},
        RoleArn=ROLE,
    )
    return team, ui["HumanTaskUiArn"], flow["FlowDefinitionArn"]


def test_workteam_create_describe_update_list_delete(sm, url, access_key, settings) -> None:
    arn, _, _ = review_setup(sm)
    assert arn == "arn:aws:sagemaker:us-east-1:000000000000:workteam/private-crowd/MyTeam"
    team = sm.describe_workteam(WorkteamName="MyTeam")["Workteam"]
    assert team["SubDomain"] == f"127.0.0.1:{settings.port}" and team["Description"] == "Private reviewers"
    assert isinstance(team["CreateDate"], dt.datetime)
    updated = sm.update_workteam(WorkteamName="MyTeam", Description="Reviewers")["Workteam"]
    assert updated["Description"] == "Reviewers"
    listed = sm.list_workteams(NameContains="myteam")["Workteams"]
    assert [t["WorkteamName"] for t in listed] == ["MyTeam"]
    raw_team = raw(url, access_key, "DescribeWorkteam", {"WorkteamName": "MyTeam"}).json()["Workteam"]
    assert isinstance(raw_team["CreateDate"], float)  # json 1.1: epoch seconds
    with pytest.raises(sm.exceptions.ClientError) as caught:  # the flow uses it
        sm.delete_workteam(WorkteamName="MyTeam")
    assert error_code(caught.value) == (400, "ResourceInUse")
    with pytest.raises(sm.exceptions.ResourceNotFound):
        sm.describe_workteam(WorkteamName="Nobody")


def test_task_ui_describe_gives_url_and_sha256_and_missing_is_resource_not_found(sm) -> None:
    review_setup(sm)
    ui = sm.describe_human_task_ui(HumanTaskUiName="object-detection-template")
    assert ui["HumanTaskUiStatus"] == "Active" and len(ui["UiTemplate"]["ContentSha256"]) == 64
    assert ui["UiTemplate"]["Url"].endswith("/api/v1/task-uis/object-detection-template")
    assert [u["HumanTaskUiName"] for u in sm.list_human_task_uis()["HumanTaskUiSummaries"]] == [
        "object-detection-template"
    ]
    with pytest.raises(sm.exceptions.ResourceNotFound) as caught:
        sm.describe_human_task_ui(HumanTaskUiName="nope")
    assert error_code(caught.value) == (400, "ResourceNotFound")
    with pytest.raises(sm.exceptions.ClientError) as caught:
        sm.create_human_task_ui(HumanTaskUiName="broken", UiTemplate={"Content": "{% if %}"})
    assert error_code(caught.value) == (400, "ValidationException")


def test_render_ui_template_previews_the_task_with_granted_urls(sm) -> None:
    _, ui_arn, _ = review_setup(sm)
    task = {"Input": json.dumps({"taskObject": "s3://review-bucket/cat.jpg", "labels": ["cat"], "initialValue": []})}
    rendered = sm.render_ui_template(HumanTaskUiArn=ui_arn, Task=task, RoleArn=ROLE)
    assert rendered["Errors"] == [] and 'name="annotatedResult"' in rendered["RenderedContent"]
    assert "s3://review-bucket/cat.jpg" not in rendered["RenderedContent"]  # a signed URL instead
    broken = sm.render_ui_template(UiTemplate={"Content": "{{ task.input | nope }}"}, Task=task, RoleArn=ROLE)
    assert broken["RenderedContent"] == "" and broken["Errors"][0]["Code"] == "RenderingError"


def test_an_unknown_crowd_element_is_reported_by_render_ui_template_and_logged_on_create(sm, caplog) -> None:
    content = "<crowd-form><crowd-sketchpad name='drawing'></crowd-sketchpad></crowd-form>"
    with caplog.at_level("WARNING", logger="loopin.aws"):
        created = sm.create_human_task_ui(HumanTaskUiName="sketch", UiTemplate={"Content": content})
    assert set(created) == {"HumanTaskUiArn", "ResponseMetadata"}  # AWS's shape, unchanged
    assert any("<crowd-sketchpad> is not an element loopin knows" in r.getMessage() for r in caplog.records)
    task = {"Input": json.dumps({"x": 1})}
    rendered = sm.render_ui_template(UiTemplate={"Content": content}, Task=task, RoleArn=ROLE)
    assert "crowd-sketchpad" in rendered["RenderedContent"]  # still rendered, as AWS would
    assert [e["Code"] for e in rendered["Errors"]] == ["UnknownCrowdElement"]
    assert rendered["Errors"][0]["Message"].startswith("<crowd-sketchpad> is not an element loopin knows")


def test_flow_definition_round_trip_and_list_pages(sm, url, access_key) -> None:
    team, ui, arn = review_setup(sm)
    assert arn == "arn:aws:sagemaker:us-east-1:000000000000:flow-definition/fd-gluon"
    flow = sm.describe_flow_definition(FlowDefinitionName="fd-gluon")
    assert flow["FlowDefinitionStatus"] == "Active" and flow["RoleArn"] == ROLE
    assert flow["HumanLoopConfig"]["WorkteamArn"] == team and flow["HumanLoopConfig"]["HumanTaskUiArn"] == ui
    assert flow["HumanLoopConfig"]["TaskTimeLimitInSeconds"] == 300
    assert flow["OutputConfig"] == {"S3OutputPath": "s3://review-bucket/a2i-results"}
    config = dict(flow["HumanLoopConfig"])
    for i in range(3):
        sm.create_flow_definition(
            FlowDefinitionName=f"more-{i}", HumanLoopConfig=config, OutputConfig=flow["OutputConfig"], RoleArn=ROLE
        )
    pages = list(sm.get_paginator("list_flow_definitions").paginate(PaginationConfig={"PageSize": 3}))
    names = [f["FlowDefinitionName"] for p in pages for f in p["FlowDefinitionSummaries"]]
    assert sorted(names) == ["fd-gluon", "more-0", "more-1", "more-2"] and len(pages) == 2
    assert "NextToken" not in pages[-1]
    raw_summary = raw(url, access_key, "ListFlowDefinitions", {}).json()["FlowDefinitionSummaries"][0]
    assert isinstance(raw_summary["CreationTime"], float)
    with pytest.raises(sm.exceptions.ResourceInUse):
        sm.create_flow_definition(
            FlowDefinitionName="fd-gluon", HumanLoopConfig=config, OutputConfig=flow["OutputConfig"], RoleArn=ROLE
        )
    sm.delete_flow_definition(FlowDefinitionName="more-0")
    with pytest.raises(sm.exceptions.ResourceNotFound):
        sm.describe_flow_definition(FlowDefinitionName="more-0")


TEXTRACT_CONDITIONS = json.dumps(
    {
        "Conditions": [
            {
                "Or": [
                    {
                        "ConditionType": "ImportantFormKeyConfidenceCheck",
                        "ConditionParameters": {
                            "ImportantFormKey": "Mail address",
                            "ImportantFormKeyAliases": ["Mail Address:", "Mailing address"],
                            "KeyValueBlockConfidenceLessThan": 99,
                            "WordBlockConfidenceLessThan": 99,
                        },
                    },
                    {
                        "ConditionType": "MissingImportantFormKey",
                        "ConditionParameters": {"ImportantFormKey": "Mail address"},
                    },
                ]
            },
            {"ConditionType": "Sampling", "ConditionParameters": {"RandomSamplingPercentage": 5}},
        ]
    },
    indent=1,
)


def test_built_in_task_types_round_trip_as_given_and_bad_ones_name_the_field(sm, url, access_key) -> None:
    team, ui, _ = review_setup(sm)
    config = {"WorkteamArn": team, "HumanTaskUiArn": ui, "TaskTitle": "t", "TaskDescription": "d", "TaskCount": 1}

    def create(name: str, **extra: Any) -> Any:
        return sm.create_flow_definition(
            FlowDefinitionName=name,
            HumanLoopConfig=config,
            OutputConfig={"S3OutputPath": "s3://review-bucket/out"},
            RoleArn=ROLE,
            **extra,
        )

    source = {"AwsManagedHumanLoopRequestSource": "AWS/Textract/AnalyzeDocument/Forms/V1"}
    activation = {"HumanLoopActivationConditionsConfig": {"HumanLoopActivationConditions": TEXTRACT_CONDITIONS}}
    create("textract", HumanLoopRequestSource=source, HumanLoopActivationConfig=activation)
    flow = sm.describe_flow_definition(FlowDefinitionName="textract")
    assert flow["HumanLoopRequestSource"] == source
    assert flow["HumanLoopActivationConfig"] == activation  # the JSON string exactly as given
    with Client(url, access_key_id=access_key[0], secret_access_key=access_key[1]) as native_api:
        native = native_api.get_flow("textract")
    assert native.request_source == source["AwsManagedHumanLoopRequestSource"]
    assert native.activation_conditions == json.loads(TEXTRACT_CONDITIONS)  # as an object
    v4 = {"AwsManagedHumanLoopRequestSource": "AWS/Rekognition/DetectModerationLabels/Image/V4"}
    create("rekognition", HumanLoopRequestSource=v4)
    flow = sm.describe_flow_definition(FlowDefinitionName="rekognition")
    assert flow["HumanLoopRequestSource"] == v4 and "HumanLoopActivationConfig" not in flow
    assert "HumanLoopRequestSource" not in sm.describe_flow_definition(FlowDefinitionName="fd-gluon")

    for extra, field in [
        (
            {"HumanLoopRequestSource": {"AwsManagedHumanLoopRequestSource": "AWS/Comprehend/V1"}},
            "AwsManagedHumanLoopRequestSource",
        ),
        ({"HumanLoopActivationConfig": activation}, "needs HumanLoopRequestSource"),  # a custom task type
        (
            {
                "HumanLoopRequestSource": source,
                "HumanLoopActivationConfig": {
                    "HumanLoopActivationConditionsConfig": {
                        "HumanLoopActivationConditions": '{"Conditions": [{"And": 1}]}'
                    }
                },
            },
            "Conditions[0].And must be a non-empty list",
        ),
    ]:
        with pytest.raises(sm.exceptions.ClientError) as caught:
            create("refused", **extra)
        assert error_code(caught.value) == (400, "ValidationException")
        assert field in caught.value.response["Error"]["Message"]
    with pytest.raises(sm.exceptions.ResourceNotFound):
        sm.describe_flow_definition(FlowDefinitionName="refused")


def deploy(sm: Any, *, model: str = "gluoncv-model", **container: Any) -> None:
    sm.create_model(ModelName=model, PrimaryContainer=container or {"ModelPackageName": GLUONCV}, ExecutionRoleArn=ROLE)
    sm.create_endpoint_config(
        EndpointConfigName=f"{model}-config",
        ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": model, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}
        ],
    )
    sm.create_endpoint(EndpointName=f"{model}-endpoint", EndpointConfigName=f"{model}-config")


def test_hosting_from_the_marketplace_package_with_the_waiters(sm, url, access_key) -> None:
    deploy(sm)
    assert sm.describe_endpoint(EndpointName="gluoncv-model-endpoint")["EndpointStatus"] in ("Creating", "InService")
    sm.get_waiter("endpoint_in_service").wait(EndpointName="gluoncv-model-endpoint", WaiterConfig=FAST)
    endpoint = sm.describe_endpoint(EndpointName="gluoncv-model-endpoint")
    assert endpoint["EndpointStatus"] == "InService" and endpoint["EndpointConfigName"] == "gluoncv-model-config"
    assert endpoint["ProductionVariants"][0]["VariantName"] == "AllTraffic"
    assert endpoint["EndpointArn"] == "arn:aws:sagemaker:us-east-1:000000000000:endpoint/gluoncv-model-endpoint"
    model = sm.describe_model(ModelName="gluoncv-model")
    assert model["PrimaryContainer"] == {"ModelPackageName": GLUONCV} and model["ExecutionRoleArn"] == ROLE
    config = sm.describe_endpoint_config(EndpointConfigName="gluoncv-model-config")
    assert config["ProductionVariants"][0]["ModelName"] == "gluoncv-model"
    assert [e["EndpointName"] for e in sm.list_endpoints(StatusEquals="InService")["Endpoints"]] == [
        "gluoncv-model-endpoint"
    ]
    raw_endpoint = raw(url, access_key, "DescribeEndpoint", {"EndpointName": "gluoncv-model-endpoint"}).json()
    assert isinstance(raw_endpoint["CreationTime"], float) and isinstance(raw_endpoint["LastModifiedTime"], float)
    sm.delete_endpoint(EndpointName="gluoncv-model-endpoint")
    sm.get_waiter("endpoint_deleted").wait(EndpointName="gluoncv-model-endpoint", WaiterConfig=FAST)
    sm.delete_endpoint_config(EndpointConfigName="gluoncv-model-config")
    sm.delete_model(ModelName="gluoncv-model")
    assert sm.list_models()["Models"] == [] and sm.list_endpoint_configs()["EndpointConfigs"] == []


def test_the_marketplace_package_is_recognised_by_name_in_any_region(sm) -> None:
    for i, package in enumerate(
        [
            GLUONCV.replace("us-east-1:865070037744", "eu-west-1:985815980388"),
            "gluoncv-ssd-resnet501547760463-0f9e6796d2438a1d64bb9b15aac57bc0",
        ]
    ):
        sm.create_model(ModelName=f"m{i}", PrimaryContainer={"ModelPackageName": package})
    with pytest.raises(sm.exceptions.ClientError) as caught:
        sm.create_model(ModelName="other", PrimaryContainer={"ModelPackageName": "some-other-package"})
    assert error_code(caught.value) == (400, "ValidationException")
    assert "gluoncv-ssd-resnet50" in caught.value.response["Error"]["Message"]


def test_an_onnx_model_data_url_with_its_spec_is_a_user_model(sm, tmp_path: Path, services: Services) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(constant_model({"output0": YOLO_ROWS.T[np.newaxis]}, [1, 3, 64, 64]))
    spec = json.dumps(yolo_spec().model_dump(mode="json"))
    deploy(sm, model="mine", ModelDataUrl=f"file://{path}", Environment={"LOOPIN_MODEL_SPEC": spec})
    sm.get_waiter("endpoint_in_service").wait(EndpointName="mine-endpoint", WaiterConfig=FAST)
    with pytest.raises(sm.exceptions.ClientError) as caught:
        sm.create_model(ModelName="nospec", PrimaryContainer={"ModelDataUrl": f"file://{path}"})
    assert "LOOPIN_MODEL_SPEC" in caught.value.response["Error"]["Message"]
    with pytest.raises(sm.exceptions.ClientError) as caught:
        sm.create_model(ModelName="tarball", PrimaryContainer={"ModelDataUrl": "s3://b/model.tar.gz"})
    assert ".onnx" in caught.value.response["Error"]["Message"]


def test_a_model_that_cannot_load_fails_the_in_service_waiter(sm, tmp_path: Path) -> None:
    spec = json.dumps(yolo_spec().model_dump(mode="json"))
    deploy(sm, model="missing", ModelDataUrl=f"file://{tmp_path}/gone.onnx", Environment={"LOOPIN_MODEL_SPEC": spec})
    with pytest.raises(Exception, match="Failed"):
        sm.get_waiter("endpoint_in_service").wait(EndpointName="missing-endpoint", WaiterConfig=FAST)
    assert "gone.onnx" in sm.describe_endpoint(EndpointName="missing-endpoint")["FailureReason"]


def test_update_endpoint_goes_updating_then_in_service_on_the_new_config(sm) -> None:
    deploy(sm)
    sm.get_waiter("endpoint_in_service").wait(EndpointName="gluoncv-model-endpoint", WaiterConfig=FAST)
    sm.create_endpoint_config(
        EndpointConfigName="bigger",
        ProductionVariants=[{"VariantName": "v2", "ModelName": "gluoncv-model", "InitialInstanceCount": 2}],
    )
    sm.update_endpoint(EndpointName="gluoncv-model-endpoint", EndpointConfigName="bigger")
    sm.get_waiter("endpoint_in_service").wait(EndpointName="gluoncv-model-endpoint", WaiterConfig=FAST)
    endpoint = sm.describe_endpoint(EndpointName="gluoncv-model-endpoint")
    assert endpoint["EndpointConfigName"] == "bigger" and endpoint["ProductionVariants"][0]["VariantName"] == "v2"


def test_missing_hosting_resources_are_validation_exceptions(sm) -> None:
    for call in (
        lambda: sm.describe_endpoint(EndpointName="nope"),
        lambda: sm.describe_model(ModelName="nope"),
        lambda: sm.describe_endpoint_config(EndpointConfigName="nope"),
        lambda: sm.delete_endpoint(EndpointName="nope"),
        lambda: sm.create_endpoint(EndpointName="e", EndpointConfigName="nope"),
    ):
        with pytest.raises(sm.exceptions.ClientError) as caught:
            call()
        assert error_code(caught.value) == (400, "ValidationException")


def test_an_unsupported_operation_is_named_in_the_error(sm) -> None:
    with pytest.raises(sm.exceptions.ClientError) as caught:
        sm.list_training_jobs()
    assert error_code(caught.value) == (400, "UnknownOperationException")
    assert "ListTrainingJobs" in caught.value.response["Error"]["Message"]


def test_malformed_json_and_wrong_types_are_validation_exceptions(url, access_key) -> None:
    headers = {"X-Amz-Target": "SageMaker.ListModels", "Content-Type": "application/x-amz-json-1.1"}
    response = signed("POST", url + "/", access_key, body=b"{not json", headers=headers)
    assert response.status_code == 400 and response.json()["__type"] == "ValidationException"
    wrong = raw(url, access_key, "CreateModel", {"ModelName": 5})
    assert wrong.status_code == 400 and "ModelName must be a string" in wrong.json()["message"]
