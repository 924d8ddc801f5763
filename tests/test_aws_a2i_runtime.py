"""sagemaker-a2i-runtime through boto3 itself against a served loopin: routes, status and
error codes, ISO timestamps, pagination, idempotency. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.parsers import RestJSONParser
from botocore.session import get_session

from loopin.client import Client, WorkerClient
from loopin.clock import ManualClock
from loopin.errors import QuotaExceededError
from loopin.web.aws.errors import a2i_error, rest_json_response
from tests import aws_support
from tests.aws_support import client, error_code, signed
from tests.helpers import PASSWORD, setup_flow

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
INPUT = json.dumps({"taskObject": "s3://review-bucket/cat.jpg", "labels": ["cat"], "initialValue": []})

# The AWS tests' server: real port, clock at the real time (see aws_support).
clock = aws_support.clock
settings = aws_support.settings
url = aws_support.url


@pytest.fixture
def flow_arn(url: str, access_key: tuple[str, str]) -> str:
    with Client(url, access_key_id=access_key[0], secret_access_key=access_key[1]) as admin:
        setup_flow(admin, workers=1)
        return admin.get_flow("review").arn


@pytest.fixture
def a2i(url: str, access_key: tuple[str, str]) -> Any:
    return client("sagemaker-a2i-runtime", url, access_key)


def start(a2i: Any, flow_arn: str, name: str, content: str = INPUT) -> str:
    arn: str = a2i.start_human_loop(
        HumanLoopName=name, FlowDefinitionArn=flow_arn, HumanLoopInput={"InputContent": content}
    )["HumanLoopArn"]
    return arn


def test_start_describe_with_iso_times_and_the_same_start_again_is_idempotent(a2i, flow_arn, url, access_key) -> None:
    arn = start(a2i, flow_arn, "Loop-1")
    assert arn == "arn:aws:sagemaker:us-east-1:000000000000:human-loop/Loop-1"
    assert start(a2i, flow_arn, "Loop-1") == arn  # a retry: same name and input
    described = a2i.describe_human_loop(HumanLoopName="Loop-1")
    assert described["HumanLoopStatus"] == "InProgress" and described["FlowDefinitionArn"] == flow_arn
    assert described["ResponseMetadata"]["HTTPStatusCode"] == 200 and described["ResponseMetadata"]["RequestId"]
    assert "HumanLoopOutput" not in described
    raw = signed("GET", f"{url}/human-loops/Loop-1", access_key).json()
    assert ISO_MS.match(raw["CreationTime"])


def test_the_same_name_with_another_input_is_a_409_conflict(a2i, flow_arn) -> None:
    start(a2i, flow_arn, "loop-1")
    with pytest.raises(a2i.exceptions.ConflictException) as caught:
        start(a2i, flow_arn, "loop-1", json.dumps({"other": 1}))
    assert error_code(caught.value) == (409, "ConflictException")


@pytest.mark.parametrize(
    "name,content,problem",
    [
        ("bad_name", INPUT, "not valid"),
        ("x" * 64, INPUT, "63"),
        ("loop-1", "not json", "JSON"),
        ("loop-1", "[1, 2]", "object"),
    ],
)
def test_invalid_starts_are_400_validation_exceptions(a2i, flow_arn, name, content, problem) -> None:
    with pytest.raises(a2i.exceptions.ValidationException) as caught:
        start(a2i, flow_arn, name, content)
    assert error_code(caught.value) == (400, "ValidationException")
    assert problem in caught.value.response["Error"]["Message"]


def test_unknown_names_are_404_resource_not_found(a2i, flow_arn) -> None:
    missing_flow = flow_arn.replace("/review", "/nope")
    for call in (
        lambda: a2i.describe_human_loop(HumanLoopName="nope"),
        lambda: a2i.stop_human_loop(HumanLoopName="nope"),
        lambda: a2i.delete_human_loop(HumanLoopName="nope"),
        lambda: start(a2i, missing_flow, "loop-1"),
        lambda: a2i.list_human_loops(FlowDefinitionArn=missing_flow),
    ):
        with pytest.raises(a2i.exceptions.ResourceNotFoundException) as caught:
            call()
        assert error_code(caught.value) == (404, "ResourceNotFoundException")


def test_list_pages_with_next_token_omitted_on_the_last_page(a2i, flow_arn, url, access_key, clock) -> None:
    for i in range(5):
        start(a2i, flow_arn, f"loop-{i}")
        clock.advance(1)
    pages = list(
        a2i.get_paginator("list_human_loops").paginate(FlowDefinitionArn=flow_arn, PaginationConfig={"PageSize": 2})
    )
    names = [s["HumanLoopName"] for page in pages for s in page["HumanLoopSummaries"]]
    assert names == [f"loop-{i}" for i in (4, 3, 2, 1, 0)] and len(pages) == 3  # newest first by default
    ascending = a2i.list_human_loops(FlowDefinitionArn=flow_arn, SortOrder="Ascending", MaxResults=100)
    assert [s["HumanLoopName"] for s in ascending["HumanLoopSummaries"]] == [f"loop-{i}" for i in range(5)]
    assert "NextToken" not in ascending
    created = a2i.describe_human_loop(HumanLoopName="loop-3")["CreationTime"]
    after = a2i.list_human_loops(FlowDefinitionArn=flow_arn, CreationTimeAfter=created)["HumanLoopSummaries"]
    assert {s["HumanLoopName"] for s in after} == {"loop-3", "loop-4"}
    summary = after[0]
    assert set(summary) == {"HumanLoopName", "HumanLoopStatus", "CreationTime", "FlowDefinitionArn"}
    arn = flow_arn.replace(":", "%3A").replace("/", "%2F")
    raw = signed("GET", f"{url}/human-loops?FlowDefinitionArn={arn}&MaxResults=100", access_key).json()
    assert "NextToken" not in raw and ISO_MS.match(raw["HumanLoopSummaries"][0]["CreationTime"])
    for bad in ({"MaxResults": 101}, {"SortOrder": "Sideways"}, {"NextToken": "garbage"}):
        with pytest.raises(ClientError) as caught:
            a2i.list_human_loops(FlowDefinitionArn=flow_arn, **bad)
        assert error_code(caught.value) == (400, "ValidationException")


def test_stop_is_post_human_loops_stop_and_a_loop_named_stop_is_still_described(a2i, flow_arn) -> None:
    start(a2i, flow_arn, "stop")
    assert a2i.describe_human_loop(HumanLoopName="stop")["HumanLoopName"] == "stop"
    assert a2i.stop_human_loop(HumanLoopName="stop")["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert a2i.describe_human_loop(HumanLoopName="stop")["HumanLoopStatus"] == "Stopped"


def test_delete_needs_a_finished_loop_and_then_the_loop_is_gone(a2i, flow_arn) -> None:
    start(a2i, flow_arn, "loop-1")
    with pytest.raises(a2i.exceptions.ValidationException):
        a2i.delete_human_loop(HumanLoopName="loop-1")
    a2i.stop_human_loop(HumanLoopName="loop-1")
    assert a2i.delete_human_loop(HumanLoopName="loop-1")["ResponseMetadata"]["HTTPStatusCode"] == 200
    with pytest.raises(a2i.exceptions.ResourceNotFoundException):
        a2i.describe_human_loop(HumanLoopName="loop-1")
    assert a2i.list_human_loops(FlowDefinitionArn=flow_arn)["HumanLoopSummaries"] == []


def test_a_completed_loop_describes_its_output_location(a2i, flow_arn, url, clock: ManualClock) -> None:
    start(a2i, flow_arn, "loop-1")
    worker = WorkerClient.sign_in(url, "worker0@myteam.example", PASSWORD)
    task = worker.next_task()
    assert task is not None
    worker.submit(task.task_id, {"annotatedResult": {"boundingBoxes": []}})
    deadline = time.monotonic() + 10  # the output is written right away or by the next job round
    while (described := a2i.describe_human_loop(HumanLoopName="loop-1"))["HumanLoopStatus"] != "Completed":
        assert described["HumanLoopStatus"] == "InProgress" and "HumanLoopOutput" not in described
        assert time.monotonic() < deadline
        time.sleep(0.1)
    created = described["CreationTime"].strftime("%Y/%m/%d/%H/%M/%S")
    assert described["HumanLoopOutput"]["OutputS3Uri"] == (
        f"s3://review-bucket/a2i-results/review/{created}/loop-1/output.json"
    )


def test_quota_errors_reach_boto3_as_402_service_quota_exceeded() -> None:
    """No loopin limit raises it yet; the mapping is pinned so that one can."""
    response = rest_json_response(a2i_error(QuotaExceededError("Too many loops.")), "rid-1")
    model = get_session().get_service_model("sagemaker-a2i-runtime")
    parsed = RestJSONParser().parse(
        {"status_code": response.status_code, "headers": dict(response.headers), "body": response.body},
        model.operation_model("StartHumanLoop").output_shape,
    )
    assert response.status_code == 402
    assert parsed["Error"] == {"Code": "ServiceQuotaExceededException", "Message": "Too many loops."}
    assert parsed["ResponseMetadata"]["RequestId"] == "rid-1"


def test_loopin_priority_is_an_extension_boto3_never_sends(a2i, flow_arn, url, access_key) -> None:
    """``LoopinPriority`` in StartHumanLoop's JSON body: raw requests may set it; boto3 has
    no such member (its shape is unchanged) and its starts get the flow's default."""
    shape = get_session().get_service_model("sagemaker-a2i-runtime").operation_model("StartHumanLoop").input_shape
    assert "LoopinPriority" not in shape.members
    start(a2i, flow_arn, "boto3-default")
    body = {"HumanLoopName": "raw-urgent", "FlowDefinitionArn": flow_arn, "HumanLoopInput": {"InputContent": INPUT}}
    response = signed(
        "POST",
        f"{url}/human-loops",
        access_key,
        body=json.dumps({**body, "LoopinPriority": 95}).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    for priority in (101, -1, "high"):
        bad = signed(
            "POST",
            f"{url}/human-loops",
            access_key,
            body=json.dumps({**body, "HumanLoopName": "raw-bad", "LoopinPriority": priority}).encode(),
            headers={"Content-Type": "application/json"},
        )
        assert bad.status_code == 400 and bad.headers["x-amzn-errortype"].startswith("ValidationException")
        assert "LoopinPriority" in bad.json()["message"]
    with Client(url, access_key_id=access_key[0], secret_access_key=access_key[1]) as admin:
        assert admin.describe_loop("raw-urgent").priority == 95
        assert admin.describe_loop("boto3-default").priority == 50
        assert [loop.name for loop in admin.list_loops().loops if loop.name == "raw-bad"] == []
