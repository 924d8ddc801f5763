"""The vocabulary every consolidation method shares: the shapes of its inputs, one
field's result, and the kind of a field read from the values the workers gave."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Answer = tuple[str, Mapping[str, Any]]  # (worker id, answerContent)
Given = list[tuple[str, Any]]  # (worker id, the value of one field)
Weights = Mapping[str, float]
Past = list[list[tuple[str, Any]]]  # other items: per item, (worker id, value of the field)


@dataclass
class FieldResult:
    method: str
    value: Any
    agreement: float
    workers: list[str]
    objects: list[dict[str, Any]] = field(default_factory=list)


def field_kind(values: list[Any]) -> tuple[str | None, str]:
    if not values:
        return None, "no worker answered this field"
    if all(isinstance(v, Mapping) and isinstance(v.get("boundingBoxes"), list) for v in values):
        if all(all(is_box(b) for b in v["boundingBoxes"]) for v in values):
            return "boxes", ""
        return None, "bounding boxes without numeric left, top, width and height"
    if all(isinstance(v, Mapping) and isinstance(v.get("keypoints"), list) for v in values):
        if all(all(is_point(p) for p in v["keypoints"]) for v in values):
            return "keypoints", ""
        return None, "keypoints without numeric x and y"
    if all(isinstance(v, Mapping) and isinstance(v.get("label"), str) for v in values):
        return "label", ""
    if all(
        isinstance(v, Mapping) and isinstance(v.get("labels"), list) and all(isinstance(x, str) for x in v["labels"])
        for v in values
    ):
        return "labels", ""
    if all(isinstance(v, bool) for v in values):
        return "boolean", ""
    if all(isinstance(v, Mapping) and v and all(isinstance(x, bool) for x in v.values()) for v in values):
        return "choices", ""
    if all(is_number(v) for v in values):
        return "number", ""
    if all(isinstance(v, str) for v in values):
        if all(numeric_string(v) is not None for v in values):
            return "numeric-text", ""
        return "text", ""
    shapes = sorted({_shape(v) for v in values})
    if len(shapes) > 1:
        return None, f"workers gave different kinds of value ({', '.join(shapes)})"
    return None, f"no consolidation method for {shapes[0]}"


def _shape(value: Any) -> str:
    if isinstance(value, Mapping):
        keys = sorted(value)[:4]
        return "an object with " + (", ".join(keys) if keys else "no keys")
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    return type(value).__name__


def is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def numeric_string(v: str) -> float | None:
    try:
        x = float(v)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def is_box(b: Any) -> bool:
    return isinstance(b, Mapping) and all(is_number(b.get(k)) for k in ("left", "top", "width", "height"))


def is_point(p: Any) -> bool:
    return isinstance(p, Mapping) and is_number(p.get("x")) and is_number(p.get("y"))


def clamped_weight(reliability: Mapping[str, float] | None, worker: str) -> float:
    if reliability is None or worker not in reliability:
        return 1.0
    return min(1.0, max(1e-3, float(reliability[worker])))


def rounded(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def most_common(values: list[Any]) -> Any:
    if not values:
        return None
    counts: list[tuple[Any, int]] = []
    for v in values:
        for i, (seen, c) in enumerate(counts):
            if seen == v:
                counts[i] = (seen, c + 1)
                break
        else:
            counts.append((v, 1))
    return max(counts, key=lambda vc: vc[1])[0]
