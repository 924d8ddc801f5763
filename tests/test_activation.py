"""A2I's activation conditions for its built-in task types: what CreateFlowDefinition refuses
(with the field named) and how the conditions evaluate on moderation labels and on a
document's key-value pairs. Plain unit tests: no database, no server."""

from __future__ import annotations

import json
from typing import Any

import pytest

from loopin.activation import (
    CONDITIONS_FIELD,
    REKOGNITION_V3,
    REKOGNITION_V4,
    SOURCE_FIELD,
    TEXTRACT_SOURCE,
    Pair,
    check_conditions,
    check_source,
    evaluate,
    important_form_keys,
)
from loopin.errors import ValidationError


def check(conditions: Any, source: str | None = REKOGNITION_V3) -> dict[str, Any]:
    return check_conditions(json.dumps(conditions), source)


def label_check(name: str = "*", **bounds: float) -> dict[str, Any]:
    return {
        "ConditionType": "ModerationLabelConfidenceCheck",
        "ConditionParameters": {"ModerationLabelName": name, **bounds},
    }


def test_every_request_source_is_accepted_and_others_are_refused_with_the_field() -> None:
    for source in (TEXTRACT_SOURCE, REKOGNITION_V3, REKOGNITION_V4):
        assert check_source(source) == source
    with pytest.raises(ValidationError) as caught:
        check_source("AWS/Rekognition/DetectLabels/Image/V1")
    assert SOURCE_FIELD in caught.value.message


@pytest.mark.parametrize(
    ("conditions", "source", "where"),
    [
        ("not json", REKOGNITION_V3, "not valid JSON"),
        ({"conditions": []}, REKOGNITION_V3, '"Conditions"'),
        ({"Conditions": []}, REKOGNITION_V3, "Conditions must be a non-empty list"),
        ({"Conditions": [{"Xor": []}]}, REKOGNITION_V3, "Conditions[0] must be"),
        ({"Conditions": [{"And": [label_check(ConfidenceLessThan=101)]}]}, REKOGNITION_V3, "ConfidenceLessThan"),
        ({"Conditions": [label_check()]}, REKOGNITION_V3, "needs a confidence bound"),
        ({"Conditions": [label_check(ConfidenceBelow=5)]}, REKOGNITION_V3, "unknown member(s) ConfidenceBelow"),
        ({"Conditions": [label_check(ConfidenceLessThan=50)]}, TEXTRACT_SOURCE, "ConditionType must be one of"),
        (
            {"Conditions": [{"ConditionType": "Sampling", "ConditionParameters": {"RandomSamplingPercentage": "5"}}]},
            TEXTRACT_SOURCE,
            "RandomSamplingPercentage",
        ),
        (
            {"Conditions": [{"ConditionType": "MissingImportantFormKey", "ConditionParameters": {}}]},
            TEXTRACT_SOURCE,
            "ImportantFormKey must be",
        ),
        ({"Conditions": [label_check(ConfidenceLessThan=50)]}, None, SOURCE_FIELD),
    ],
)
def test_malformed_conditions_are_refused_naming_the_field(conditions: Any, source: str | None, where: str) -> None:
    text = conditions if isinstance(conditions, str) else json.dumps(conditions)
    with pytest.raises(ValidationError) as caught:
        check_conditions(text, source)
    assert CONDITIONS_FIELD in caught.value.message and where in caught.value.message


def test_moderation_conditions_with_and_or_and_the_wildcard() -> None:
    conditions = check(
        {
            "Conditions": [
                label_check("Suggestive", ConfidenceLessThan=90, ConfidenceGreaterThanEquals=50),
                {
                    "And": [
                        label_check("Explicit Nudity", ConfidenceGreaterThan=10),
                        {
                            "Or": [
                                label_check("*", ConfidenceLessThanEquals=5),
                                label_check("Violence", ConfidenceEquals=1),
                            ]
                        },
                    ]
                },
            ]
        }
    )
    labels = [("Explicit Nudity", 12.0), ("Suggestive", 95.0), ("Illustrated Explicit Nudity", 4.0)]
    found = evaluate(conditions, seed="abc", labels=labels)
    assert found.fired
    first, second = found.results["Conditions"]
    assert first["EvaluationResult"] is False and first["ConditionType"] == "ModerationLabelConfidenceCheck"
    assert second["EvaluationResult"] is True and second["And"][1]["Or"][0]["EvaluationResult"] is True
    assert found.selected == [0, 2]  # the labels that made a check true
    assert not evaluate(conditions, seed="abc", labels=[("Suggestive", 95.0)]).fired


def test_textract_conditions_on_pairs_and_missing_keys() -> None:
    confidence_check = {
        "ConditionType": "ImportantFormKeyConfidenceCheck",
        "ConditionParameters": {
            "ImportantFormKey": "Invoice number",
            "ImportantFormKeyAliases": ["Invoice no"],
            "KeyValueBlockConfidenceLessThan": 90,
            "WordBlockConfidenceLessThan": 80,
        },
    }
    missing = {"ConditionType": "MissingImportantFormKey", "ConditionParameters": {"ImportantFormKey": "Total"}}
    conditions = check({"Conditions": [confidence_check, missing]}, TEXTRACT_SOURCE)
    pairs = [Pair("Invoice no:", 70.0, (95.0, 70.0)), Pair("Total", 99.0, (99.0, 99.0))]
    found = evaluate(conditions, seed="x", pairs=pairs)
    assert found.fired and found.selected == [0]
    assert [c["EvaluationResult"] for c in found.results["Conditions"]] == [True, False]
    # Word bounds: some word must satisfy them; a pair of sure words does not fire.
    assert not evaluate(conditions, seed="x", pairs=[Pair("Invoice number", 85.0, (95.0, 85.0)), pairs[1]]).fired
    # A document without the key fires MissingImportantFormKey, and selects no pair.
    found = evaluate(conditions, seed="x", pairs=[Pair("Name", 99.0, (99.0,))])
    assert found.fired and found.selected == []
    assert important_form_keys(conditions) == [
        {"importantFormKey": "Invoice number", "importantFormKeyAliases": ["Invoice no"]},
        {"importantFormKey": "Total", "importantFormKeyAliases": []},
    ]


def test_sampling_is_the_same_for_the_same_input() -> None:
    sample = {"ConditionType": "Sampling", "ConditionParameters": {"RandomSamplingPercentage": 50}}
    conditions = check({"Conditions": [sample]})
    draws = [evaluate(conditions, seed=f"image-{n}").fired for n in range(200)]
    assert draws == [evaluate(conditions, seed=f"image-{n}").fired for n in range(200)]
    assert 60 < sum(draws) < 140
    assert not evaluate(
        check({"Conditions": [sample | {"ConditionParameters": {"RandomSamplingPercentage": 0}}]}), seed="a"
    ).fired
