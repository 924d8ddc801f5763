"""Gold items: inputs with a known answer that an admin loads for a flow, and the flow's
gold settings. An item's answer must fit the flow's template (the ``crowd-*`` elements it
names and the answer shape each gives); ``score`` grades a worker's answer against it.

Serving them to workers is ``gold_serving``; the workers' accuracy is ``worker_quality``.
See docs/quality.md.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from loopin import consolidation
from loopin.errors import NotFoundError, QuotaExceededError, ValidationError
from loopin.flows import check_input_uris, get_flow
from loopin.loops import parse_input
from loopin.models import FlowDefinition, GoldItem, GoldSettings, GoldTask, TaskUi
from loopin.validation import fits_db_int, refuse_lone_surrogates

MAX_ITEMS_PER_FLOW = 100_000
MAX_ANSWER_CHARS = 1_048_576
MAX_NOTE_CHARS = 256
DEFAULT_MIN_SCORED = 10
MAX_MIN_SCORED = 10_000
KEYPOINT_DISTANCE = 10.0  # pixels: a keypoint this close to the known one (same label) is right

# What each crowd element's answer looks like (its ``name`` is the answer's key).
BOX_ELEMENTS = frozenset({"crowd-bounding-box"})
LABEL_ELEMENTS = frozenset({"crowd-classifier", "crowd-image-classifier"})
LABELS_ELEMENTS = frozenset({"crowd-classifier-multi-select", "crowd-image-classifier-multi-select"})
KEYPOINT_ELEMENTS = frozenset({"crowd-keypoint"})
TEXT_ELEMENTS = frozenset({"crowd-input", "crowd-text-area"})
NUMBER_ELEMENTS = frozenset({"crowd-slider"})
BOOLEAN_ELEMENTS = frozenset({"crowd-checkbox", "crowd-toggle-button"})
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_TAG = re.compile(r"<\s*([A-Za-z][A-Za-z0-9-]*)([^>]*)>", re.S)
_NAME = re.compile(r"""\bname\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.I)


@dataclass(frozen=True)
class Settings:
    rate: float
    min_accuracy: float | None
    min_scored: int


# -- settings -------------------------------------------------------------------------


def get_settings(session: Session, flow: FlowDefinition) -> Settings:
    row = session.get(GoldSettings, flow.id)
    if row is None:
        return Settings(rate=0.0, min_accuracy=None, min_scored=DEFAULT_MIN_SCORED)
    return Settings(rate=row.rate, min_accuracy=row.min_accuracy, min_scored=row.min_scored)


def set_settings(
    session: Session, flow_name: str, *, rate: float, min_accuracy: float | None, min_scored: int
) -> Settings:
    """Set a flow's gold rate (0-1), its pause limit (0-1, or None: never pause) and the
    scored gold tasks a worker needs before the limit applies."""
    problems = {}
    if not _is_fraction(rate):
        problems["gold_rate"] = "must be a number from 0 to 1 (the share of tasks that are gold)"
    if min_accuracy is not None and not _is_fraction(min_accuracy):
        problems["gold_min_accuracy"] = "must be a number from 0 to 1, or null for no automatic pause"
    if isinstance(min_scored, bool) or not isinstance(min_scored, int) or not 1 <= min_scored <= MAX_MIN_SCORED:
        problems["gold_min_scored"] = f"must be a whole number from 1 to {MAX_MIN_SCORED:,}"
    if problems:
        text = "; ".join(f"{k} {v}" for k, v in problems.items())
        raise ValidationError(f"The gold settings are not valid: {text}.", details={"problems": problems})
    flow = get_flow(session, flow_name)
    row = session.get(GoldSettings, flow.id)
    if row is None:
        row = GoldSettings(flow_id=flow.id)
        session.add(row)
    row.rate = float(rate)
    row.min_accuracy = None if min_accuracy is None else float(min_accuracy)
    row.min_scored = min_scored
    session.flush()
    return get_settings(session, flow)


def _is_fraction(value: object) -> bool:
    return (
        isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and 0.0 <= value <= 1.0
    )


# -- items ----------------------------------------------------------------------------


