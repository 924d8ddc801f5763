"""Routing predictions to human review: the rule, the decision, and the loop's input.

This is what A2I users write by hand in their application (the walkthrough): detections at
or above the threshold are pre-filled as boxes, and the image goes to a person when the
model is doubtful about something, or when the image is drawn for an audit sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from loopin.errors import ValidationError
from loopin.inference import Detection
from loopin.schemas import RoutingRule

AUDIT_BUCKETS = 10_000  # audit sampling resolution: 0.01 %


def counts(rule: RoutingRule, label: str, score: float) -> bool:
    """Whether the rule looks at a detection: of its classes, and not below its class's lower bound."""
    floor = rule.floor(label)
    return floor is not None and score >= floor


def considered(rule: RoutingRule, detections: Sequence[Detection]) -> list[Detection]:
    """The detections the rule looks at: of its classes, and not below their lower bound."""
    return [d for d in detections if counts(rule, d.label, d.score)]


def decide(rule: RoutingRule, detections: Sequence[Detection], image_sha256: str) -> str | None:
    """``"low-confidence"`` (some detection is uncertain: between its lower bound and the
    threshold), ``"audit"`` or None (no review).

    The audit draw is seeded by the image's hash, so a retried call decides the same way.
    """
    if any(d.score < rule.threshold for d in considered(rule, detections)):
        return "low-confidence"
    if rule.sample_percent > 0 and int(image_sha256[:8], 16) % AUDIT_BUCKETS < rule.sample_percent * 100:
        return "audit"
    return None


def label_set(rule: RoutingRule, model_classes: Sequence[str] | None, detections: Sequence[Detection]) -> list[str]:
    """The labels a reviewer may pick: the rule's ``labels``, else its ``classes``, else every
    class of the model (so a worker can label what the model missed), else (a model without a
    class list) the labels it gave; with any pre-filled box's label added at the end."""
    if rule.labels is not None:
        labels = list(rule.labels)
    elif rule.classes is not None:
        labels = list(rule.classes)
    elif model_classes:
        labels = list(model_classes)
    else:
        labels = [d.label for d in detections]
    labels += [d.label for d in considered(rule, detections) if d.score >= rule.threshold]
    return list(dict.fromkeys(labels))


def loop_input(
    rule: RoutingRule,
    detections: Sequence[Detection],
    *,
    image_uri: str,
    model_classes: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The walkthrough's InputContent: the image, the confident boxes pre-filled, the flow's
    label set, and every prediction that counts (for templates and for later analysis)."""
    kept = considered(rule, detections)
    return {
        "taskObject": image_uri,
        "initialValue": [
            {
                "label": d.label,
                "left": round(d.left),
                "top": round(d.top),
                "width": round(d.right - d.left),
                "height": round(d.bottom - d.top),
            }
            for d in kept
            if d.score >= rule.threshold
        ],
        "labels": label_set(rule, model_classes, detections),
        "predictions": [
            {"label": d.label, "score": d.score, "left": d.left, "top": d.top, "right": d.right, "bottom": d.bottom}
            for d in kept
        ],
    }


def with_overrides(base: RoutingRule | None, overrides: dict[str, Any]) -> RoutingRule | None:
    """The endpoint's rule with a single call's changes (flow, threshold, classes, sample_percent)."""
    changes = {k: v for k, v in overrides.items() if v is not None}
    if not changes:
        return base
    if base is None and "flow" not in changes:
        raise ValidationError("This endpoint routes to no flow: give the flow to route to.")
    merged = (base.model_dump() if base else {}) | changes
    threshold = merged.get("threshold", 1)
    if "min_score" not in changes and merged.get("min_score", 0) >= threshold:
        # A call's lower threshold under the endpoint's noise floor: the floor gives way.
        del merged["min_score"]
    if "class_min_scores" not in changes and merged.get("class_min_scores"):
        # So do the classes' own lower bounds.
        merged["class_min_scores"] = {k: v for k, v in merged["class_min_scores"].items() if v < threshold} or None
    try:
        return RoutingRule.model_validate(merged)
    except PydanticValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValidationError(f"Invalid routing: {problems}") from exc
