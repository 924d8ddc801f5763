"""Bounding boxes: IoU, optimal assignment, clustering the workers' boxes into objects,
weighted box fusion, and box F1 for scoring."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from loopin.consolidation.fields import FieldResult, Given, Past, Weights, most_common
from loopin.consolidation.votes import kept, vote_weight, weighted_vote

if TYPE_CHECKING:
    from loopin.consolidation.reliability import PresenceModel

DEFAULT_IOU = 0.5  # for scoring (F1) and for reliability from agreement
MATCH_IOU = 0.3  # two workers' boxes with at least this IoU can be the same object
LABEL_PENALTY = 0.1


def iou(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    """Intersection over union of two ``{left, top, width, height}`` boxes."""
    ix = max(0.0, min(a["left"] + a["width"], b["left"] + b["width"]) - max(a["left"], b["left"]))
    iy = max(0.0, min(a["top"] + a["height"], b["top"] + b["height"]) - max(a["top"], b["top"]))
    inter = ix * iy
    union = a["width"] * a["height"] + b["width"] * b["height"] - inter
    return inter / union if union > 0 else 0.0


def assignment(cost: np.ndarray) -> list[tuple[int, int]]:
    """Minimum-cost assignment of rows to columns (Hungarian method, O(n^3) with
    potentials); a rectangular matrix is padded with zero-cost dummies. Returns the
    (row, column) pairs of real rows and columns."""
    rows, cols = cost.shape
    if rows == 0 or cols == 0:
        return []
    size = max(rows, cols)
    a = np.zeros((size + 1, size + 1))
    a[1 : rows + 1, 1 : cols + 1] = cost
    u, v = np.zeros(size + 1), np.zeros(size + 1)
    match = np.zeros(size + 1, dtype=int)  # match[column] = row (1-based; 0: free)
    way = np.zeros(size + 1, dtype=int)
    for i in range(1, size + 1):
        match[0] = i
        j0 = 0
        minv = np.full(size + 1, np.inf)
        used = np.zeros(size + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = match[j0]
            reduced = a[i0, 1:] - u[i0] - v[1:]
            free = ~used[1:]
            better = free & (reduced < minv[1:])
            minv[1:][better] = reduced[better]
            way[1:][better] = j0
            candidates = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(candidates)) + 1
            delta = candidates[j1 - 1]
            u[match[used]] += delta
            v[used] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if match[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            match[j0] = match[j1]
            j0 = j1
    return sorted((int(match[j]) - 1, j - 1) for j in range(1, size + 1) if match[j] <= rows and j <= cols)


@dataclass
class _Cluster:
    label: str
    members: list[tuple[str, Mapping[str, float]]]  # (worker, box)

    def fused(self, weights: Mapping[str, float]) -> dict[str, float]:
        total = sum(weights[w] for w, _ in self.members)
        x1 = sum(weights[w] * b["left"] for w, b in self.members) / total
        y1 = sum(weights[w] * b["top"] for w, b in self.members) / total
        x2 = sum(weights[w] * (b["left"] + b["width"]) for w, b in self.members) / total
        y2 = sum(weights[w] * (b["top"] + b["height"]) for w, b in self.members) / total
        return {"left": x1, "top": y1, "width": x2 - x1, "height": y2 - y1}


def cluster_boxes(
    given: Sequence[tuple[str, Sequence[Mapping[str, Any]]]],
    weights: Mapping[str, float],
    *,
    iou_threshold: float = MATCH_IOU,
) -> list[_Cluster]:
    """Group the workers' boxes into objects: workers are taken in order of reliability and
    each one's boxes are assigned to the objects found so far by optimal assignment on
    1 - IoU with the object's fused box (plus ``LABEL_PENALTY`` when the labels differ, so
    that a same-label match wins a tie); a pair below ``iou_threshold`` is no match and the
    box starts an object of its own. One box per worker per object. Labels do not split
    objects: a box drawn with another label is the same object, labelled by vote later."""
    order = sorted(range(len(given)), key=lambda i: -weights[given[i][0]])
    clusters: list[_Cluster] = []
    for i in order:
        worker, boxes = given[i]
        if not boxes:
            continue
        fused = [c.fused(weights) for c in clusters]
        matched: set[int] = set()
        if fused:
            overlap = np.array([[iou(b, f) for f in fused] for b in boxes])
            penalty = np.array([[0.0 if _box_label(b) == c.label else LABEL_PENALTY for c in clusters] for b in boxes])
            for r, c in assignment(1.0 - overlap + penalty):
                if overlap[r, c] >= iou_threshold:
                    clusters[c].members.append((worker, boxes[r]))
                    matched.add(r)
        clusters.extend(_Cluster(_box_label(b), [(worker, b)]) for r, b in enumerate(boxes) if r not in matched)
    return clusters


def _box_label(box: Mapping[str, Any]) -> str:
    return str(box.get("label", ""))


def boxes_field(
    given: Given,
    weights: Weights,
    quorum: int,
    n: int,
    _past: Past,
    iou_threshold: float,
    *,
    presence: PresenceModel | None = None,
    quorum_weights: Weights | None = None,
    label_weights: Weights | None = None,
) -> FieldResult:
    clusters = cluster_boxes([(w, v["boundingBoxes"]) for w, v in given], weights, iou_threshold=iou_threshold)
    counting = quorum_weights if quorum_weights is not None else weights
    total = sum(vote_weight(counting[w]) for w, _ in given)
    n_given = len(given)
    kept_boxes: list[dict[str, Any]] = []
    objects: list[dict[str, Any]] = []
    contributing: set[str] = set()
    scores: list[float] = []
    kept_scores: list[float] = []
    integer = all(
        isinstance(b[k], int) for _, v in given for b in v["boundingBoxes"] for k in ("left", "top", "width", "height")
    )
    for cluster in clusters:
        # A label disagreement is settled by a vote weighted by reliability at labelling when
        # known (gold), else by the workers' reliability. (Dawid-Skene on box labels was tried:
        # with two honest workers per object it did worse, see the docs.)
        label, _ = weighted_vote([(w, _box_label(b)) for w, b in cluster.members], label_weights or weights)
        share = sum(1 for _, b in cluster.members if _box_label(b) == label) / n_given
        ious = [
            iou(a, b) for i, (_, a) in enumerate(cluster.members) for _, b in cluster.members[i + 1 :]
        ]  # pairwise, within the object
        score = (statistics.fmean(ious) if ious else 1.0) * share
        scores.append(score)
        posterior = None
        if presence is not None:
            drew = {w for w, _ in cluster.members}
            posterior = presence.posterior([(w, "present" if w in drew else "absent") for w, _ in given])
            if posterior < 0.5:
                continue
        elif not kept(sum(vote_weight(counting[w]) for w, _ in cluster.members), total, quorum, n_given):
            continue
        box = cluster.fused(weights)
        box = {k: round(x, None if integer else 2) for k, x in box.items()}
        kept_boxes.append(
            {
                "height": box["height"],
                "label": label,
                "left": box["left"],
                "top": box["top"],
                "width": box["width"],
            }
        )
        workers = [w for w, b in cluster.members if _box_label(b) == label]
        contributing.update(workers)
        obj: dict[str, Any] = {"agreement": round(score, 4), "label": label, "workers": workers}
        others = sorted({_box_label(b) for _, b in cluster.members} - {label})
        if others:
            obj["otherLabels"] = others
        if posterior is not None:
            obj["posterior"] = round(posterior, 4)
        objects.append(obj)
        kept_scores.append(score)
    order = sorted(
        range(len(kept_boxes)), key=lambda i: (kept_boxes[i]["top"], kept_boxes[i]["left"], kept_boxes[i]["label"])
    )
    value: dict[str, Any] = {"boundingBoxes": [kept_boxes[i] for i in order]}
    props = most_common([v.get("inputImageProperties") for _, v in given if v.get("inputImageProperties") is not None])
    if props is not None:
        value["inputImageProperties"] = props
    flags = [(w, str(v["initialValueModified"])) for w, v in given if isinstance(v.get("initialValueModified"), bool)]
    if flags:
        value["initialValueModified"] = weighted_vote(flags, weights)[0] == "True"
    # Dropped objects count against the field's agreement: mean over every object seen.
    agreement = sum(kept_scores) / len(scores) if scores else 1.0
    return FieldResult(
        "weighted-box-fusion" if presence is None else "weighted-box-fusion+dawid-skene",
        value,
        agreement,
        [w for w, _ in given if w in contributing],
        [objects[i] for i in order],
    )


def box_f1(
    found: Sequence[Mapping[str, Any]], truth: Sequence[Mapping[str, Any]], *, iou_threshold: float = DEFAULT_IOU
) -> float:
    """F1 of ``found`` boxes against ``truth`` at an IoU threshold, one-to-one per label."""
    tp = match_count(found, truth, iou_threshold=iou_threshold)
    if not found and not truth:
        return 1.0
    return 2 * tp / (len(found) + len(truth))


def label_agreement(
    found: Sequence[Mapping[str, Any]], truth: Sequence[Mapping[str, Any]], *, iou_threshold: float = DEFAULT_IOU
) -> tuple[int, int]:
    """How well ``found`` boxes are labelled: boxes matched one-to-one to ``truth`` whatever
    their labels (optimal assignment, IoU at least ``iou_threshold``), and how many of those
    carry the true label. Returns (same label, matched)."""
    if not found or not truth:
        return 0, 0
    overlap = np.array([[iou(a, b) for b in truth] for a in found])
    pairs = [(r, c) for r, c in assignment(1.0 - overlap) if overlap[r, c] >= iou_threshold]
    same = sum(1 for r, c in pairs if _box_label(found[r]) == _box_label(truth[c]))
    return same, len(pairs)


def match_count(
    found: Sequence[Mapping[str, Any]], truth: Sequence[Mapping[str, Any]], *, iou_threshold: float = DEFAULT_IOU
) -> int:
    """True positives: boxes of ``found`` matched one-to-one (optimal assignment) to boxes
    of ``truth`` with the same label and IoU at least ``iou_threshold``."""
    tp = 0
    for label in {str(b.get("label", "")) for b in truth}:
        t = [b for b in truth if str(b.get("label", "")) == label]
        f = [b for b in found if str(b.get("label", "")) == label]
        if not t or not f:
            continue
        overlap = np.array([[iou(a, b) for b in t] for a in f])
        tp += sum(1 for r, c in assignment(1.0 - overlap) if overlap[r, c] >= iou_threshold)
    return tp
