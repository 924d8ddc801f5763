"""The walkthrough end to end, written as its user writes it: boto3 clients for s3,
sagemaker, sagemaker-runtime and sagemaker-a2i-runtime with only ``endpoint_url`` pointing
at loopin, and a worker who fixes the boxes in Chromium. Once with loopin's embedded store
and once with moto's S3 server as the external store. Then the hosting and invoke steps
through the AWS CLI. SQLite only: the database paths are covered by the other AWS tests."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from loopin.client import Client, WorkerClient
from loopin.config import Settings
from loopin.services import Services
from tests import aws_support
from tests.aws_support import client

DATA = Path(__file__).parent / "data"
GLUONCV = (
    "arn:aws:sagemaker:us-east-1:865070037744:model-package/"
    "gluoncv-ssd-resnet501547760463-0f9e6796d2438a1d64bb9b15aac57bc0"
)
ROLE = "arn:aws:iam::123456789012:role/service-role/AmazonSageMaker-ExecutionRole-20200101T000000"
# The built-in detector is small: its best scores on these photos are under 0.9.
THRESHOLD = 0.5
CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).parent.parent
# The AWS sample template for bounding boxes with the walkthrough's two changes (initial-value
# and labels come from the task input), as docs/aws.md uses it.
TEMPLATE = (ROOT / "docs" / "examples" / "worker-task-template.html").read_text()

clock = aws_support.clock


@pytest.fixture
def database_url(tmp_path: Path, sqlite_template: Path) -> str:
    shutil.copyfile(sqlite_template, tmp_path / "loopin.db")
    return f"sqlite:///{tmp_path / 'loopin.db'}"


@pytest.fixture(params=["embedded store", "moto as external S3"])
def settings(request: pytest.FixtureRequest, tmp_path: Path, database_url: str) -> Settings:
    if request.param == "embedded store":
        return aws_support.server_settings(tmp_path, database_url)
    moto = request.getfixturevalue("moto_endpoint")
    external = {"s3_endpoint_url": moto, "s3_access_key_id": "testing", "s3_secret_access_key": "testing"}
    return aws_support.server_settings(tmp_path, database_url, **external)


@pytest.fixture
def url(services: Services) -> Any:
    with aws_support.serve_in_thread(services) as base:
        yield base


def photo() -> bytes:
    """The walkthrough resizes its photo to 600x400 before inference and upload."""
    image = Image.open(DATA / "motorcycle_left.jpg").convert("RGB").resize((600, 400))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.mark.browser
def test_the_walkthrough_with_boto3_and_a_worker_in_chromium(url, access_key, settings: Settings) -> None:
    s3_url, s3_key = (
        (settings.s3_endpoint_url, ("testing", "testing")) if settings.s3_endpoint_url else (url, access_key)
    )
    s3 = client("s3", s3_url, s3_key)
    sagemaker = client("sagemaker", url, access_key)
    runtime = client("sagemaker-runtime", url, access_key)
    a2i = client("sagemaker-a2i-runtime", url, access_key)
    bucket = f"a2i-demo-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)

    # 1. Human review: a private team with one invited worker, the task UI, the flow definition.
    team_arn = sagemaker.create_workteam(
        WorkteamName="MyTeam",
        MemberDefinitions=[{"CognitoMemberDefinition": {"UserPool": "pool_1", "UserGroup": "team", "ClientId": "c"}}],
        Description="Reviewers of detections",
    )["WorkteamArn"]
    with Client(url, access_key_id=access_key[0], secret_access_key=access_key[1]) as admin:
        invitation = admin.create_worker("ana@example.com", teams=["MyTeam"])  # loopin's CLI or API invites
    ui_arn = sagemaker.create_human_task_ui(
        HumanTaskUiName="object-detection-template", UiTemplate={"Content": TEMPLATE}
    )["HumanTaskUiArn"]
    flow_arn = sagemaker.create_flow_definition(
        FlowDefinitionName=f"fd-gluon-{uuid.uuid4().hex[:8]}",
        HumanLoopConfig={
            "WorkteamArn": team_arn,
            "HumanTaskUiArn": ui_arn,
            "TaskCount": 1,
            "TaskDescription": "Please draw bounding boxes for the objects the model missed.",
            "TaskTitle": "Object detection a2i demo",
        },
        OutputConfig={"S3OutputPath": f"s3://{bucket}/a2i-results"},
        RoleArn=ROLE,
    )["FlowDefinitionArn"]
    flow_name = flow_arn.split("/")[-1]
    assert sagemaker.describe_flow_definition(FlowDefinitionName=flow_name)["FlowDefinitionStatus"] == "Active"
    subdomain = sagemaker.list_workteams(NameContains="MyTeam")["Workteams"][0]["SubDomain"]
    assert url.endswith(subdomain)

    # 2. The model from the Marketplace package, an endpoint config, an endpoint; wait for it.
    sagemaker.create_model(
        ModelName="gluoncv-model", PrimaryContainer={"ModelPackageName": GLUONCV}, ExecutionRoleArn=ROLE
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName="gluoncv-config",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "gluoncv-model",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m4.xlarge",
                "InitialVariantWeight": 1,
            }
        ],
    )
    sagemaker.create_endpoint(EndpointName="gluoncv-endpoint", EndpointConfigName="gluoncv-config")
    sagemaker.get_waiter("endpoint_in_service").wait(EndpointName="gluoncv-endpoint", WaiterConfig={"Delay": 1})

    # 3. Detect objects.
    image = photo()
    response = runtime.invoke_endpoint(
        EndpointName="gluoncv-endpoint", ContentType="image/jpeg", Accept="json", Body=image
    )
    detections = json.loads(response["Body"].read())
    confident = [d for d in detections if d["score"] > THRESHOLD]
    assert confident and len(confident) < len(detections)

    # 4. Human review: upload the image, start a loop with the confident boxes drawn.
    s3.put_object(Bucket=bucket, Key="images/motorcycle.jpg", Body=image, ContentType="image/jpeg")
    initial = [
        {
            "label": d["id"],
            "left": d["left"],
            "top": d["top"],
            "width": d["right"] - d["left"],
            "height": d["bottom"] - d["top"],
        }
        for d in confident
    ]
    labels = sorted({d["id"] for d in detections})
    loop_name = str(uuid.uuid4())
    input_content = {"initialValue": initial, "taskObject": f"s3://{bucket}/images/motorcycle.jpg", "labels": labels}
    a2i.start_human_loop(
        HumanLoopName=loop_name, FlowDefinitionArn=flow_arn, HumanLoopInput={"InputContent": json.dumps(input_content)}
    )
    added_label = next(label for label in labels if label != confident[0]["id"])
    work_in_chromium(invitation.invitation_url or "", added_label)

    deadline = time.monotonic() + 30
    while (loop := a2i.describe_human_loop(HumanLoopName=loop_name))["HumanLoopStatus"] != "Completed":
        assert loop["HumanLoopStatus"] == "InProgress" and time.monotonic() < deadline
        time.sleep(0.2)
    output_bucket, key = loop["HumanLoopOutput"]["OutputS3Uri"].replace("s3://", "").split("/", 1)
    output = json.loads(s3.get_object(Bucket=output_bucket, Key=key)["Body"].read())
    answer = output["humanAnswers"][0]["answerContent"]["annotatedResult"]
    assert answer["inputImageProperties"] == {"height": 400, "width": 600}
    assert answer["initialValueModified"] is True
    boxes = answer["boundingBoxes"]
    assert len(boxes) == len(initial) + 1 and [b for b in boxes if b["label"] == added_label]
    assert output["inputContent"] == input_content and output["humanLoopName"] == loop_name

    # 5. Clean up; the files stay in the bucket.
    sagemaker.delete_endpoint(EndpointName="gluoncv-endpoint")
    sagemaker.get_waiter("endpoint_deleted").wait(EndpointName="gluoncv-endpoint", WaiterConfig={"Delay": 1})
    sagemaker.delete_endpoint_config(EndpointConfigName="gluoncv-config")
    sagemaker.delete_model(ModelName="gluoncv-model")
    a2i.delete_human_loop(HumanLoopName=loop_name)
    sagemaker.delete_flow_definition(FlowDefinitionName=flow_name)
    sagemaker.delete_human_task_ui(HumanTaskUiName="object-detection-template")
    assert s3.get_object(Bucket=output_bucket, Key=key)["ContentLength"] > 0


def work_in_chromium(invitation_url: str, label: str) -> None:
    """The invited worker sets a password, starts the task, draws one box and submits."""
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (scripts/install-browser.sh)")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)  # a busy CI machine
            page.goto(invitation_url)
            page.fill("input[name=password]", "correct-horse-battery")
            page.fill("input[name=confirm]", "correct-horse-battery")
            page.click("button[type=submit]")
            page.wait_for_url("**/worker/jobs**")
            page.click("text=Start working")
            page.wait_for_url("**/worker/tasks/*")
            frame = page.frame_locator("#task-frame")
            frame.locator("p.lc-stage-message").wait_for(state="hidden")
            frame.locator("button.lc-label", has_text=label).first.click()
            canvas = frame.locator("canvas.lc-top").bounding_box()
            assert canvas is not None
            x, y = canvas["x"] + canvas["width"] * 0.05, canvas["y"] + canvas["height"] * 0.05
            page.keyboard.down("Shift")  # draw, even where a box is already
            page.mouse.move(x, y)
            page.mouse.down()
            page.mouse.move(x + 60, y + 40, steps=5)
            page.mouse.up()
            page.keyboard.up("Shift")
            page.locator("#submit-button:enabled").click()
            page.wait_for_url("**/worker/jobs**")
        finally:
            browser.close()


def aws_cli(*args: str, url: str, key: tuple[str, str], home: Path) -> str:
    """``aws ... --endpoint-url`` in a subprocess, with the loopin key in the environment;
    returns what it printed."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "AWS_ACCESS_KEY_ID": key[0],
        "AWS_SECRET_ACCESS_KEY": key[1],
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(home / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
    }
    aws = Path(sys.executable).with_name("aws")
    result = subprocess.run(
        [str(aws), *args, "--endpoint-url", url, "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("settings", ["embedded store"], indirect=True)
@pytest.mark.slow
def test_hosting_and_invoke_with_the_aws_cli(url, access_key, tmp_path: Path) -> None:
    def aws(*args: str) -> Any:
        printed = aws_cli(*args, url=url, key=access_key, home=tmp_path)
        return json.loads(printed) if printed.strip() else None

    model = aws(
        "sagemaker", "create-model", "--model-name", "gluoncv-model",
        "--primary-container", f"ModelPackageName={GLUONCV}", "--execution-role-arn", ROLE,
    )  # fmt: skip
    assert model["ModelArn"].endswith(":model/gluoncv-model")
    aws(
        "sagemaker", "create-endpoint-config", "--endpoint-config-name", "gluoncv-config", "--production-variants",
        "VariantName=AllTraffic,ModelName=gluoncv-model,InitialInstanceCount=1,InstanceType=ml.m4.xlarge",
    )  # fmt: skip
    aws(
        "sagemaker",
        "create-endpoint",
        "--endpoint-name",
        "gluoncv-endpoint",
        "--endpoint-config-name",
        "gluoncv-config",
    )
    deadline = time.monotonic() + 30
    while aws("sagemaker", "describe-endpoint", "--endpoint-name", "gluoncv-endpoint")["EndpointStatus"] != "InService":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    aws("sagemaker", "wait", "endpoint-in-service", "--endpoint-name", "gluoncv-endpoint")
    (tmp_path / "photo.jpg").write_bytes(photo())
    invoked = aws(
        "sagemaker-runtime", "invoke-endpoint", "--endpoint-name", "gluoncv-endpoint",
        "--body", f"fileb://{tmp_path / 'photo.jpg'}", "--content-type", "image/jpeg", "--accept", "json",
        str(tmp_path / "detections.json"),
    )  # fmt: skip
    assert invoked["InvokedProductionVariant"] == "AllTraffic"
    detections = json.loads((tmp_path / "detections.json").read_text())
    assert max(detections, key=lambda d: d["score"])["id"] == "motorcycle"
    listed = aws("sagemaker", "list-endpoints")["Endpoints"]
    assert [e["EndpointName"] for e in listed] == ["gluoncv-endpoint"]

    aws_cli("s3", "mb", "s3://cli-bucket", url=url, key=access_key, home=tmp_path)
    aws_cli(
        "s3",
        "cp",
        str(tmp_path / "photo.jpg"),
        "s3://cli-bucket/images/photo.jpg",
        url=url,
        key=access_key,
        home=tmp_path,
    )
    assert "photo.jpg" in aws_cli("s3", "ls", "s3://cli-bucket/images/", url=url, key=access_key, home=tmp_path)
    objects = aws("s3api", "list-objects-v2", "--bucket", "cli-bucket")["Contents"]
    assert [o["Key"] for o in objects] == ["images/photo.jpg"]

    aws("sagemaker", "delete-endpoint", "--endpoint-name", "gluoncv-endpoint")
    aws("sagemaker", "wait", "endpoint-deleted", "--endpoint-name", "gluoncv-endpoint")
    aws("sagemaker", "delete-endpoint-config", "--endpoint-config-name", "gluoncv-config")
    aws("sagemaker", "delete-model", "--model-name", "gluoncv-model")
    assert aws("sagemaker", "list-models")["Models"] == []


@pytest.mark.parametrize("settings", ["embedded store"], indirect=True)
def test_the_boto3_walkthrough_in_docs_aws_md_runs_as_written(url, access_key, monkeypatch) -> None:
    """docs/aws.md's Python, run as it is written from the root of the checkout (only the
    server's URL differs), while a worker accepts the invitation and answers the task."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "aws.md").read_text(), re.S)
    assert len(blocks) == 1 and '"http://127.0.0.1:8321"' in blocks[0]
    code = compile(blocks[0].replace('"http://127.0.0.1:8321"', json.dumps(url)), "docs/aws.md", "exec")
    monkeypatch.chdir(ROOT)
    for name, value in {
        "AWS_ACCESS_KEY_ID": access_key[0],
        "AWS_SECRET_ACCESS_KEY": access_key[1],
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    scope: dict[str, Any] = {"__name__": "docs_aws"}
    failed: list[BaseException] = []

    def run() -> None:
        try:
            exec(code, scope)
        except BaseException as exc:  # reported by the test below
            failed.append(exc)

    walkthrough = threading.Thread(target=run, daemon=True)
    walkthrough.start()
    deadline = time.monotonic() + 120

    def waiting(what: str) -> None:
        assert not failed, failed
        assert walkthrough.is_alive() and time.monotonic() < deadline, f"the doc's code ended before {what}"
        time.sleep(0.1)

    while "invitation" not in scope:
        waiting("inviting the worker")
    token = scope["invitation"].invitation_token
    worker = WorkerClient.accept_invitation(url, token, "correct-horse-battery")  # Ana chooses a password
    while (task := worker.next_task()) is None:
        waiting("starting the loop")
    boxes = [*task.input["initialValue"], {"label": "person", "left": 5, "top": 5, "width": 50, "height": 80}]
    answer = {"boundingBoxes": boxes, "inputImageProperties": {"height": 400, "width": 600}}
    worker.submit(task.task_id, {"annotatedResult": answer})
    worker.close()
    walkthrough.join(timeout=60)
    assert not failed, failed
    assert not walkthrough.is_alive()
    assert scope["output"]["humanAnswers"][0]["answerContent"]["annotatedResult"]["boundingBoxes"] == boxes
    assert scope["initial"] and scope["portal"] == url + "/worker"
    with Client(url, access_key_id=access_key[0], secret_access_key=access_key[1]) as admin:
        # The clean-up deleted everything but the stored files.
        assert admin.list_flows() == [] and admin.list_endpoints() == [] and admin.list_models() == []
