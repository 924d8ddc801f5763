"""Issue 12 on the AWS protocols (a served loopin, boto3 and raw signed requests)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from loopin.client import Client
from tests import aws_support
from tests.aws_support import client, error_code
from tests.helpers import setup_flow

clock = aws_support.clock
settings = aws_support.settings
url = aws_support.url


@pytest.fixture
def flow_arn(url: str, access_key: tuple[str, str]) -> str:
    with Client(url, access_key_id=access_key[0], secret_access_key=access_key[1]) as admin:
        setup_flow(admin, workers=1)
        return admin.get_flow("review").arn


# -- 4. lone surrogates ---------------------------------------------------------------


def test_lone_surrogates_are_validation_exceptions_on_the_aws_protocols(
    url: str, access_key: tuple[str, str], flow_arn: str
) -> None:
    a2i = client("sagemaker-a2i-runtime", url, access_key)
    sagemaker = client("sagemaker", url, access_key)
    calls: list[Any] = [
        lambda: a2i.start_human_loop(
            HumanLoopName="l1", FlowDefinitionArn=flow_arn, HumanLoopInput={"InputContent": '{"a": "\ud800"}'}
        ),
        lambda: a2i.start_human_loop(
            HumanLoopName="l2",
            FlowDefinitionArn=flow_arn,
            HumanLoopInput={"InputContent": json.dumps({"a": "\ud800"})},
        ),
        lambda: sagemaker.create_human_task_ui(HumanTaskUiName="ui9", UiTemplate={"Content": "<p>\udc00</p>"}),
        lambda: sagemaker.list_workteams(NameContains="\ud800"),
    ]
    for call in calls:
        with pytest.raises(ClientError) as caught:
            call()
        assert error_code(caught.value) == (400, "ValidationException")


# -- 12. an unexpected error answers a 500 and the connection stays usable ----------------


def test_after_an_unhandled_error_the_next_request_on_the_connection_works(
    url: str, access_key: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx

    from loopin import workforce
    from tests.conftest import basic_auth

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(workforce, "list_teams", broken)
    with httpx.Client(base_url=url, headers=basic_auth(*access_key)) as http:
        for _ in range(3):
            failed = http.get("/api/v1/teams")
            assert failed.status_code == 500
            assert failed.json()["error"]["code"] == "InternalServerException"
            assert http.get("/healthz").status_code == 200
            assert http.get("/api/v1/task-uis").status_code == 200


# -- 13. the API docs work offline, under their CSP ---------------------------------------


def test_the_api_docs_page_works_offline_in_a_browser(url: str, page: Any) -> None:
    outside: list[str] = []

    def only_local(route: Any) -> None:
        if route.request.url.startswith(url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.goto(url + "/api/v1/docs")
    page.wait_for_selector("text=loopin API", timeout=15_000)
    page.wait_for_selector("text=/teams", timeout=15_000)
    assert outside == []


# -- 8. out-of-range times are client errors ----------------------------------------------


def test_a2i_creation_times_out_of_range_are_validation_exceptions(
    url: str, access_key: tuple[str, str], flow_arn: str
) -> None:
    from urllib.parse import quote

    from tests.aws_support import signed

    for value in ("9" * 30, "9" * 400, "1" + "0" * 17):
        query = f"FlowDefinitionArn={quote(flow_arn, safe='')}&CreationTimeAfter={value}"
        response = signed("GET", f"{url}/human-loops?{query}", access_key, service="sagemaker")
        assert response.status_code == 400, (value[:20], response.status_code, response.text)
        assert "ValidationException" in response.headers.get("x-amzn-errortype", "") + response.text


# -- 9. the payload is signed on the JSON protocols and the runtime ----------------------


def test_unsigned_payload_is_refused_outside_s3(url: str, access_key: tuple[str, str], flow_arn: str) -> None:
    import httpx

    from tests.aws_support import signed_headers

    signed_body = json.dumps({"WorkteamName": "MyTeam"}).encode()
    other_body = json.dumps({"WorkteamName": "MyTeam", "Description": "changed by a replay"}).encode()
    headers = signed_headers(
        "POST",
        url + "/",
        access_key,
        body=signed_body,
        headers={
            "X-Amz-Target": "SageMaker.UpdateWorkteam",
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD",
        },
    )
    replayed = httpx.post(url + "/", content=other_body, headers=headers)
    assert replayed.status_code == 403, replayed.text
    with Client(url, access_key_id=access_key[0], secret_access_key=access_key[1]) as admin:
        assert admin.get_team("MyTeam").description == "Reviewers"

    image = b"\xff\xd8\xff" + b"0" * 100
    headers = signed_headers(
        "POST",
        url + "/endpoints/none/invocations",
        access_key,
        service="sagemaker",
        body=image,
        headers={"Content-Type": "image/jpeg", "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"},
    )
    replayed = httpx.post(url + "/endpoints/none/invocations", content=b"other", headers=headers)
    assert replayed.status_code == 403, replayed.text
