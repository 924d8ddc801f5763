"""An output.json with ``consolidatedAnswer`` read the way the A2I walkthrough reads its
output: boto3's DescribeHumanLoop for ``HumanLoopOutput.OutputS3Uri``, the URI split into
bucket and key, ``s3.get_object``, then ``humanAnswers[i].answerContent.annotatedResult``
with its ``boundingBoxes`` and ``inputImageProperties`` (reference: walkthrough.md step 4,
a2i.md D.1-D.3). Three workers answer through the worker API; SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from typing import Any

from loopin.client import Client, WorkerClient
from tests import aws_support
from tests.aws_support import client
from tests.helpers import PASSWORD, setup_flow

clock = aws_support.clock
settings = aws_support.settings
url = aws_support.url

PROPS = {"height": 400, "width": 600}


def walkthrough_read_output(a2i: Any, s3: Any, loop_name: str) -> dict[str, Any]:
    """What the walkthrough's application does once the loop is Completed."""
    described = a2i.describe_human_loop(HumanLoopName=loop_name)
    bucket, key = described["HumanLoopOutput"]["OutputS3Uri"].replace("s3://", "").split("/", 1)
    output: dict[str, Any] = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    return output


def test_existing_a2i_parsing_reads_a_consolidated_output(url, access_key) -> None:
    with Client(url, access_key_id=access_key[0], secret_access_key=access_key[1]) as admin:
        emails = setup_flow(admin, workers=3, task_count=3)
        flow_arn = admin.get_flow("review").arn
    a2i = client("sagemaker-a2i-runtime", url, access_key)
    s3 = client("s3", url, access_key)
    initial = [{"height": 100, "label": "car", "left": 100, "top": 100, "width": 200}]
    input_content = {
        "initialValue": initial,
        "taskObject": "s3://review-bucket/street.jpg",
        "labels": ["car", "bicycle"],
    }
    a2i.start_human_loop(
        HumanLoopName="loop-1", FlowDefinitionArn=flow_arn, HumanLoopInput={"InputContent": json.dumps(input_content)}
    )
    bike = {"height": 40, "label": "bicycle", "left": 400, "top": 250, "width": 60}
    given = [initial + [bike], initial + [bike], [{"height": 30, "label": "car", "left": 0, "top": 0, "width": 30}]]
    for email, boxes in zip(emails, given, strict=True):
        worker = WorkerClient.sign_in(url, email, PASSWORD)
        task = worker.next_task()
        assert task is not None
        worker.submit(
            task.task_id,
            {
                "annotatedResult": {
                    "boundingBoxes": boxes,
                    "inputImageProperties": PROPS,
                    "initialValueModified": boxes != initial,
                }
            },
        )
    deadline = time.monotonic() + 10
    while a2i.describe_human_loop(HumanLoopName="loop-1")["HumanLoopStatus"] != "Completed":
        assert time.monotonic() < deadline
        time.sleep(0.1)

    output = walkthrough_read_output(a2i, s3, "loop-1")
    assert output["humanLoopName"] == "loop-1" and output["inputContent"] == input_content
    assert output["flowDefinitionArn"] == flow_arn
    for i, boxes in enumerate(given):
        answer = output["humanAnswers"][i]["answerContent"]["annotatedResult"]
        assert answer["boundingBoxes"] == boxes
        assert answer["inputImageProperties"] == PROPS
        assert answer["initialValueModified"] is True
    # loopin's extension sits beside humanAnswers, in the shape of one worker's answer.
    consolidated = output["consolidatedAnswer"]["answerContent"]["annotatedResult"]
    assert consolidated["boundingBoxes"] == sorted(initial + [bike], key=lambda b: b["top"])
    assert consolidated["inputImageProperties"] == PROPS and consolidated["initialValueModified"] is True