def add_item(
    session: Session, flow_name: str, *, input_content: object, answer: object, note: str = "", now_ms: int
) -> GoldItem:
    """Add one gold item. ``input_content``: the InputContent a loop would get (a JSON
    object or its text); ``answer``: the known answer, as one worker's answerContent."""
    flow = get_flow(session, flow_name)
    item = _checked_item(session, flow, input_content=input_content, answer=answer, note=note, where="")
    count = session.scalar(select(func.count()).select_from(GoldItem).where(GoldItem.flow_id == flow.id)) or 0
    if count >= MAX_ITEMS_PER_FLOW:
        raise QuotaExceededError(f"Flow '{flow.name}' has {MAX_ITEMS_PER_FLOW:,} gold items, the most it may have.")
    item.created_at = now_ms
    session.add(item)
    session.flush()
    return item


def add_items(session: Session, flow_name: str, lines: Sequence[Mapping[str, Any]], *, now_ms: int) -> list[GoldItem]:
    """Add many items (the lines of a JSON Lines file: ``{"input": ..., "answer": ...,
    "note": ...}``), all or none: the first bad line is named and nothing is written."""
    flow = get_flow(session, flow_name)
    if not lines:
        raise ValidationError("The file holds no gold items (one JSON object per line).")
    count = session.scalar(select(func.count()).select_from(GoldItem).where(GoldItem.flow_id == flow.id)) or 0
    if count + len(lines) > MAX_ITEMS_PER_FLOW:
        raise QuotaExceededError(
            f"A flow may have {MAX_ITEMS_PER_FLOW:,} gold items; this would make {count + len(lines):,}."
        )
    items = []
    for number, line in enumerate(lines, start=1):
        where = f"Line {number}: "
        if not isinstance(line, Mapping):
            raise ValidationError(f"{where}each line must be a JSON object with 'input' and 'answer'.")
        unknown = set(line) - {"input", "answer", "note"}
        if unknown:
            raise ValidationError(f"{where}unknown key(s) {', '.join(sorted(unknown))}; use input, answer and note.")
        item = _checked_item(
            session,
            flow,
            input_content=line.get("input"),
            answer=line.get("answer"),
            note=line.get("note", ""),
            where=where,
        )
        item.created_at = now_ms
        items.append(item)
    session.add_all(items)
    session.flush()
    return items


def parse_lines(text: str) -> list[Any]:
    """The objects of a JSON Lines text (blank lines skipped); a ValidationError names the
    first line that is not JSON."""
    values = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            values.append(json.loads(line))
        except ValueError as exc:
            raise ValidationError(f"Line {number} is not JSON: {exc}") from exc
    return values


def list_items(session: Session, flow_name: str) -> list[GoldItem]:
    flow = get_flow(session, flow_name)
    return list(session.scalars(select(GoldItem).where(GoldItem.flow_id == flow.id).order_by(GoldItem.id)))


def get_item(session: Session, flow_name: str, item_id: int) -> GoldItem:
    flow = get_flow(session, flow_name)
    item = session.get(GoldItem, item_id) if fits_db_int(item_id) else None
    if item is None or item.flow_id != flow.id:
        raise NotFoundError(f"Flow '{flow_name}' has no gold item {item_id}.")
    return item


def delete_item(session: Session, flow_name: str, item_id: int) -> None:
    """Delete an item. A worker holding it loses the task (as when a loop is deleted); the
    scores of those who answered it stay."""
    item = get_item(session, flow_name, item_id)
    session.execute(delete(GoldTask).where(GoldTask.gold_item_id == item.id, GoldTask.status == "held"))
    session.execute(update(GoldTask).where(GoldTask.gold_item_id == item.id).values(gold_item_id=None))
    session.delete(item)


def served_counts(session: Session, flow: FlowDefinition) -> dict[int, tuple[int, float | None]]:
    """Per item: how many workers answered it and their mean score."""
    rows = session.execute(
        select(GoldTask.gold_item_id, func.count(), func.avg(GoldTask.score))
        .where(GoldTask.flow_id == flow.id, GoldTask.status == "submitted", GoldTask.gold_item_id.is_not(None))
        .group_by(GoldTask.gold_item_id)
    ).all()
    return {int(item_id): (int(n), None if mean is None else float(mean)) for item_id, n, mean in rows}


