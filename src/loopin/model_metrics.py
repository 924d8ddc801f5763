"""Model versus humans: for every routed loop with an answer, the model's boxes (the
prediction log) matched with the people's final boxes (the consolidated answer when the
output has one, else the first answer):

- **kept**: same label, IoU >= 0.95 (the pre-filled box left as it was, give or take rounding);
- **moved**: same label, 0.5 <= IoU < 0.95 (``mean_moved_iou`` says how far);
- **relabelled**: another label, IoU >= 0.5;
- **deleted**: a model box with no human box (a false positive);
- **added**: a human box with no model box (a false negative).

Boxes are matched one-to-one, best IoU first, same label before relabelling. The model's
boxes are those it asserted: its detections at or above the loop's routing threshold (what
was pre-filled). Precision = (kept + moved) / model boxes, recall = (kept + moved) / human
boxes. AP@0.5 ranks *every* logged detection by score as COCO's evaluation does (greedy
matching per image, at most 100 detections per image, 101-point interpolated precision,
averaged over classes with human boxes), so it agrees with pycocotools.

Aggregated per class, per flow, per endpoint (with the model it ran) and per ISO week, over
the latest ``LIMIT`` routed loops.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from loopin import schemas
from loopin.exports.selection import Answer, Box, boxes_in, consolidated_answer, page_answers
from loopin.flows import get_flow
from loopin.models import FlowDefinition, HumanLoop, Prediction
from loopin.store import ObjectStore

MATCH_IOU = 0.5
KEPT_IOU = 0.95
MAX_DETECTIONS = 100  # per image, as COCO's evaluation
LIMIT = 50_000
RECALL_POINTS = [i / 100 for i in range(101)]


def iou(a: Box, b: Box) -> float:
    w = max(0.0, min(a.right, b.right) - max(a.left, b.left))
    h = max(0.0, min(a.bottom, b.bottom) - max(a.top, b.top))
    inter = w * h
    union = a.width * a.height + b.width * b.height - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Counts:
    loops: int = 0
    model_boxes: int = 0
    human_boxes: int = 0
    kept: int = 0
    moved: int = 0
    relabelled: int = 0
    deleted: int = 0
    added: int = 0
    moved_iou: float = 0.0
    # for AP: per class, (score, true positive) of every detection, and how many human boxes
    ranked: dict[str, list[tuple[float, int, bool]]] = field(default_factory=lambda: defaultdict(list))
    truths: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, other: Counts) -> None:
        for name in ("loops", "model_boxes", "human_boxes", "kept", "moved", "relabelled", "deleted", "added"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.moved_iou += other.moved_iou
        for label, items in other.ranked.items():
            self.ranked[label].extend(items)
        for label, n in other.truths.items():
            self.truths[label] += n

    def row(self, key: str) -> schemas.MetricsRow:
        tp = self.kept + self.moved
        return schemas.MetricsRow(
            key=key,
            loops=self.loops,
            model_boxes=self.model_boxes,
            human_boxes=self.human_boxes,
            kept=self.kept,
            moved=self.moved,
            relabelled=self.relabelled,
            deleted=self.deleted,
            added=self.added,
            mean_moved_iou=round(self.moved_iou / self.moved, 4) if self.moved else None,
            precision=round(tp / self.model_boxes, 4) if self.model_boxes else None,
            recall=round(tp / self.human_boxes, 4) if self.human_boxes else None,
            ap50=_round(mean_ap(self.ranked, self.truths)),
        )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


@dataclass(frozen=True)
class Comparison:
    """One loop: what happened to each box, by class."""

    kept: list[str]
    moved: list[tuple[str, float]]
    relabelled: list[tuple[str, str]]  # (model's label, people's label)
    deleted: list[str]
    added: list[str]


def compare_boxes(model: Sequence[Box], human: Sequence[Box]) -> Comparison:
    pairs = sorted(
        ((iou(m, h), i, j) for i, m in enumerate(model) for j, h in enumerate(human)),
        key=lambda p: (-p[0], p[1], p[2]),
    )
    used_m: set[int] = set()
    used_h: set[int] = set()
    kept: list[str] = []
    moved: list[tuple[str, float]] = []
    relabelled: list[tuple[str, str]] = []
    for same_label in (True, False):
        for value, i, j in pairs:
            if value < MATCH_IOU or i in used_m or j in used_h:
                continue
            if (model[i].label == human[j].label) != same_label:
                continue
            used_m.add(i)
            used_h.add(j)
            if not same_label:
                relabelled.append((model[i].label, human[j].label))
            elif value >= KEPT_IOU:
                kept.append(model[i].label)
            else:
                moved.append((model[i].label, value))
    deleted = [m.label for i, m in enumerate(model) if i not in used_m]
    added = [h.label for j, h in enumerate(human) if j not in used_h]
    return Comparison(kept, moved, relabelled, deleted, added)


def rank_detections(detections: Sequence[Box], human: Sequence[Box]) -> dict[str, list[tuple[float, bool]]]:
    """COCO's per-image matching at IoU 0.5: each detection, best score first, takes the
    unmatched human box of its class it overlaps most."""
    ranked: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    by_class: dict[str, list[Box]] = defaultdict(list)
    for d in sorted(detections, key=lambda d: -(d.score or 0.0)):
        by_class[d.label].append(d)
    for label, all_dets in by_class.items():
        dets = all_dets[:MAX_DETECTIONS]  # per image and class, as COCO's maxDets
        truths = [h for h in human if h.label == label]
        taken = [False] * len(truths)
        for d in dets:
            best, best_iou = -1, min(MATCH_IOU, 1 - 1e-10)
            for j, h in enumerate(truths):
                if taken[j]:
                    continue
                value = iou(d, h)
                if value < best_iou:
                    continue
                best, best_iou = j, value
            if best >= 0:
                taken[best] = True
            ranked[label].append((d.score or 0.0, best >= 0))
    return ranked


def average_precision(items: list[tuple[float, int, bool]], truths: int) -> float | None:
    """COCO's 101-point interpolated AP of (score, order, true positive) detections."""
    if truths == 0:
        return None
    ordered = sorted(items, key=lambda x: (-x[0], x[1]))
    tp = fp = 0
    precision: list[float] = []
    recall: list[float] = []
    for _, _, hit in ordered:
        tp += hit
        fp += not hit
        precision.append(tp / (tp + fp))
        recall.append(tp / truths)
    for i in range(len(precision) - 1, 0, -1):  # the precision envelope
        precision[i - 1] = max(precision[i - 1], precision[i])
    total, k = 0.0, 0
    for r in RECALL_POINTS:
        while k < len(recall) and recall[k] < r:
            k += 1
        total += precision[k] if k < len(recall) else 0.0
    return total / len(RECALL_POINTS)


