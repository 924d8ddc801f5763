"""Keypoints: per label, the median of the workers' coordinates."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from typing import Any

from loopin.consolidation.fields import FieldResult, Given, Past, Weights, most_common
from loopin.consolidation.votes import kept, vote_weight


def keypoints_field(given: Given, weights: Weights, quorum: int, n: int, _past: Past, _iou: float) -> FieldResult:
    """Per label, the k-th point of that label of each worker is one object; kept at quorum,
    placed at the median of the workers' coordinates."""
    total = sum(vote_weight(weights[w]) for w, _ in given)
    groups: dict[tuple[str, int], list[tuple[str, Mapping[str, Any]]]] = {}
    for worker, v in given:
        seen: dict[str, int] = {}
        for p in v["keypoints"]:
            label = str(p.get("label", ""))
            k = seen.get(label, 0)
            seen[label] = k + 1
            groups.setdefault((label, k), []).append((worker, p))
    points: list[dict[str, Any]] = []
    objects: list[dict[str, Any]] = []
    contributing: set[str] = set()
    all_scores: list[float] = []
    kept_scores: list[float] = []
    for (label, _), members in sorted(groups.items()):
        share = len(members) / len(given)
        xs, ys = [p["x"] for _, p in members], [p["y"] for _, p in members]
        spread = statistics.fmean(
            math.dist((x, y), (statistics.median(xs), statistics.median(ys))) for x, y in zip(xs, ys, strict=True)
        )
        all_scores.append(share)
        if not kept(sum(vote_weight(weights[w]) for w, _ in members), total, quorum, len(given)):
            continue
        x, y = statistics.median(xs), statistics.median(ys)
        if all(isinstance(c, int) for c in xs + ys):
            x, y = round(x), round(y)
        points.append({"label": label, "x": x, "y": y})
        kept_scores.append(share)
        workers = [w for w, _ in members]
        contributing.update(workers)
        objects.append(
            {"agreement": round(share, 4), "label": label, "meanDistance": round(spread, 2), "workers": workers}
        )
    value: dict[str, Any] = {"keypoints": points}
    props = most_common([v.get("inputImageProperties") for _, v in given if v.get("inputImageProperties") is not None])
    if props is not None:
        value["inputImageProperties"] = props
    agreement = sum(kept_scores) / len(all_scores) if all_scores else 1.0
    return FieldResult("keypoint-median", value, agreement, [w for w, _ in given if w in contributing], objects)
