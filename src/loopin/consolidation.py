"""Consolidating the answers of several workers to one loop into one answer.

Pure functions: no database, no HTTP. The input is a list of ``(worker id, answerContent)``
pairs, optional reliability weights per worker (0..1) and optional history (the flow's
recent answers to other loops) from which Dawid-Skene EM learns the workers: their label
confusions, and for boxes whether they draw what is there. The output is a
``Consolidation``: an ``answerContent`` of the same shape as one worker's, with the
agreement per object and per field, the contributing workers, the method used per field
and the fields left alone with the reason. ``docs/consolidation.md`` describes every method.

Each top-level key of ``answerContent`` (a crowd element's ``name``) is one *field*; its
kind is read from the values the workers gave:

==================================  =======================================================
value                               method
==================================  =======================================================
``{"boundingBoxes": [...]}``        ``weighted-box-fusion``: boxes matched across workers
                                    by IoU (optimal assignment), labelled by vote, kept at
                                    the quorum or (``+dawid-skene``) by a presence model
                                    learned from history, corners averaged by reliability
``{"keypoints": [...]}``            ``keypoint-median``: per label, median of coordinates
``{"label": "..."}``                ``dawid-skene`` with history, else ``weighted-majority``
``{"labels": [...]}``               the same, per category (present / absent)
``true`` / ``false``                ``weighted-majority``
``{"a": true, "b": false}``         ``weighted-majority`` per key (crowd-checkbox, radio)
a number, or numeric strings        ``median``
text                                ``normalised-majority``, else ``closest-to-others``
==================================  =======================================================

Anything else (polygons, segmentation masks, entity spans, mixed kinds) is not consolidated
and named in ``not_consolidated`` with the reason.
"""

from __future__ import annotations

import functools
import math
import re
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Any

import numpy as np

Answer = tuple[str, Mapping[str, Any]]  # (worker id, answerContent)
Given = list[tuple[str, Any]]  # (worker id, the value of one field)
Weights = Mapping[str, float]
Past = list[list[tuple[str, Any]]]  # other items: per item, (worker id, value of the field)

DEFAULT_IOU = 0.5  # for scoring (F1) and for reliability from agreement
MATCH_IOU = 0.3  # two workers' boxes with at least this IoU can be the same object
LABEL_PENALTY = 0.1
MIN_EM_ITEMS = 20  # Dawid-Skene needs this many items (loops) of a field; fewer: weighted majority
EM_ITERATIONS = 50
PRIOR_STRENGTH = 2.0  # pseudo-answers a known reliability is worth in a confusion matrix
WHITESPACE = re.compile(r"\s+")


@dataclass
class FieldResult:
    method: str
    value: Any
    agreement: float
    workers: list[str]
    objects: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Consolidation:
    answer_content: dict[str, Any]
    agreement: float | None  # mean over consolidated fields; None when nothing was consolidated
    workers: list[str]  # workers whose answer contributed to at least one kept value
    fields: dict[str, FieldResult]
    not_consolidated: dict[str, str]  # field name -> reason
    quorum: int

    def to_json(self) -> dict[str, Any]:
        """The ``consolidatedAnswer`` object of output.json (loopin's extension)."""
        return {
            "agreement": _round(self.agreement),
            "answerContent": self.answer_content,
            "method": {name: f.method for name, f in self.fields.items()},
            "notConsolidated": dict(self.not_consolidated),
            "perField": {
                name: {
                    "agreement": _round(f.agreement),
                    "objects": f.objects,
                    "workers": f.workers,
                }
                for name, f in self.fields.items()
            },
            "quorum": self.quorum,
            "workers": self.workers,
        }

    def summary(self) -> dict[str, Any]:
        """The short form for events and webhooks."""
        return {
            "agreement": _round(self.agreement),
            "notConsolidated": sorted(self.not_consolidated),
            "workers": self.workers,
        }