def mean_ap(ranked: dict[str, list[tuple[float, int, bool]]], truths: dict[str, int]) -> float | None:
    values = [ap for label in truths if (ap := average_precision(ranked.get(label, []), truths[label])) is not None]
    return sum(values) / len(values) if values else None


@dataclass
class Report:
    flow: str | None
    loops: int
    total: Counts
    per_class: dict[str, Counts]
    per_flow: dict[str, Counts]
    per_endpoint: dict[str, Counts]
    per_week: dict[str, Counts]


def week_of(epoch_ms: int) -> str:
    year, week, _ = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).isocalendar()
    return f"{year}-W{week:02d}"


def compare(session: Session, store: ObjectStore, *, flow: str | None = None, limit: int = LIMIT) -> Report:
    """The report over the latest ``limit`` routed loops (of ``flow``, or of every flow)."""
    if flow is not None:
        get_flow(session, flow)
    query = select(Prediction).where(Prediction.loop_name.is_not(None)).order_by(Prediction.id.desc()).limit(limit)
    if flow is not None:
        query = query.where(Prediction.flow_name == flow)
    report = Report(
        flow, 0, Counts(), defaultdict(Counts), defaultdict(Counts), defaultdict(Counts), defaultdict(Counts)
    )
    order = 0
    predictions = list(session.scalars(query))
    for start in range(0, len(predictions), 500):
        batch = predictions[start : start + 500]
        loops = {
            loop.name: (loop, fname)
            for loop, fname in session.execute(
                select(HumanLoop, FlowDefinition.name)
                .join(FlowDefinition, FlowDefinition.id == HumanLoop.flow_id)
                .where(HumanLoop.name.in_([p.loop_name for p in batch]), HumanLoop.output_state == "written")
            )
        }
        answers = page_answers(session, [loop for loop, _ in loops.values()])
        for prediction in batch:
            found = loops.get(prediction.loop_name or "")
            if found is None:
                continue
            loop, flow_name = found
            human = _final_boxes(store, loop, answers.get(loop.id, []))
            if human is None:
                continue
            detections = _detections(prediction.detections)
            threshold = prediction.threshold if prediction.threshold is not None else 0.0
            asserted = [d for d in detections if (d.score or 0.0) >= threshold]
            one = _one_loop(compare_boxes(asserted, human), rank_detections(detections, human), human, order)
            order += MAX_DETECTIONS
            report.loops += 1
            report.total.add(one.total)
            report.per_flow[flow_name].add(one.total)
            report.per_endpoint[f"{prediction.endpoint_name} ({prediction.model_name})"].add(one.total)
            report.per_week[week_of(loop.created_at)].add(one.total)
            for label, counts in one.per_class.items():
                report.per_class[label].add(counts)
        session.expunge_all()
    return report


