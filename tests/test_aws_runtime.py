"""sagemaker-runtime InvokeEndpoint through boto3: the Marketplace detector's answer format,
the response headers, and the runtime's own error codes (ValidationError, ModelError 424)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loopin.client import Client
from loopin.schemas import VariantSpec
from tests import aws_support
from tests.aws_support import client, error_code

DATA = Path(__file__).parent / "data"
PHOTO = (DATA / "motorcycle_left.jpg").read_bytes()
BUILTIN = "nanodet-g-416-coco"

# The AWS tests' server: real port, clock at the real time (see aws_support).
clock = aws_support.clock
settings = aws_support.settings
url = aws_support.url


@pytest.fixture
def admin(url: str, access_key: tuple[str, str]) -> Iterator[Client]:
    with Client(url, access_key_id=access_key[0], secret_access_key=access_key[1]) as sdk:
        yield sdk  # closed with the test: an open connection would warn in a later one


@pytest.fixture
def runtime(url: str, access_key: tuple[str, str]) -> Iterator[Any]:
    boto = client("sagemaker-runtime", url, access_key)
    yield boto
    boto.close()


def endpoint(admin: Client, name: str, model: str = BUILTIN, variant: str = "AllTraffic") -> None:
    admin.create_endpoint_config(f"{name}-config", variants=[VariantSpec(variant_name=variant, model=model)])
    admin.create_endpoint(name, config=f"{name}-config")
    assert admin.wait_for_endpoint(name, timeout=60, poll_interval=0.1).status == "InService"


def test_invoke_answers_like_the_marketplace_detector(admin, runtime) -> None:
    endpoint(admin, "detector")
    response = runtime.invoke_endpoint(EndpointName="detector", Body=PHOTO, ContentType="image/jpeg", Accept="json")
    detections = json.loads(response["Body"].read())
    assert response["ContentType"] == "application/json" and response["InvokedProductionVariant"] == "AllTraffic"
    assert response["ResponseMetadata"]["RequestId"]
    best = max(detections, key=lambda d: d["score"])
    assert set(best) == {"id", "score", "left", "top", "right", "bottom"} and best["id"] == "motorcycle"
    assert best["right"] > best["left"] and best["bottom"] > best["top"]
    native = runtime.invoke_endpoint(
        EndpointName="detector", Body=PHOTO, ContentType="image/jpeg", Accept="application/vnd.loopin.detections+json"
    )
    assert json.loads(native["Body"].read())["model"]["name"] == BUILTIN


def test_the_target_variant_header_picks_the_variant(admin, runtime) -> None:
    endpoint(admin, "two", variant="blue")
    response = runtime.invoke_endpoint(EndpointName="two", Body=PHOTO, ContentType="image/jpeg", TargetVariant="blue")
    assert response["InvokedProductionVariant"] == "blue"


def test_runtime_errors_use_validation_error_not_validation_exception(admin, runtime) -> None:
    with pytest.raises(runtime.exceptions.ValidationError) as caught:
        runtime.invoke_endpoint(EndpointName="nope", Body=PHOTO, ContentType="image/jpeg")
    assert error_code(caught.value) == (400, "ValidationError")
    assert "account 000000000000" in caught.value.response["Error"]["Message"]
    endpoint(admin, "ready")
    for kwargs, problem in [
        ({"EndpointName": "ready", "Body": b"not an image", "ContentType": "image/jpeg"}, "image"),
        ({"EndpointName": "ready", "Body": PHOTO, "ContentType": "text/plain"}, "Content-Type"),
        ({"EndpointName": "ready", "Body": b"\xff\xd8\xff" + b"\0" * 6_291_456, "ContentType": "image/jpeg"}, "larger"),
    ]:
        with pytest.raises(runtime.exceptions.ValidationError) as caught:
            runtime.invoke_endpoint(**kwargs)
        assert problem.lower() in caught.value.response["Error"]["Message"].lower()


def test_a_model_that_fails_is_a_424_model_error(admin, runtime) -> None:
    admin.register_model("boom", callable="tests.data.callable_model:raises")
    endpoint(admin, "boom-endpoint", model="boom")
    with pytest.raises(runtime.exceptions.ModelError) as caught:
        runtime.invoke_endpoint(EndpointName="boom-endpoint", Body=PHOTO, ContentType="image/jpeg")
    assert error_code(caught.value) == (424, "ModelError")


def test_a_wrong_signature_is_refused(url, access_key) -> None:
    wrong = client("sagemaker-runtime", url, (access_key[0], "wrong-secret"))
    with pytest.raises(wrong.exceptions.ClientError) as caught:
        wrong.invoke_endpoint(EndpointName="any", Body=PHOTO, ContentType="image/jpeg")
    assert error_code(caught.value) == (403, "InvalidSignatureException")


def test_the_text_reader_answers_boto3_with_its_lines_and_pairs(admin, runtime) -> None:
    from tests.test_document_text import DOCUMENT, DOCUMENT_TEXT, PAIRS

    endpoint(admin, "reader", model="ppocrv4-document-text")
    response = runtime.invoke_endpoint(EndpointName="reader", Body=DOCUMENT, ContentType="image/png")
    body = json.loads(response["Body"].read())
    assert [line["text"] for line in body["document"]["lines"]] == [text for text, _ in DOCUMENT_TEXT]
    assert {kv["key"]["text"]: kv["value"]["text"] for kv in body["document"]["key_values"]} == PAIRS
    with pytest.raises(Exception) as bad:
        runtime.invoke_endpoint(EndpointName="reader", Body=b"GIF89a not a document", ContentType="image/png")
    assert error_code(bad.value) == (400, "ValidationError")