def default_quorum(task_count: int) -> int:
    """A majority of the workers: 1 of 1, 2 of 2, 2 of 3."""
    return task_count // 2 + 1


def consolidate(
    answers: Sequence[Answer],
    *,
    reliability: Mapping[str, float] | None = None,
    quorum: int | None = None,
    history: Sequence[Sequence[Answer]] = (),
    iou_threshold: float = MATCH_IOU,
    presence: PresenceModel | None = None,
) -> Consolidation:
    """Consolidate one loop's answers (one per worker).

    Boxes with history and no explicit ``quorum``: a presence model (Dawid-Skene on "is
    there an object here?" over the history's and this loop's objects, or ``presence``
    when the caller has it already) decides each object by its posterior, and the
    workers' reliabilities weight the coordinates. Otherwise the quorum rule below.

    ``quorum``: how many workers must give a box, keypoint or category for it to be kept
    (default: a majority of the answers; capped at the number of answers). With reliability
    weights, votes count by ``vote_weight`` (log-odds) and a value is kept when its workers
    hold at least (quorum - 1/2) / n of the total, the same rule when weights are equal;
    coordinates are averaged with the reliabilities themselves as weights. ``history``: other items
    (loops) of the same flow, each a list of answers, used by Dawid-Skene EM.
    """
    n = len(answers)
    automatic = quorum is None
    quorum = min(max(1, quorum if quorum is not None else default_quorum(n)), max(1, n))
    if presence is None and history and _has_boxes(answers):
        questions = [q for item in [*history, answers] for q in presence_votes(item, iou_threshold=iou_threshold)]
        presence = presence_model(questions)
    learned = presence is not None and reliability is None
    if presence is not None and reliability is None:
        reliability = presence.reliability()
    weights = {worker: _weight(reliability, worker) for worker, _ in answers}
    names: list[str] = []
    for _, content in answers:
        for name in content:
            if name not in names:
                names.append(name)
    names.sort()
    fields: dict[str, FieldResult] = {}
    skipped: dict[str, str] = {}
    for name in names:
        given = [(worker, content[name]) for worker, content in answers if name in content]
        if n == 0:
            continue
        kind, reason = _kind([value for _, value in given])
        if kind is None:
            skipped[name] = reason
            continue
        past = [
            [(worker, content[name]) for worker, content in item if name in content and isinstance(content, Mapping)]
            for item in history
        ]
        method: Callable[..., FieldResult | str] = _METHODS[kind]
        if kind == "boxes" and automatic and presence is not None:
            method = functools.partial(_boxes, presence=presence)
        elif kind == "boxes" and learned:  # an explicit quorum counts workers, not learned weights
            method = functools.partial(_boxes, quorum_weights={w: 1.0 for w, _ in answers})
        result = method(given, weights, quorum, n, past, iou_threshold)
        if isinstance(result, str):
            skipped[name] = result
        else:
            fields[name] = result
    if n == 0:
        skipped["*"] = "no answers"
    contributing = sorted({w for f in fields.values() for w in f.workers}, key=[w for w, _ in answers].index)
    agreement = statistics.fmean(f.agreement for f in fields.values()) if fields else None
    return Consolidation(
        answer_content={name: f.value for name, f in fields.items()},
        agreement=agreement,
        workers=contributing,
        fields=fields,
        not_consolidated=skipped,
        quorum=quorum,
    )


# -- kinds ----------------------------------------------------------------------------