@dataclass
class _Loop:
    total: Counts
    per_class: dict[str, Counts]


def _one_loop(c: Comparison, ranked: dict[str, list[tuple[float, bool]]], human: Sequence[Box], order: int) -> _Loop:
    per_class: dict[str, Counts] = defaultdict(Counts)
    for label in c.kept:
        per_class[label].kept += 1
        per_class[label].model_boxes += 1
    for label, value in c.moved:
        per_class[label].moved += 1
        per_class[label].moved_iou += value
        per_class[label].model_boxes += 1
    for model_label, _people_label in c.relabelled:
        per_class[model_label].relabelled += 1
        per_class[model_label].model_boxes += 1
    for label in c.deleted:
        per_class[label].deleted += 1
        per_class[label].model_boxes += 1
    for label in c.added:
        per_class[label].added += 1
    for box in human:
        per_class[box.label].human_boxes += 1
        per_class[box.label].truths[box.label] += 1
    for label, items in ranked.items():
        per_class[label].ranked[label].extend((score, order + i, hit) for i, (score, hit) in enumerate(items))
    total = Counts()
    for counts in per_class.values():
        total.add(counts)
    for counts in per_class.values():
        counts.loops = 1
    total.loops = 1
    return _Loop(total, per_class)


def _final_boxes(store: ObjectStore, loop: HumanLoop, answers: list[Answer]) -> list[Box] | None:
    if not answers:
        return None
    content = answers[0].content
    if len(answers) > 1:
        consolidated = consolidated_answer(store, loop.name, loop.output_uri)
        if consolidated is not None and isinstance(consolidated.get("answerContent"), dict):
            content = consolidated["answerContent"]
    boxes, _ = boxes_in(content)
    return boxes


def _detections(text: str) -> list[Box]:
    try:
        raw = json.loads(text)
    except ValueError:
        return []
    found = []
    for d in raw if isinstance(raw, list) else []:
        try:
            left, top, right, bottom = (float(d[k]) for k in ("left", "top", "right", "bottom"))
            found.append(Box(str(d["label"]), left, top, right - left, bottom - top, float(d.get("score", 1.0))))
        except (KeyError, TypeError, ValueError):
            continue
    return found


def to_schema(report: Report) -> schemas.ModelMetrics:
    def rows(groups: dict[str, Counts]) -> list[schemas.MetricsRow]:
        return [groups[key].row(key) for key in sorted(groups)]

    return schemas.ModelMetrics(
        flow=report.flow,
        loops=report.loops,
        limit=LIMIT,
        total=report.total.row("all"),
        per_class=rows(report.per_class),
        per_flow=rows(report.per_flow),
        per_endpoint=rows(report.per_endpoint),
        per_week=rows(report.per_week),
    )


CSV_COLUMNS = (
    "group",
    "key",
    "loops",
    "model_boxes",
    "human_boxes",
    "kept",
    "moved",
    "relabelled",
    "deleted",
    "added",
    "mean_moved_iou",
    "precision",
    "recall",
    "ap50",
)


def to_csv(report: Report) -> str:
    data = to_schema(report)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    groups: Iterable[tuple[str, list[schemas.MetricsRow]]] = [
        ("total", [data.total]),
        ("class", data.per_class),
        ("flow", data.per_flow),
        ("endpoint", data.per_endpoint),
        ("week", data.per_week),
    ]
    for group, rows in groups:
        for row in rows:
            values = row.model_dump()
            writer.writerow([group, *("" if values[c] is None else values[c] for c in CSV_COLUMNS[1:])])
    return out.getvalue()