def _checked_item(
    session: Session, flow: FlowDefinition, *, input_content: object, answer: object, note: object, where: str
) -> GoldItem:
    try:
        if isinstance(input_content, dict):
            input_content = json.dumps(input_content, sort_keys=True, ensure_ascii=False)
        if not isinstance(input_content, str):
            raise ValidationError("'input' must be the InputContent: a JSON object (or its text).")
        task_input = parse_input(input_content)
        check_input_uris(session, flow, task_input)
        if not isinstance(answer, dict) or not answer:
            raise ValidationError(
                "'answer' must be a JSON object: one worker's answerContent, with at least one field."
            )
        refuse_lone_surrogates(answer, what="The answer")
        try:
            encoded = json.dumps(answer, sort_keys=True, ensure_ascii=False, allow_nan=False)
        except ValueError as exc:
            raise ValidationError("The answer holds a number that is not finite (NaN or Infinity).") from exc
        if len(encoded) > MAX_ANSWER_CHARS:
            raise ValidationError(f"The answer is larger than {MAX_ANSWER_CHARS:,} characters.")
        if not isinstance(note, str) or len(note) > MAX_NOTE_CHARS:
            raise ValidationError(f"'note' must be text of at most {MAX_NOTE_CHARS} characters.")
        template = session.get_one(TaskUi, flow.task_ui_id).content
        check_answer_fits(template, answer)
    except ValidationError as exc:
        raise ValidationError(where + exc.message, details=exc.details) from exc
    return GoldItem(flow_id=flow.id, input_content=input_content, answer=encoded, note=note)


# -- the template's answer shape ------------------------------------------------------


def template_fields(template: str) -> dict[str, str]:
    """The named inputs of a template: answer key -> element (``crowd-*`` or a plain tag)."""
    fields: dict[str, str] = {}
    for match in _TAG.finditer(_COMMENT.sub("", template)):
        tag, attributes = match.group(1).lower(), match.group(2)
        name = _NAME.search(attributes)
        if name is None or tag == "crowd-form" or tag in ("form", "iframe", "meta", "a", "map", "slot"):
            continue
        value = next(g for g in name.groups() if g is not None)
        if value and "{{" not in value and "{%" not in value:
            fields.setdefault(value, tag)
    return fields


def check_answer_fits(template: str, answer: Mapping[str, Any]) -> None:
    """Raise ValidationError unless every field of ``answer`` is a named element of the
    template and has the shape that element's answer has."""
    fields = template_fields(template)
    if not fields:
        return  # a template with no named element we can read (all Liquid): nothing to hold it to
    unknown = sorted(set(answer) - set(fields))
    if unknown:
        raise ValidationError(
            f"The answer's field(s) {', '.join(repr(k) for k in unknown)} are not in the flow's template; "
            f"its named elements are {', '.join(repr(k) for k in sorted(fields))}."
        )
    for key, value in answer.items():
        problem = _shape_problem(fields[key], value)
        if problem:
            raise ValidationError(f"The answer's field '{key}' ({fields[key]}) {problem}.")