def _kind(values: list[Any]) -> tuple[str | None, str]:
    if not values:
        return None, "no worker answered this field"
    if all(isinstance(v, Mapping) and isinstance(v.get("boundingBoxes"), list) for v in values):
        if all(all(_is_box(b) for b in v["boundingBoxes"]) for v in values):
            return "boxes", ""
        return None, "bounding boxes without numeric left, top, width and height"
    if all(isinstance(v, Mapping) and isinstance(v.get("keypoints"), list) for v in values):
        if all(all(_is_point(p) for p in v["keypoints"]) for v in values):
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
    if all(_is_number(v) for v in values):
        return "number", ""
    if all(isinstance(v, str) for v in values):
        if all(_numeric_string(v) is not None for v in values):
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


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _numeric_string(v: str) -> float | None:
    try:
        x = float(v)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def _is_box(b: Any) -> bool:
    return isinstance(b, Mapping) and all(_is_number(b.get(k)) for k in ("left", "top", "width", "height"))


def _is_point(p: Any) -> bool:
    return isinstance(p, Mapping) and _is_number(p.get("x")) and _is_number(p.get("y"))


def _weight(reliability: Mapping[str, float] | None, worker: str) -> float:
    if reliability is None or worker not in reliability:
        return 1.0
    return min(1.0, max(1e-3, float(reliability[worker])))


def vote_weight(reliability: float) -> float:
    """A worker's weight in a vote: the log-odds of their reliability (the optimal weights
    for a majority of independent voters), clamped to [0.51, 0.99] so that an unknown or
    poor worker still counts a little and a perfect one does not count infinitely."""
    r = min(0.99, max(0.51, reliability))
    return math.log(r / (1 - r))


def _kept(support: float, total: float, quorum: int, n: int) -> bool:
    """ "At least ``quorum`` of ``n`` workers" by vote weight: the supporters hold at least
    (quorum - 1/2) / n of the total weight. With equal weights that is exactly ``quorum``
    workers; with reliabilities, one reliable worker can outweigh two poor ones."""
    return support >= total * (quorum - 0.5) / n - 1e-9


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


# -- bounding boxes -------------------------------------------------------------------


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


