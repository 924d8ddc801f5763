"""The built-in text reader (ppocrv4-document-text): lines and key-value pairs on a document
drawn here, invocation through the native API and the SageMaker runtime path, bad input, and
routing to a review in A2I's Textract shape that a worker answers."""

from __future__ import annotations

import io
import json

import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw, ImageFont

from loopin.background import run_once
from loopin.inference import Detector
from loopin.inference.ocr import TextLine, pair_lines
from loopin.schemas import RoutingRule, VariantSpec
from tests.aws_support import signed_headers
from tests.helpers import admin_client, setup_flow, worker_client

READER = "ppocrv4-document-text"

# (text, where it is drawn): a title, inline pairs, a key with its value to the right, a key
# with its value below, and a line that is no pair.
DOCUMENT_TEXT = [
    ("INVOICE", (40, 30)),
    ("Invoice number: INV-0042", (40, 100)),
    ("Due date:", (40, 160)),
    ("2026-12-31", (300, 160)),
    ("Customer:", (40, 220)),
    ("Jane Doe", (40, 260)),
    ("Total: 128.50", (40, 330)),
    ("Thank you for your business", (40, 420)),
]
PAIRS = {"Invoice number": "INV-0042", "Due date": "2026-12-31", "Customer": "Jane Doe", "Total": "128.50"}


def document_png() -> bytes:
    """A page of known text in Pillow's own font (shipped with Pillow): the same on every run."""
    page = Image.new("RGB", (900, 600), "white")
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=28)
    for text, at in DOCUMENT_TEXT:
        draw.text(at, text, fill="black", font=font)
    out = io.BytesIO()
    page.save(out, "PNG")
    return out.getvalue()


DOCUMENT = document_png()


@pytest.fixture(scope="module")
def reader() -> Detector:
    return Detector.builtin(READER)


@pytest.fixture
def admin(app_client: TestClient, access_key: tuple[str, str]):
    return admin_client(app_client, access_key)


def deploy(admin, services, routing: RoutingRule | None = None) -> None:
    admin.create_endpoint_config("ocr-config", variants=[VariantSpec(model=READER)])
    admin.create_endpoint("ocr", config="ocr-config", routing=routing)
    run_once(services)
    assert admin.describe_endpoint("ocr").status == "InService"


def test_the_reader_reads_every_line_and_pair_of_the_document(reader: Detector) -> None:
    result = reader.detect(DOCUMENT)
    assert result.document is not None
    lines = result.document.lines
    assert [line.text for line in lines] == [text for text, _ in DOCUMENT_TEXT]  # recall 1.0, in reading order
    for line, (_, (x, y)) in zip(lines, DOCUMENT_TEXT, strict=True):
        assert abs(line.left - x) < 8 and abs(line.top - y) < 10 and 0.5 <= line.confidence <= 1
    pairs = {kv.key.text: kv.value.text if kv.value else None for kv in result.document.key_values}
    assert pairs == PAIRS
    # Every line is a detection labelled LINE, highest confidence first.
    assert {d.label for d in result.detections} == {"LINE"} and len(result.detections) == len(lines)
    assert [d.score for d in result.detections] == sorted((d.score for d in result.detections), reverse=True)


def test_a_blank_page_reads_nothing(reader: Detector) -> None:
    out = io.BytesIO()
    Image.new("RGB", (400, 300), "white").save(out, "PNG")
    result = reader.detect(out.getvalue())
    assert result.document is not None and result.document.lines == () and result.detections == ()


def _line(text: str, left: float, top: float, width: float = 100, height: float = 20) -> TextLine:
    return TextLine(text, 0.9, left, top, left + width, top + height)


def test_the_pairing_rule() -> None:
    lines = [
        _line("Name:", 0, 0),
        _line("Ada", 300, 2),  # right of it, same row: its value
        _line("Address:", 0, 40),
        _line("12 Main St", 10, 65),  # below it
        _line("Phone:", 0, 200),  # nothing right of it or close below
        _line("see https://example.com", 0, 300),  # a URL's colon makes no pair
        _line("Ref:", 0, 400),
        _line("Date:", 300, 400),  # a key is never another key's value
    ]
    pairs = [(kv.key.text, kv.value.text if kv.value else None) for kv in pair_lines(lines)]
    assert pairs == [("Name", "Ada"), ("Address", "12 Main St"), ("Phone", None), ("Ref", None), ("Date", None)]
    (inline,) = pair_lines([_line("Total: 12", 0, 0, width=90)])
    assert (inline.key.text, inline.value.text) == ("Total", "12")  # type: ignore[union-attr]
    assert inline.key.right <= inline.value.left  # type: ignore[union-attr]


