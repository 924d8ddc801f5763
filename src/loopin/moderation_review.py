"""A2I's Rekognition task type for a moderation classifier's result: when the image goes to a
person (the routing rule's doubtful band, or the flow's activation conditions), and the loop
input that ``crowd-rekognition-detect-moderation-labels`` reads (``aiServiceRequest``,
``aiServiceResponse``, ``selectedAiServiceResponse``, ``humanTaskActivationConditionResults``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loopin import activation
from loopin.activation import Evaluation
from loopin.inference import ModerationLabel
from loopin.routing import AUDIT_BUCKETS
from loopin.schemas import RoutingRule
from loopin.store import parse_object_uri


def reported(rule: RoutingRule, labels: Sequence[ModerationLabel]) -> list[ModerationLabel]:
    """The labels the rule looks at: of its classes and at or above their lower bound (what
    Rekognition's ``MinConfidence`` keeps)."""
    return [label for label in labels if (floor := rule.floor(label.name)) is not None and label.confidence >= floor]


def decide(
    rule: RoutingRule,
    labels: Sequence[ModerationLabel],
    image_sha256: str,
    conditions: dict[str, Any] | None,
) -> tuple[str | None, Evaluation | None]:
    """(reason, evaluation). With the flow's activation conditions they alone decide
    (``"conditions"`` or None); otherwise a label in the doubtful band (at or above its lower
    bound, below the threshold) gives ``"low-confidence"``, an audit draw ``"audit"``."""
    kept = reported(rule, labels)
    if conditions is not None:
        found = activation.evaluate(
            conditions, seed=image_sha256, labels=[(label.name, label.confidence * 100) for label in kept]
        )
        return ("conditions" if found.fired else None), found
    if any(label.confidence < rule.threshold for label in kept):
        return "low-confidence", None
    if rule.sample_percent > 0 and int(image_sha256[:8], 16) % AUDIT_BUCKETS < rule.sample_percent * 100:
        return "audit", None
    return None, None


def _camel(label: ModerationLabel) -> dict[str, Any]:
    return {"confidence": round(label.confidence * 100, 4), "name": label.name, "parentName": label.parent_name}


def review_input(
    rule: RoutingRule,
    labels: Sequence[ModerationLabel],
    *,
    image_uri: str,
    model_version: str,
    source: str = activation.REKOGNITION_V3,
    evaluation: Evaluation | None = None,
) -> dict[str, Any]:
    """The loop's InputContent in A2I's Rekognition shape. ``selectedAiServiceResponse``
    holds the labels that fired a condition (with conditions) or the doubtful ones (without);
    when none did (a sample, an audit) it holds every reported label."""
    kept = reported(rule, labels)
    if evaluation is not None:
        chosen = [kept[n] for n in evaluation.selected]
        results = evaluation.results
    else:
        chosen = [label for label in kept if label.confidence < rule.threshold]
        check = {"ModerationLabelName": "*", "ConfidenceLessThan": round(rule.threshold * 100, 4)}
        results = {
            "Conditions": [
                {
                    "ConditionType": "ModerationLabelConfidenceCheck",
                    "ConditionParameters": check,
                    "EvaluationResult": bool(chosen),
                }
            ]
        }
    bucket, key = parse_object_uri(image_uri)
    return {
        "aiServiceRequest": {"image": {"s3Object": {"bucket": bucket, "name": key}}},
        "aiServiceResponse": {
            "moderationLabels": [_camel(label) for label in kept],
            "moderationModelVersion": model_version,
        },
        "selectedAiServiceResponse": {"moderationLabels": [_camel(label) for label in chosen or kept]},
        "awsManagedHumanLoopRequestSource": source,
        "humanTaskActivationConditionResults": results,
    }
