"""The threshold picture: for a flow whose loops people have reviewed, replay other
confidence thresholds against the prediction log and the answers.

The replay takes the flow's latest ``REPLAY_LIMIT`` logged images. Detections are looked
at as the endpoints' routing rules look at them: of the rules' classes, and not below
their lower bound (``min_score``, or the class's own in ``class_min_scores``). For each
threshold t:
- ``routed``: how many logged images would have gone to people (some detection between its
  lower bound and t: uncertain);
- ``missed``: how many *reviewed* images would not have gone to people at t although the
  people changed something — a box at or above t that they removed or moved, or a box they
  added that the model did not give at or above t (matched by label and IoU >= 0.5).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from loopin.endpoints import list_endpoints, routing_rule
from loopin.flows import get_flow
from loopin.models import HumanLoop, Prediction, TaskSlot
from loopin.schemas import RoutingRule

MATCH_IOU = 0.5
DEFAULT_THRESHOLDS = tuple(round(i / 20, 2) for i in range(21))  # 0.00, 0.05, ..., 1.00
REPLAY_LIMIT = 20_000  # the latest logged images of the flow: recent enough, and fast to replay


@dataclass(frozen=True)
class Point:
    threshold: float
    routed: int
    missed: int


@dataclass(frozen=True)
class Curve:
    flow: str
    images: int  # logged predictions for the flow (the latest REPLAY_LIMIT at most)
    reviewed: int  # of which people answered with boxes
    points: list[Point]


Box = tuple[str, float, float, float, float]  # label, left, top, right, bottom


def threshold_curve(
    session: Session,
    flow_name: str,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    *,
    rules: Sequence[RoutingRule] | None = None,
) -> Curve:
    """The curve for a flow, replayed as ``rules`` look at detections (a detection counts if
    any of them looks at it); by default the rules of the endpoints routing to the flow."""
    get_flow(session, flow_name)  # must exist
    if rules is None:
        rules = [r for r in (routing_rule(e) for e in list_endpoints(session)) if r is not None and r.flow == flow_name]
    if not rules:  # no endpoint routes to the flow (any more): every logged detection counts
        rules = [RoutingRule(flow=flow_name, threshold=1.0, min_score=0.0)]
    floors: dict[str, float] = {}

    def floor(label: str) -> float:
        """The label's lower bound: the lowest of the rules looking at it (inf: none does)."""
        if label not in floors:
            found = [f for f in (rule.floor(label) for rule in rules) if f is not None]
            floors[label] = min(found, default=math.inf)
        return floors[label]

    predictions = session.execute(
        select(Prediction.detections, Prediction.loop_name)
        .where(Prediction.flow_name == flow_name)
        .order_by(Prediction.id.desc())
        .limit(REPLAY_LIMIT)
    ).all()
    human = _human_boxes(session, [loop for _, loop in predictions if loop])
    images = []
    for detections_json, loop_name in predictions:
        detections = json.loads(detections_json)
        model = [
            (d["label"], d["score"], (d["left"], d["top"], d["right"], d["bottom"]))
            for d in detections
            if d["score"] >= floor(d["label"])
        ]
        lowest = min((score for _, score, _ in model), default=None)  # routed at t iff lowest < t
        images.append((model, lowest, human.get(loop_name) if loop_name else None))
    points = []
    for t in thresholds:
        routed = missed = 0
        for model, lowest, people in images:
            goes_to_people = lowest is not None and lowest < t
            routed += goes_to_people
            if people is not None and not goes_to_people:
                confident = [(label, *box) for label, score, box in model if score >= t]
                missed += _differ(confident, people)
        points.append(Point(threshold=t, routed=routed, missed=missed))
    reviewed = sum(people is not None for _, _, people in images)
    return Curve(flow=flow_name, images=len(images), reviewed=reviewed, points=points)


def _human_boxes(session: Session, loop_names: list[str]) -> dict[str, list[Box]]:
    """The first submitted answer's boxes per loop (crowd-bounding-box's ``boundingBoxes``)."""
    found: dict[str, list[Box]] = {}
    for start in range(0, len(loop_names), 500):
        rows = session.execute(
            select(HumanLoop.name, TaskSlot.answer)
            .join(TaskSlot, TaskSlot.loop_id == HumanLoop.id)
            .where(HumanLoop.name.in_(loop_names[start : start + 500]), TaskSlot.status == "submitted")
            .order_by(TaskSlot.submitted_at)
        ).all()
        for name, answer in rows:
            if name in found or answer is None:
                continue
            boxes = _boxes_in(json.loads(answer))
            if boxes is not None:
                found[name] = boxes
    return found


def _boxes_in(answer: dict[str, Any]) -> list[Box] | None:
    for value in answer.values():
        if isinstance(value, dict) and isinstance(value.get("boundingBoxes"), list):
            return [
                (b["label"], b["left"], b["top"], b["left"] + b["width"], b["top"] + b["height"])
                for b in value["boundingBoxes"]
                if isinstance(b, dict) and {"label", "left", "top", "width", "height"} <= b.keys()
            ]
    return None


def _iou(a: Box, b: Box) -> float:
    w = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    h = max(0.0, min(a[4], b[4]) - max(a[2], b[2]))
    inter = w * h
    union = (a[3] - a[1]) * (a[4] - a[2]) + (b[3] - b[1]) * (b[4] - b[2]) - inter
    return inter / union if union > 0 else 0.0


def _differ(model: list[Box], people: list[Box]) -> bool:
    """True unless every box pairs one-to-one with a box of the same label (IoU >= 0.5)."""
    if len(model) != len(people):
        return True
    unmatched = list(people)
    for box in model:
        match = next((p for p in unmatched if p[0] == box[0] and _iou(p, box) >= MATCH_IOU), None)
        if match is None:
            return True
        unmatched.remove(match)
    return False