def _shape_problem(element: str, value: Any) -> str | None:
    if element in BOX_ELEMENTS:
        boxes = value.get("boundingBoxes") if isinstance(value, dict) else None
        if not isinstance(boxes, list):
            return 'must be {"boundingBoxes": [{"label", "left", "top", "width", "height"}, ...]}'
        for i, box in enumerate(boxes):
            if not _is_box(box):
                return (
                    f"box {i + 1} must have a text 'label' and numbers 'left', 'top' (0 or more), "
                    "'width' and 'height' (more than 0)"
                )
        return None
    if element in LABEL_ELEMENTS:
        if not (isinstance(value, dict) and isinstance(value.get("label"), str) and value["label"]):
            return 'must be {"label": "<one of the categories>"}'
        return None
    if element in LABELS_ELEMENTS:
        labels = value.get("labels") if isinstance(value, dict) else None
        if not (isinstance(labels, list) and all(isinstance(x, str) for x in labels)):
            return 'must be {"labels": ["<category>", ...]}'
        return None
    if element in KEYPOINT_ELEMENTS:
        points = value.get("keypoints") if isinstance(value, dict) else None
        if not (isinstance(points, list) and all(_is_point(p) for p in points)):
            return 'must be {"keypoints": [{"label", "x", "y"}, ...]}'
        return None
    if element in TEXT_ELEMENTS:
        return None if isinstance(value, (str, int, float)) and not isinstance(value, bool) else "must be text"
    if element in NUMBER_ELEMENTS:
        return None if _is_number(value) else "must be a number"
    if element in BOOLEAN_ELEMENTS:
        return None if isinstance(value, bool) else "must be true or false"
    return None  # other elements (radio groups, plain inputs, ...): any JSON value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_box(box: Any) -> bool:
    return (
        isinstance(box, dict)
        and isinstance(box.get("label"), str)
        and all(_is_number(box.get(k)) for k in ("left", "top", "width", "height"))
        and box["width"] > 0
        and box["height"] > 0
        and box["left"] >= 0
        and box["top"] >= 0
    )


def _is_point(point: Any) -> bool:
    return (
        isinstance(point, dict)
        and isinstance(point.get("label"), str)
        and all(_is_number(point.get(k)) for k in ("x", "y"))
    )


# -- scoring --------------------------------------------------------------------------


def score(answer: Mapping[str, Any], truth: Mapping[str, Any]) -> float:
    """How right ``answer`` is against the known answer, 0..1: the mean over the known
    answer's fields of box F1 at IoU 0.5 (per label), class accuracy, label-set Jaccard,
    keypoint F1, or an exact (text: normalised) match. A missing field scores 0."""
    if not truth:
        return 1.0
    return sum(field_score(answer.get(key), value) for key, value in truth.items()) / len(truth)


def field_score(given: Any, truth: Any) -> float:
    if isinstance(truth, Mapping) and isinstance(truth.get("boundingBoxes"), list):
        found = given.get("boundingBoxes") if isinstance(given, Mapping) else None
        if not isinstance(found, list):
            return 0.0
        boxes = [b for b in found if _is_box(b)]
        return consolidation.box_f1(boxes, truth["boundingBoxes"], iou_threshold=consolidation.DEFAULT_IOU)
    if isinstance(truth, Mapping) and isinstance(truth.get("label"), str):
        return 1.0 if isinstance(given, Mapping) and given.get("label") == truth["label"] else 0.0
    if isinstance(truth, Mapping) and isinstance(truth.get("labels"), list):
        labels = given.get("labels") if isinstance(given, Mapping) else None
        if not isinstance(labels, list):
            return 0.0
        a, b = {str(x) for x in labels}, {str(x) for x in truth["labels"]}
        return 1.0 if not a and not b else len(a & b) / len(a | b)
    if isinstance(truth, Mapping) and isinstance(truth.get("keypoints"), list):
        points = given.get("keypoints") if isinstance(given, Mapping) else None
        if not isinstance(points, list):
            return 0.0
        return _keypoint_f1([p for p in points if _is_point(p)], truth["keypoints"])
    if isinstance(truth, str):
        same = isinstance(given, str) and consolidation.normalise_text(given) == consolidation.normalise_text(truth)
        return 1.0 if same else 0.0
    if _is_number(truth):
        same = _is_number(given) and math.isclose(float(given), float(truth), rel_tol=1e-9, abs_tol=1e-9)
        return 1.0 if same else 0.0
    return 1.0 if _canonical(given) == _canonical(truth) else 0.0


def _keypoint_f1(found: list[dict[str, Any]], truth: list[dict[str, Any]]) -> float:
    if not found and not truth:
        return 1.0
    left = list(found)
    hits = 0
    for point in truth:

        def distance(p: dict[str, Any], point: dict[str, Any] = point) -> float:
            return math.dist((p["x"], p["y"]), (point["x"], point["y"]))

        near = [p for p in left if p["label"] == point["label"] and distance(p) <= KEYPOINT_DISTANCE]
        if near:
            left.remove(min(near, key=distance))
            hits += 1
    return 2 * hits / (len(found) + len(truth))


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)