def test_invoke_through_the_api_and_the_sagemaker_runtime_path(admin, services, app_client, access_key, clock):
    deploy(admin, services)
    answer = admin.invoke_endpoint("ocr", DOCUMENT, content_type="image/png")
    assert answer.document is not None
    assert [line.text for line in answer.document.lines] == [text for text, _ in DOCUMENT_TEXT]
    assert {kv.key.text: kv.value.text for kv in answer.document.key_values if kv.value} == PAIRS
    assert answer.human_loop is None and answer.model.name == READER
    # InvokeEndpoint as boto3 signs it: a text reader answers with the native body.
    url = "http://testserver/endpoints/ocr/invocations"
    headers = signed_headers(
        "POST", url, access_key, body=DOCUMENT, headers={"Content-Type": "image/png"}, at_ms=clock.now_ms()
    )
    response = app_client.post(url, content=DOCUMENT, headers=headers)
    assert response.status_code == 200, response.text
    assert [line["text"] for line in response.json()["document"]["lines"]] == [t for t, _ in DOCUMENT_TEXT]


def test_bad_input_is_a_400_and_the_endpoint_keeps_serving(admin, services, app_client, admin_headers) -> None:
    deploy(admin, services)
    for body, reason in [
        (b"%PDF-1.7 not an image", "not a JPEG, PNG or WebP image"),
        (DOCUMENT[: len(DOCUMENT) // 2], "truncated or corrupt"),
        (b"", "empty"),
    ]:
        response = app_client.post(
            "/api/v1/endpoints/ocr/invoke", content=body, headers=admin_headers | {"Content-Type": "image/png"}
        )
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "ValidationException" and reason in error["message"]
    too_big = app_client.post(
        "/api/v1/endpoints/ocr/invoke",
        content=b"\x89PNG" + b"\0" * 6_300_000,
        headers=admin_headers | {"Content-Type": "image/png"},
    )
    assert too_big.status_code in (400, 413)
    assert admin.invoke_endpoint("ocr", DOCUMENT, content_type="image/png").document is not None


def test_a_doubtful_document_goes_to_review_in_textracts_shape(admin, services, app_client) -> None:
    setup_flow(admin, workers=1)
    # A threshold above every confidence the reader gives: the document goes to a person.
    deploy(admin, services, routing=RoutingRule(flow="review", threshold=0.99999))
    answer = admin.invoke_endpoint("ocr", DOCUMENT, content_type="image/png", idempotency_key="doc-1")
    assert answer.routing is not None and answer.routing.reason == "low-confidence"
    assert answer.human_loop is not None
    task_input = admin.describe_loop(answer.human_loop.name).input
    s3 = task_input["aiServiceRequest"]["document"]["s3Object"]
    assert services.store.get(f"s3://{s3['bucket']}/{s3['name']}") == DOCUMENT
    blocks = task_input["aiServiceResponse"]["blocks"]
    by_id = {b["id"]: b for b in blocks}
    assert [b["text"] for b in blocks if b["blockType"] == "LINE"] == [t for t, _ in DOCUMENT_TEXT]

    def text(block: dict) -> str:
        words = next((r["ids"] for r in block.get("relationships", []) if r["type"] == "CHILD"), [])
        return " ".join(by_id[w]["text"] for w in words)

    found = {}
    for key in (b for b in blocks if b["blockType"] == "KEY_VALUE_SET" and b["entityTypes"] == ["KEY"]):
        (value_id,) = next(r["ids"] for r in key["relationships"] if r["type"] == "VALUE")
        found[text(key)] = text(by_id[value_id])
        box = key["geometry"]["boundingBox"]
        assert 0 <= box["left"] < box["left"] + box["width"] <= 1 and 0 < key["confidence"] <= 100
    assert found == PAIRS
    # Every pair is doubtful here, so every pair is selected for the worker, words and all.
    selected = task_input["selectedAiServiceResponse"]["blocks"]
    assert sum(b["blockType"] == "KEY_VALUE_SET" for b in selected) == 2 * len(PAIRS)
    assert all(by_id[b["id"]] == b for b in selected)
    assert task_input["humanTaskActivationConditionResults"]["Conditions"][0]["EvaluationResult"] is True

    # A worker answers as crowd-textract-analyze-document does; output.json has it.
    worker = worker_client(app_client, "worker0@myteam.example")
    task = worker.next_task()
    assert task is not None
    key = next(b for b in selected if b.get("entityTypes") == ["KEY"])
    value_id = next(r["ids"][0] for r in key["relationships"] if r["type"] == "VALUE")
    answer_blocks = [
        {"blockType": "KEY_VALUE_SET", "id": key["id"], "entityTypes": ["KEY"], "text": "Invoice number"},
        {"blockType": "KEY_VALUE_SET", "id": value_id, "entityTypes": ["VALUE"], "text": "INV-0043"},
    ]
    worker.submit(task.task_id, {"AWS/Textract/AnalyzeDocument/Forms/V1": {"blocks": answer_blocks}})
    run_once(services)
    loop = admin.describe_loop(answer.human_loop.name)
    assert loop.status == "Completed"
    output = json.loads(services.store.get(loop.output_uri))
    assert (
        output["humanAnswers"][0]["answerContent"]["AWS/Textract/AnalyzeDocument/Forms/V1"]["blocks"] == answer_blocks
    )
    assert output["inputContent"] == task_input


@pytest.mark.slow  # a page read and a loop: about 10 s on a loaded 2-core machine
def test_a_flows_textract_activation_conditions_decide(admin, services, app_client, access_key, clock) -> None:
    from tests.test_moderation import create_flow

    setup_flow(admin, workers=1)
    due_date = {
        "ConditionType": "ImportantFormKeyConfidenceCheck",
        "ConditionParameters": {"ImportantFormKey": "Due date", "KeyValueBlockConfidenceLessThanEquals": 100},
    }
    missing = {"ConditionType": "MissingImportantFormKey", "ConditionParameters": {"ImportantFormKey": "Account"}}
    conditions = {"Conditions": [{"And": [due_date, missing]}]}
    created = create_flow(
        app_client,
        access_key,
        clock,
        "forms",
        HumanLoopRequestSource={"AwsManagedHumanLoopRequestSource": "AWS/Textract/AnalyzeDocument/Forms/V1"},
        HumanLoopActivationConfig={
            "HumanLoopActivationConditionsConfig": {"HumanLoopActivationConditions": json.dumps(conditions)}
        },
    )
    assert created.status_code == 200, created.text
    # The rule alone would route nothing (threshold 0); the conditions route the document.
    deploy(admin, services, routing=RoutingRule(flow="forms", threshold=0.0))
    answer = admin.invoke_endpoint("ocr", DOCUMENT, content_type="image/png")
    assert answer.routing is not None and answer.routing.reason == "conditions"
    assert answer.human_loop is not None
    task_input = admin.describe_loop(answer.human_loop.name).input
    selected = task_input["selectedAiServiceResponse"]["blocks"]
    assert [b["id"] for b in selected if b["blockType"] == "KEY_VALUE_SET"] == ["key-1", "value-1"]  # Due date
    assert task_input["humanLoopContext"]["importantFormKeys"] == [
        {"importantFormKey": "Due date", "importantFormKeyAliases": []},
        {"importantFormKey": "Account", "importantFormKeyAliases": []},
    ]
    (result,) = task_input["humanTaskActivationConditionResults"]["Conditions"]
    assert result["EvaluationResult"] is True and [c["EvaluationResult"] for c in result["And"]] == [True, True]


def test_confident_documents_are_not_routed(admin, services) -> None:
    setup_flow(admin, workers=1)
    deploy(admin, services, routing=RoutingRule(flow="review", threshold=0.2, min_score=0.0))
    answer = admin.invoke_endpoint("ocr", DOCUMENT, content_type="image/png")
    assert answer.routing is not None and answer.routing.reason is None and answer.human_loop is None


def test_only_the_doubtful_pairs_are_selected_for_review() -> None:
    from loopin.document_review import review_input
    from loopin.inference import Document, KeyValue

    sure, doubtful = _line("Name", 0, 0), TextLine("Ada", 0.4, 200, 0, 260, 20)
    lines = (sure, doubtful, _line("Town", 0, 40), _line("Leeds", 200, 40))
    document = Document(lines, (KeyValue(sure, doubtful), KeyValue(lines[2], lines[3])))
    task_input = review_input(
        RoutingRule(flow="review", threshold=0.8), document, image_uri="s3://docs/doc.png", width=400, height=100
    )
    selected = task_input["selectedAiServiceResponse"]["blocks"]
    assert [b["id"] for b in selected if b["blockType"] == "KEY_VALUE_SET"] == ["key-0", "value-0"]
    assert {b["text"] for b in selected if b["blockType"] == "WORD"} == {"Name", "Ada"}
    assert task_input["aiServiceRequest"]["document"]["s3Object"] == {"bucket": "docs", "name": "doc.png"}
    value = next(b for b in selected if b["id"] == "value-0")
    assert value["confidence"] == 40.0 and value["geometry"]["boundingBox"]["left"] == 0.5
