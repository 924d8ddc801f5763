"""A2I's Textract task type for a text reader's result: its lines and key-value pairs as an
AnalyzeDocument response (camelCase blocks, as A2I hands them to templates), and the loop
input that ``crowd-textract-analyze-document`` reads (``aiServiceRequest``,
``aiServiceResponse``, ``selectedAiServiceResponse``, ``humanLoopContext``)."""

from __future__ import annotations

from typing import Any

from loopin import activation
from loopin.activation import TEXTRACT_SOURCE, Evaluation, Pair
from loopin.inference import Document, KeyValue, TextLine
from loopin.schemas import RoutingRule
from loopin.store import parse_object_uri


def _geometry(line: TextLine, width: int, height: int) -> dict[str, Any]:
    left, top = line.left / width, line.top / height
    right, bottom = line.right / width, line.bottom / height
    return {
        "boundingBox": {
            "width": round(right - left, 6),
            "height": round(bottom - top, 6),
            "left": round(left, 6),
            "top": round(top, 6),
        },
        "polygon": [
            {"x": round(x, 6), "y": round(y, 6)}
            for x, y in ((left, top), (right, top), (right, bottom), (left, bottom))
        ],
    }


class _Blocks:
    """Textract blocks with ids in document order: ``line-3``, ``key-0``, ``word-12``, ..."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.blocks: list[dict[str, Any]] = []
        self.words = 0

    def words_of(self, line: TextLine) -> list[str]:
        """WORD blocks for a line's words (each box its share of the line's by characters)."""
        ids = []
        per_char = (line.right - line.left) / max(len(line.text), 1)
        at = 0
        for word in line.text.split():
            at = line.text.index(word, at)
            x0, x1 = line.left + per_char * at, line.left + per_char * (at + len(word))
            part = TextLine(word, line.confidence, x0, line.top, x1, line.bottom)
            at += len(word)
            ids.append(f"word-{self.words}")
            self.words += 1
            self.add("WORD", ids[-1], part, text=word, textType="PRINTED")
        return ids

    def add(self, kind: str, block_id: str, line: TextLine | None, **fields: Any) -> dict[str, Any]:
        block: dict[str, Any] = {"blockType": kind, "id": block_id, "page": 1, **fields}
        if line is not None:
            block["confidence"] = round(line.confidence * 100, 4)
            block["geometry"] = _geometry(line, self.width, self.height)
        self.blocks.append(block)
        return block


def analyze_document_response(document: Document, width: int, height: int) -> dict[str, Any]:
    """The text reader's result as Textract's AnalyzeDocument (FORMS) response, camelCase:
    a PAGE, its LINEs with their WORDs, and a KEY_VALUE_SET pair for each key-value pair."""
    out = _Blocks(width, height)
    page = out.add("PAGE", "page-1", TextLine("", 1.0, 0, 0, width, height))
    line_ids = []
    for n, line in enumerate(document.lines):
        line_ids.append(f"line-{n}")
        block = out.add("LINE", line_ids[-1], line, text=line.text)
        block["relationships"] = [{"type": "CHILD", "ids": out.words_of(line)}]
    for n, pair in enumerate(document.key_values):
        _pair_blocks(out, n, pair)
    page["relationships"] = [{"type": "CHILD", "ids": line_ids}]
    return {"blocks": out.blocks, "documentMetadata": {"pages": 1}}


def _pair_blocks(out: _Blocks, n: int, pair: KeyValue) -> None:
    key_id, value_id = f"key-{n}", f"value-{n}"
    key = out.add("KEY_VALUE_SET", key_id, pair.key, entityTypes=["KEY"])
    key["relationships"] = [{"type": "VALUE", "ids": [value_id]}, {"type": "CHILD", "ids": out.words_of(pair.key)}]
    value = out.add("KEY_VALUE_SET", value_id, pair.value, entityTypes=["VALUE"])
    if pair.value is None:
        value["confidence"] = key["confidence"]
    else:
        value["relationships"] = [{"type": "CHILD", "ids": out.words_of(pair.value)}]


def evaluate(conditions: dict[str, Any], document: Document, image_sha256: str) -> Evaluation:
    """A flow's Textract activation conditions on the reader's key-value pairs (a pair's
    words have its key's and its value's line confidence)."""
    pairs = [
        Pair(
            kv.key.text,
            kv.confidence * 100,
            tuple(line.confidence * 100 for line in (kv.key, kv.value) if line is not None),
        )
        for kv in document.key_values
    ]
    return activation.evaluate(conditions, seed=image_sha256, pairs=pairs)


def review_input(
    rule: RoutingRule,
    document: Document,
    *,
    image_uri: str,
    width: int,
    height: int,
    conditions: dict[str, Any] | None = None,
    evaluation: Evaluation | None = None,
) -> dict[str, Any]:
    """The loop's InputContent in A2I's Textract shape. ``selectedAiServiceResponse`` holds
    the pairs that made a condition true (with the flow's activation ``conditions`` and their
    ``evaluation``) or the pairs below the threshold (without), with their words; when there
    are none (a line was doubtful, a missing key, a sample or an audit) it holds every pair,
    so the worker checks them all."""
    response = analyze_document_response(document, width, height)
    if evaluation is not None:
        doubtful = list(evaluation.selected)
    else:
        doubtful = [n for n, kv in enumerate(document.key_values) if kv.confidence < rule.threshold]
    chosen = doubtful or range(len(document.key_values))
    by_id = {block["id"]: block for block in response["blocks"]}
    selected = []
    for n in chosen:
        for pair_block in (by_id[f"key-{n}"], by_id[f"value-{n}"]):
            selected.append(pair_block)
            for rel in pair_block.get("relationships", []):
                if rel["type"] == "CHILD":
                    selected += [by_id[word] for word in rel["ids"]]
    bucket, key = parse_object_uri(image_uri)
    if evaluation is not None and conditions is not None:
        results, keys = evaluation.results, activation.important_form_keys(conditions)
    else:
        check = {"ImportantFormKey": "*", "KeyValueBlockConfidenceLessThan": round(rule.threshold * 100, 4)}
        results = {
            "Conditions": [
                {
                    "ConditionType": "ImportantFormKeyConfidenceCheck",
                    "ConditionParameters": check,
                    "EvaluationResult": bool(doubtful),
                }
            ]
        }
        keys = []
    return {
        "aiServiceRequest": {"document": {"s3Object": {"bucket": bucket, "name": key}}, "featureTypes": ["FORMS"]},
        "aiServiceResponse": response,
        "selectedAiServiceResponse": {"blocks": selected},
        "humanLoopContext": {"importantFormKeys": keys},
        "awsManagedHumanLoopRequestSource": TEXTRACT_SOURCE,
        "humanTaskActivationConditionResults": results,
    }