def _boxes(
    given: Given,
    weights: Weights,
    quorum: int,
    n: int,
    _past: Past,
    iou_threshold: float,
    *,
    presence: PresenceModel | None = None,
    quorum_weights: Weights | None = None,
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
        # A label disagreement is settled by a vote weighted by reliability. (Dawid-Skene on
        # box labels was tried: with two honest workers per object it did worse, see the docs.)
        label, _ = weighted_vote([(w, _box_label(b)) for w, b in cluster.members], weights)
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
        elif not _kept(sum(vote_weight(counting[w]) for w, _ in cluster.members), total, quorum, n_given):
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
    props = _most_common([v.get("inputImageProperties") for _, v in given if v.get("inputImageProperties") is not None])
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


def _most_common(values: list[Any]) -> Any:
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


# -- keypoints ------------------------------------------------------------------------


def _keypoints(given: Given, weights: Weights, quorum: int, n: int, _past: Past, _iou: float) -> FieldResult:
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
        if not _kept(sum(vote_weight(weights[w]) for w, _ in members), total, quorum, len(given)):
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
    props = _most_common([v.get("inputImageProperties") for _, v in given if v.get("inputImageProperties") is not None])
    if props is not None:
        value["inputImageProperties"] = props
    agreement = sum(kept_scores) / len(all_scores) if all_scores else 1.0
    return FieldResult("keypoint-median", value, agreement, [w for w, _ in given if w in contributing], objects)


# -- classification -------------------------------------------------------------------


def weighted_vote(votes: Sequence[tuple[str, str]], weights: Mapping[str, float]) -> tuple[str, float]:
    """The label with the most weight, and its share of the weight. Ties go to the label of
    the most reliable worker among them, then to the first given."""
    tally: dict[str, float] = {}
    for worker, label in votes:
        tally[label] = tally.get(label, 0.0) + vote_weight(weights.get(worker, 1.0))
    best = max(tally.values())
    tied = [label for label in tally if math.isclose(tally[label], best)]
    if len(tied) > 1:
        ranked = sorted(votes, key=lambda wl: -weights.get(wl[0], 1.0))
        winner = next(label for _, label in ranked if label in tied)
    else:
        winner = tied[0]
    return winner, tally[winner] / sum(tally.values())


def dawid_skene(
    items: Sequence[Sequence[tuple[str, str]]],
    *,
    classes: Sequence[str],
    reliability: Mapping[str, float] | None = None,
    iterations: int = EM_ITERATIONS,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Dawid-Skene EM: each worker has a confusion matrix (true class x given class), the
    classes a prior; returns the posterior over classes per item and the matrices. Starts
    from the weighted vote; a known reliability r adds ``PRIOR_STRENGTH`` pseudo-answers
    (r on the diagonal, the rest spread evenly) to the worker's matrix."""
    k = len(classes)
    index = {c: i for i, c in enumerate(classes)}
    workers = sorted({w for item in items for w, _ in item})
    windex = {w: i for i, w in enumerate(workers)}
    rel = {w: _weight(reliability, w) if reliability and w in reliability else None for w in workers}
    obs = [(i, windex[w], index[label]) for i, item in enumerate(items) for w, label in item]
    item_idx = np.array([o[0] for o in obs])
    worker_idx = np.array([o[1] for o in obs])
    label_idx = np.array([o[2] for o in obs])
    posterior = np.full((len(items), k), 1e-6)
    np.add.at(posterior, (item_idx, label_idx), [rel[workers[j]] or 1.0 for j in worker_idx])
    posterior /= posterior.sum(axis=1, keepdims=True)
    prior_counts = np.full((len(workers), k, k), 0.01)
    for w, r in rel.items():
        if r is not None and k > 1:
            prior_counts[windex[w]] += PRIOR_STRENGTH * (1 - r) / (k - 1)
            prior_counts[windex[w]][np.diag_indices(k)] += PRIOR_STRENGTH * r - PRIOR_STRENGTH * (1 - r) / (k - 1)
    confusion = prior_counts
    for _ in range(iterations):
        class_prior = posterior.mean(axis=0) + 1e-6
        class_prior /= class_prior.sum()
        counts = prior_counts.copy()
        for c in range(k):  # counts[worker, true class c, given label] += P(item is c)
            np.add.at(counts[:, c, :], (worker_idx, label_idx), posterior[item_idx, c])
        confusion = counts / counts.sum(axis=2, keepdims=True)
        log_post = np.tile(np.log(class_prior), (len(items), 1))
        np.add.at(log_post, item_idx, np.log(confusion[worker_idx, :, label_idx]))
        log_post -= log_post.max(axis=1, keepdims=True)
        new = np.exp(log_post)
        new /= new.sum(axis=1, keepdims=True)
        converged = np.abs(new - posterior).max() < 1e-6
        posterior = new
        if converged:
            break
    return posterior, {w: confusion[windex[w]] for w in workers}


def _classify(
    votes: list[tuple[str, str]],
    past: list[list[tuple[str, str]]],
    weights: Mapping[str, float],
    reliability_known: bool,
) -> tuple[str, float, str, float | None]:
    """(label, agreement, method, posterior of the label or None)."""
    winner, _ = weighted_vote(votes, weights)
    agreement = sum(1 for _, label in votes if label == winner) / len(votes)
    items = [item for item in past if item] + [votes]
    classes = sorted({label for item in items for _, label in item})
    if len(items) < MIN_EM_ITEMS or len(classes) < 2:
        return winner, agreement, "weighted-majority", None
    posterior, _ = dawid_skene(items, classes=classes, reliability=weights if reliability_known else None)
    best = int(np.argmax(posterior[-1]))
    label = classes[best]
    return label, sum(1 for _, x in votes if x == label) / len(votes), "dawid-skene", float(posterior[-1][best])


def _label(given: Given, weights: Weights, quorum: int, n: int, past: Past, _iou: float) -> FieldResult:
    votes = [(w, v["label"]) for w, v in given]
    history = [
        [(w, v["label"]) for w, v in item if isinstance(v, Mapping) and isinstance(v.get("label"), str)]
        for item in past
    ]
    label, agreement, method, confidence = _classify(votes, history, weights, _known(weights))
    workers = [w for w, x in votes if x == label]
    obj: dict[str, Any] = {"agreement": round(agreement, 4), "label": label, "workers": workers}
    if confidence is not None:
        obj["posterior"] = round(confidence, 4)
    return FieldResult(method, {"label": label}, agreement, workers, [obj])


def _labels(given: Given, weights: Weights, quorum: int, n: int, past: Past, _iou: float) -> FieldResult:
    """Multi-label: each category seen is a present/absent question, decided like a label
    (Dawid-Skene per category with history, else a weighted vote at quorum)."""
    sets = [(w, set(v["labels"])) for w, v in given]
    history = [
        [(w, set(v["labels"])) for w, v in item if isinstance(v, Mapping) and isinstance(v.get("labels"), list)]
        for item in past
    ]
    order: list[str] = []
    for _, v in given:
        for c in v["labels"]:
            if c not in order:
                order.append(c)
    total = sum(vote_weight(weights[w]) for w, _ in sets)
    chosen, objects, methods = [], [], set()
    for category in order:
        votes = [(w, "yes" if category in s else "no") for w, s in sets]
        past_votes = [[(w, "yes" if category in s else "no") for w, s in item] for item in history]
        support = sum(vote_weight(weights[w]) for w, s in sets if category in s)
        items = [v for v in past_votes if v] + [votes]
        if len(items) >= MIN_EM_ITEMS and {x for item in items for _, x in item} == {"no", "yes"}:
            posterior, _ = dawid_skene(items, classes=["no", "yes"], reliability=weights if _known(weights) else None)
            present = bool(posterior[-1][1] > 0.5)
            methods.add("dawid-skene")
        else:
            present = _kept(support, total, quorum, len(sets))
            methods.add("weighted-majority")
        workers = [w for w, s in sets if (category in s) == present]
        objects.append(
            {"agreement": round(len(workers) / len(sets), 4), "label": category, "present": present, "workers": workers}
        )
        if present:
            chosen.append(category)
    # Agreement: mean Jaccard similarity of each worker's set with the consolidated one.
    final = set(chosen)
    agreement = statistics.fmean(len(s & final) / len(s | final) if s | final else 1.0 for _, s in sets)
    contributing = [w for w, s in sets if s & final or (not s and not final)]
    method = (
        "dawid-skene"
        if methods == {"dawid-skene"}
        else "weighted-majority"
        if methods == {"weighted-majority"}
        else "dawid-skene+weighted-majority"
    )
    return FieldResult(method, {"labels": chosen}, agreement, contributing, objects)


def _known(weights: Mapping[str, float]) -> bool:
    return any(w != 1.0 for w in weights.values())


# -- scalars --------------------------------------------------------------------------


def _boolean(given: Given, weights: Weights, quorum: int, n: int, _past: Past, _iou: float) -> FieldResult:
    winner, _ = weighted_vote([(w, "true" if v else "false") for w, v in given], weights)
    value = winner == "true"
    workers = [w for w, v in given if v == value]
    return FieldResult("weighted-majority", value, len(workers) / len(given), workers)


def _choices(given: Given, weights: Weights, quorum: int, n: int, _past: Past, _iou: float) -> FieldResult:
    keys: list[str] = []
    for _, v in given:
        keys.extend(k for k in v if k not in keys)
    value, objects, shares = {}, [], []
    for key in keys:
        votes = [(w, "true" if v.get(key, False) else "false") for w, v in given]
        winner, _ = weighted_vote(votes, weights)
        value[key] = winner == "true"
        workers = [w for w, x in votes if x == winner]
        shares.append(len(workers) / len(given))
        objects.append({"agreement": round(shares[-1], 4), "label": key, "workers": workers})
    agree_all = [w for w, v in given if all(bool(v.get(k, False)) == value[k] for k in keys)]
    return FieldResult("weighted-majority", value, statistics.fmean(shares), agree_all, objects)


def _number(given: Given, weights: Weights, quorum: int, n: int, _past: Past, _iou: float) -> FieldResult:
    values = [float(v) for _, v in given]
    return _median_result(given, values, all(isinstance(v, int) for _, v in given))


def _numeric_text(given: Given, weights: Weights, quorum: int, n: int, _past: Past, _iou: float) -> FieldResult:
    values = [_numeric_string(v) or 0.0 for _, v in given]
    result = _median_result(given, values, all(x.is_integer() for x in values))
    result.value = str(result.value)
    return result


def _median_result(given: Sequence[tuple[str, Any]], values: list[float], integer: bool) -> FieldResult:
    median = statistics.median(values)
    spread = max(values) - min(values)
    scale = max(abs(median), 1e-9)
    # Agreement: share of workers within 5 % of the median (or equal to it when it is 0).
    near = [w for (w, _), x in zip(given, values, strict=True) if abs(x - median) <= 0.05 * scale]
    value: float | int = median
    if integer and float(median).is_integer():
        value = int(median)
    return FieldResult(
        "median",
        value,
        len(near) / len(values),
        near,
        [{"agreement": round(len(near) / len(values), 4), "range": spread, "workers": near}],
    )


def normalise_text(text: str) -> str:
    return WHITESPACE.sub(" ", text).strip().casefold()


def _text(given: Given, weights: Weights, quorum: int, n: int, _past: Past, _iou: float) -> FieldResult:
    """The normalised answer most workers gave (at quorum, by weight), in the words of the
    most reliable of them; else the answer closest to the others by edit ratio."""
    total = sum(vote_weight(weights[w]) for w, _ in given)
    norm = [(w, normalise_text(v)) for w, v in given]
    winner, _ = weighted_vote(norm, weights)
    support = sum(vote_weight(weights[w]) for w, x in norm if x == winner)
    workers = [w for w, x in norm if x == winner]
    if len(given) > 1 and _kept(support, total, quorum, len(given)) and len(workers) > 1:
        best = max((i for i, (w, x) in enumerate(norm) if x == winner), key=lambda i: weights[norm[i][0]])
        return FieldResult("normalised-majority", given[best][1], len(workers) / len(given), workers)
    if len(given) == 1:
        return FieldResult("normalised-majority", given[0][1], 1.0, [given[0][0]])
    similarity = [
        statistics.fmean(SequenceMatcher(None, x, y).ratio() for j, (_, y) in enumerate(norm) if j != i)
        for i, (_, x) in enumerate(norm)
    ]
    best = max(range(len(norm)), key=lambda i: (similarity[i] * weights[norm[i][0]], -i))
    return FieldResult("closest-to-others", given[best][1], similarity[best], [given[best][0]])


_METHODS: dict[str, Callable[..., FieldResult | str]] = {
    "boxes": _boxes,
    "keypoints": _keypoints,
    "label": _label,
    "labels": _labels,
    "boolean": _boolean,
    "choices": _choices,
    "number": _number,
    "numeric-text": _numeric_text,
    "text": _text,
}


# -- reliability ----------------------------------------------------------------------


def presence_votes(item: Sequence[Answer], *, iou_threshold: float = MATCH_IOU) -> list[list[tuple[str, str]]]:
    """One loop's boxes as yes/no questions: the objects found by clustering every worker's
    boxes (``cluster_boxes``, no quorum), and for each object, every worker who answered
    the field saying "present" (drew a box in it) or "absent"."""
    questions: list[list[tuple[str, str]]] = []
    names = sorted({name for _, content in item for name in content})
    for name in names:
        given = [
            (worker, content[name]["boundingBoxes"])
            for worker, content in item
            if isinstance(content.get(name), Mapping)
            and isinstance(content[name].get("boundingBoxes"), list)
            and all(_is_box(b) for b in content[name]["boundingBoxes"])
        ]
        if len(given) < 2:
            continue
        for cluster in cluster_boxes(given, {w: 1.0 for w, _ in given}, iou_threshold=iou_threshold):
            drew = {w for w, _ in cluster.members}
            questions.append([(w, "present" if w in drew else "absent") for w, _ in given])
    return questions


@dataclass(frozen=True)
class PresenceModel:
    """Dawid-Skene fitted on present/absent questions: the share of objects that are real
    and, per worker, P(says v | truth) as a 2 x 2 matrix (rows: absent, present)."""

    prior: tuple[float, float]
    confusion: Mapping[str, np.ndarray]

    def posterior(self, votes: Sequence[tuple[str, str]]) -> float:
        """P(the object is there | the workers' present/absent votes); workers the model
        has not seen do not count."""
        log = np.log(np.array(self.prior))
        for worker, vote in votes:
            matrix = self.confusion.get(worker)
            if matrix is not None:
                log = log + np.log(matrix[:, 1 if vote == "present" else 0])
        p = np.exp(log - log.max())
        return float(p[1] / p.sum())

    def reliability(self) -> dict[str, float]:
        """Balanced accuracy per worker: the mean of sensitivity and specificity."""
        return {w: round(float(m[0, 0] + m[1, 1]) / 2, 4) for w, m in sorted(self.confusion.items())}


def presence_model(questions: Sequence[Sequence[tuple[str, str]]]) -> PresenceModel | None:
    """Fit ``PresenceModel`` on many loops' questions (``presence_votes``); None with fewer
    than ``MIN_EM_ITEMS`` questions or when no object was ever disputed."""
    if len(questions) < MIN_EM_ITEMS or not any(v == "absent" for q in questions for _, v in q):
        return None
    posterior, confusion = dawid_skene(questions, classes=["absent", "present"])
    share = float(posterior[:, 1].mean())
    return PresenceModel((1 - share, share), confusion)


def reliability_from_presence(questions: Sequence[Sequence[tuple[str, str]]]) -> dict[str, float]:
    """Each worker's reliability at drawing boxes (``PresenceModel.reliability``)."""
    model = presence_model(questions)
    return model.reliability() if model is not None else {}


def estimate_reliability(items: Sequence[Sequence[Answer]], *, iou_threshold: float = MATCH_IOU) -> dict[str, float]:
    """Workers' reliabilities from the box answers of many loops, without ground truth
    (``presence_votes`` + ``reliability_from_presence``)."""
    questions = [q for item in items for q in presence_votes(item, iou_threshold=iou_threshold)]
    return reliability_from_presence(questions)


def box_f1(
    found: Sequence[Mapping[str, Any]], truth: Sequence[Mapping[str, Any]], *, iou_threshold: float = DEFAULT_IOU
) -> float:
    """F1 of ``found`` boxes against ``truth`` at an IoU threshold, one-to-one per label."""
    tp = match_count(found, truth, iou_threshold=iou_threshold)
    if not found and not truth:
        return 1.0
    return 2 * tp / (len(found) + len(truth))


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


def needs_history(answers: Sequence[Answer]) -> bool:
    """True when a field learns from other items: classifications (Dawid-Skene) and boxes
    (the workers' reliabilities)."""
    for _, content in answers:
        for value in content.values():
            if isinstance(value, Mapping) and (
                isinstance(value.get("label"), str)
                or isinstance(value.get("labels"), list)
                or isinstance(value.get("boundingBoxes"), list)
            ):
                return True
    return False


def _has_boxes(answers: Sequence[Answer]) -> bool:
    return any(
        isinstance(v, Mapping) and isinstance(v.get("boundingBoxes"), list)
        for _, content in answers
        for v in content.values()
    )
