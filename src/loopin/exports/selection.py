"""Which loops an export takes and what each contributes: the settings (``ExportSpec``), the
loops in keyset pages (memory stays flat however many loops match), and for each loop the
final answer — the consolidated one when ``output.json`` carries ``consolidatedAnswer``, the
single answer when there is one, otherwise each worker's answer — as ``Item``s of boxes or
class labels, with the image's size and whether people changed what the model pre-filled.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

from PIL import Image
from sqlalchemy import BindParameter, and_, bindparam, func, literal, or_, select
from sqlalchemy.orm import Session

from loopin.errors import LoopinError, ValidationError
from loopin.flows import get_flow
from loopin.models import FlowDefinition, HumanLoop, Prediction, TaskSlot, Worker
from loopin.store import ObjectStore

log = logging.getLogger("loopin.exports")

FORMATS = ("coco", "yolo", "voc", "manifest", "csv")
TARGETS = ("zip", "folder", "s3")
ANSWER_MODES = ("consolidated", "per-worker")
IMAGE_MODES = ("reference", "copy")
EXPORT_STATUSES = ("Completed", "Stopped")
PAGE = 500  # loops per keyset page
MAX_LABELS = 1000


@dataclass(frozen=True)
class ExportSpec:
    """What to export and where. ``location``: a folder (``target='folder'``, relative to
    ``<data_dir>/exports`` or absolute inside the data directory) or an ``s3://`` prefix
    (``target='s3'``); none for a zip in the data directory."""

    flow: str
    format: str = "coco"
    statuses: tuple[str, ...] = ("Completed",)
    created_after_ms: int | None = None
    created_before_ms: int | None = None
    labels: tuple[str, ...] | None = None
    changed_only: bool = False
    answers: str = "consolidated"
    images: str = "reference"
    target: str = "zip"
    location: str | None = None
    label_attribute: str = "label"  # the manifest's label attribute name

    def __post_init__(self) -> None:
        _one_of(self.format, FORMATS, "format")
        _one_of(self.target, TARGETS, "target")
        _one_of(self.answers, ANSWER_MODES, "answers")
        _one_of(self.images, IMAGE_MODES, "images")
        if not self.statuses or any(s not in EXPORT_STATUSES for s in self.statuses):
            raise ValidationError(f"statuses must be some of {', '.join(EXPORT_STATUSES)}.")
        if self.labels is not None and not (1 <= len(self.labels) <= MAX_LABELS and all(self.labels)):
            raise ValidationError(f"labels must be 1 to {MAX_LABELS} non-empty names.")
        if (
            self.created_after_ms is not None
            and self.created_before_ms is not None
            and self.created_after_ms > self.created_before_ms
        ):
            raise ValidationError("created_after is later than created_before: no loop can match.")
        if self.target == "zip" and self.location:
            raise ValidationError("A zip export is written to the data directory: give no location.")
        if self.target in ("folder", "s3") and not self.location:
            raise ValidationError(f"A {self.target} export needs a location.")
        if not (1 <= len(self.label_attribute) <= 127) or self.label_attribute.endswith("-metadata"):
            raise ValidationError("label_attribute must be 1-127 characters and not end with '-metadata'.")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ExportSpec:
        raw = json.loads(text)
        raw["statuses"] = tuple(raw["statuses"])
        raw["labels"] = tuple(raw["labels"]) if raw.get("labels") is not None else None
        return cls(**raw)


def _one_of(value: str, allowed: Sequence[str], what: str) -> None:
    if value not in allowed:
        raise ValidationError(f"{what} must be one of {', '.join(allowed)}.")


class Box(NamedTuple):
    label: str
    left: float
    top: float
    width: float
    height: float
    score: float | None = None

    @property
    def right(self) -> float:
        return self.left + self.width

    @property
    def bottom(self) -> float:
        return self.top + self.height


class LoopRow(NamedTuple):
    """The columns of a loop an export reads."""

    id: int
    name: str
    created_at: int
    input_content: str
    output_uri: str | None


@dataclass(slots=True)
class Item:
    """One exported image (or, per worker, one image-answer)."""

    key: str  # a file stem: the loop's name, with the worker id when per worker
    loop_name: str
    workers: list[str]
    image_uri: str
    width: int | None
    height: int | None
    boxes: list[Box] | None  # detection answers
    classes: list[str] | None  # classification answers
    created_at: int
    answered_at: int
    changed: bool | None  # None: not looked at (only the 'changed only' filter needs it)
    consolidated: bool


def check_selection(session: Session, spec: ExportSpec) -> int:
    """The number of loops the filters select (``changed_only`` and ``labels`` are applied
    later, per loop); unknown flow: NotFound; none: a 400 with reason EmptySelection."""
    flow = get_flow(session, spec.flow)
    query = select(func.count()).select_from(HumanLoop).where(*_conditions(flow, spec))
    total = session.scalar(query) or 0
    if total == 0:
        raise ValidationError(
            f"No {'/'.join(spec.statuses)} loop of flow '{spec.flow}' with answers matches these filters.",
            details={"reason": "EmptySelection"},
        )
    return total


def _conditions(flow: FlowDefinition, spec: ExportSpec) -> list[Any]:
    conditions: list[Any] = [
        HumanLoop.flow_id == flow.id,
        HumanLoop.status.in_(spec.statuses),
        HumanLoop.output_state == "written",
    ]
    if spec.created_after_ms is not None:
        conditions.append(HumanLoop.created_at >= spec.created_after_ms)
    if spec.created_before_ms is not None:
        conditions.append(HumanLoop.created_at <= spec.created_before_ms)
    return conditions


def loop_pages(session: Session, spec: ExportSpec, *, page: int = PAGE) -> Iterator[list[LoopRow]]:
    """The selected loops, oldest first, ``page`` at a time by keyset over (created_at, id)."""
    flow = get_flow(session, spec.flow)
    columns = (HumanLoop.id, HumanLoop.name, HumanLoop.created_at, HumanLoop.input_content, HumanLoop.output_uri)
    base = select(*columns).where(*_conditions(flow, spec)).order_by(HumanLoop.created_at, HumanLoop.id)
    last: tuple[int, int] | None = None
    while True:
        query = base
        if last is not None:
            query = query.where(
                HumanLoop.created_at >= last[0],
                or_(HumanLoop.created_at > last[0], and_(HumanLoop.created_at == last[0], HumanLoop.id > last[1])),
            )
        rows = [LoopRow(*row) for row in session.execute(query.limit(page))]
        if not rows:
            return
        yield rows
        last = (rows[-1].created_at, rows[-1].id)
        if len(rows) < page:
            return


@dataclass(frozen=True)
class Answer:
    worker_id: str
    content: dict[str, Any]
    submitted_at: int


def page_answers(session: Session, loops: Sequence[LoopRow | HumanLoop]) -> dict[int, list[Answer]]:
    rows = session.execute(
        select(TaskSlot.loop_id, Worker.worker_id, TaskSlot.answer, TaskSlot.submitted_at)
        .join(Worker, Worker.id == TaskSlot.worker_id)
        .where(TaskSlot.loop_id.in_(_inline([loop.id for loop in loops])), TaskSlot.status == "submitted")
        .order_by(TaskSlot.loop_id, TaskSlot.submitted_at, TaskSlot.slot_index)
    ).all()
    found: dict[int, list[Answer]] = {}
    for loop_id, worker_id, answer, submitted_at in rows:
        content = _json_object(answer)
        found.setdefault(loop_id, []).append(Answer(worker_id, content, submitted_at or 0))
    return found


@dataclass(frozen=True)
class Logged:
    """What the prediction log knows of a routed loop."""

    endpoint: str
    model: str
    width: int
    height: int
    detections_json: str  # parsed only when needed
    threshold: float | None
    created_at: int

    @property
    def detections(self) -> list[dict[str, Any]]:
        return _json_list(self.detections_json)


def page_predictions(session: Session, names: Sequence[str], *, detections: bool = True) -> dict[str, Logged]:
    """What the log knows of these loops (``detections=False``: without the detections)."""
    rows = session.execute(
        select(
            Prediction.loop_name,
            Prediction.endpoint_name,
            Prediction.model_name,
            Prediction.image_width,
            Prediction.image_height,
            Prediction.detections if detections else literal("[]"),
            Prediction.threshold,
            Prediction.created_at,
        ).where(Prediction.loop_name.in_(_inline(list(names))))
    ).all()
    return {
        name: Logged(endpoint, model, w, h, detections, threshold, created)
        for name, endpoint, model, w, h, detections, threshold, created in rows
        if name is not None
    }


def _inline(values: list[Any]) -> BindParameter[Any]:
    """A page's ids or names written into the SQL: psycopg takes far longer to split a query
    with 500 placeholders than to send 500 literals (ints, and names of [A-Za-z0-9-])."""
    return bindparam("page", values, expanding=True, literal_execute=True)


def _json_object(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _json_list(text: str | None) -> list[dict[str, Any]]:
    try:
        value = json.loads(text or "[]")
    except ValueError:
        return []
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


# -- reading answers -----------------------------------------------------------------


def boxes_in(content: dict[str, Any]) -> tuple[list[Box] | None, dict[str, Any] | None]:
    """The boxes of a bounding-box answer (``{name: {boundingBoxes, inputImageProperties}}``)
    and its image properties; (None, None) when it holds no boxes."""
    for value in content.values():
        if isinstance(value, dict) and isinstance(value.get("boundingBoxes"), list):
            props = value.get("inputImageProperties")
            return [b for b in (_box(raw) for raw in value["boundingBoxes"]) if b is not None], (
                props if isinstance(props, dict) else None
            )
    return None, None


def _box(raw: Any) -> Box | None:
    try:
        label, left, top, width, height = raw["label"], raw["left"], raw["top"], raw["width"], raw["height"]
    except (KeyError, TypeError):
        return None
    if type(label) is not str or not (
        type(left) in _NUMBERS and type(top) in _NUMBERS and type(width) in _NUMBERS and type(height) in _NUMBERS
    ):
        return None
    if not (0 < width < _INF and 0 < height < _INF and -_INF < left < _INF and -_INF < top < _INF):
        return None  # also NaN, which fails every comparison
    return Box(label, left, top, width, height)


_NUMBERS = (int, float)
_INF = float("inf")


def classes_in(content: dict[str, Any]) -> list[str] | None:
    """The chosen categories of a classification answer (``{name: {label}}`` or
    ``{name: {labels: [...]}}``); None when it holds none."""
    for value in content.values():
        if isinstance(value, dict):
            if isinstance(value.get("label"), str) and "boundingBoxes" not in value:
                return [value["label"]]
            labels = value.get("labels")
            if isinstance(labels, list) and all(isinstance(v, str) for v in labels):
                return list(labels)
    return None


def initial_boxes(input_content: dict[str, Any]) -> list[Box] | None:
    initial = input_content.get("initialValue")
    if isinstance(initial, list):
        return [b for b in (_box(raw) for raw in initial) if b is not None]
    return None


def _same_boxes(a: Sequence[Box], b: Sequence[Box]) -> bool:
    def key(box: Box) -> tuple[str, int, int, int, int]:
        return (box.label, round(box.left), round(box.top), round(box.width), round(box.height))

    return sorted(map(key, a)) == sorted(map(key, b))


def model_boxes(logged: Logged | None, input_content: dict[str, Any]) -> list[Box] | None:
    """What the model pre-filled: the input's ``initialValue`` when it has one, else the
    prediction log's detections at or above the loop's threshold."""
    initial = initial_boxes(input_content)
    if initial is not None:
        return initial
    if logged is None:
        return None
    limit = logged.threshold if logged.threshold is not None else 0.0
    return [
        Box(d["label"], d["left"], d["top"], d["right"] - d["left"], d["bottom"] - d["top"], d.get("score"))
        for d in logged.detections
        if {"label", "left", "top", "right", "bottom"} <= d.keys() and float(d.get("score", 1.0)) >= limit
    ]


# -- from a loop to items ------------------------------------------------------------


@dataclass
class Reader:
    """Turns a page of loops into items. ``store`` reads an ``output.json`` only for a loop
    with several answers (its ``consolidatedAnswer``, when the consolidation wrote one)."""

    spec: ExportSpec
    store: ObjectStore
    skipped: int = 0

    def items(self, session: Session, loops: Sequence[LoopRow]) -> Iterator[Item]:
        answers = page_answers(session, loops)
        # The prediction log only for what the answers do not say: the image's size, or
        # (changed only, without an initialValue) the model's boxes.
        wanted = [
            loop.name
            for loop in loops
            if self.spec.changed_only or not all(_has_size(a.content) for a in answers.get(loop.id, []))
        ]
        logged = page_predictions(session, wanted, detections=self.spec.changed_only) if wanted else {}
        for loop in loops:
            found = answers.get(loop.id, [])
            if not found:
                self.skipped += 1
                continue
            yield from self._loop_items(loop, found, logged.get(loop.name))

    def _loop_items(self, loop: LoopRow, answers: list[Answer], logged: Logged | None) -> Iterator[Item]:
        input_content = _json_object(loop.input_content)
        image_uri = input_content.get("taskObject")
        if not isinstance(image_uri, str) or not image_uri:
            self.skipped += 1
            return
        chosen: list[tuple[str, list[str], dict[str, Any], int, bool]] = []  # key, workers, content, time, consolidated
        if self.spec.answers == "consolidated" and len(answers) > 1:
            consolidated = self._consolidated(loop)
            if consolidated is not None:
                workers = [w for w in consolidated.get("workers", []) if isinstance(w, str)] or [
                    a.worker_id for a in answers
                ]
                content = consolidated.get("answerContent")
                if isinstance(content, dict):
                    chosen.append((loop.name, workers, content, answers[-1].submitted_at, True))
        if not chosen:
            if len(answers) == 1:
                a = answers[0]
                chosen.append((loop.name, [a.worker_id], a.content, a.submitted_at, False))
            else:
                chosen.extend(
                    (f"{loop.name}-{a.worker_id}", [a.worker_id], a.content, a.submitted_at, False) for a in answers
                )
        prefilled = model_boxes(logged, input_content) if self.spec.changed_only else None
        for key, workers, content, answered_at, consolidated_flag in chosen:
            boxes, props = boxes_in(content)
            classes = classes_in(content) if boxes is None else None
            if boxes is None and classes is None:
                self.skipped += 1
                continue
            width, height = _size(props, logged)
            if self.spec.labels is not None:
                wanted = set(self.spec.labels)
                if boxes is not None:
                    if not any(b.label in wanted for b in boxes):
                        continue
                    boxes = [b for b in boxes if b.label in wanted]
                elif classes is not None:
                    if not any(c in wanted for c in classes):
                        continue
                    classes = [c for c in classes if c in wanted]
            changed = None
            if self.spec.changed_only:
                if boxes is not None:
                    changed = prefilled is None or not _same_boxes(boxes, prefilled)
                else:
                    initial = input_content.get("initialValue")
                    changed = not (isinstance(initial, str) and classes == [initial])
                if not changed:
                    continue
            yield Item(
                key=key,
                loop_name=loop.name,
                workers=workers,
                image_uri=image_uri,
                width=width,
                height=height,
                boxes=boxes,
                classes=classes,
                created_at=loop.created_at,
                answered_at=answered_at,
                changed=changed,
                consolidated=consolidated_flag,
            )

    def _consolidated(self, loop: LoopRow) -> dict[str, Any] | None:
        return consolidated_answer(self.store, loop.name, loop.output_uri)


def consolidated_answer(store: ObjectStore, loop_name: str, output_uri: str | None) -> dict[str, Any] | None:
    """The ``consolidatedAnswer`` of the loop's written ``output.json``, if it has one."""
    if not output_uri:
        return None
    try:
        document = _json_object(store.get(output_uri).decode())
    except (LoopinError, UnicodeDecodeError) as exc:
        log.warning("output.json of %s not read (%s); using the answers per worker", loop_name, exc)
        return None
    consolidated = document.get("consolidatedAnswer")
    return consolidated if isinstance(consolidated, dict) else None


def _has_size(content: dict[str, Any]) -> bool:
    for value in content.values():
        if isinstance(value, dict) and isinstance(value.get("inputImageProperties"), dict):
            return _size(value["inputImageProperties"], None) != (None, None)
    return False


def _size(props: dict[str, Any] | None, logged: Logged | None) -> tuple[int | None, int | None]:
    if props is not None:
        w, h = props.get("width"), props.get("height")
        if isinstance(w, int | float) and isinstance(h, int | float) and w > 0 and h > 0:
            return int(w), int(h)
    if logged is not None and logged.width > 0 and logged.height > 0:
        return logged.width, logged.height
    return None, None


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from an image's header (Pillow reads no more than it needs)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return int(image.width), int(image.height)
    except Exception:  # any undecodable image: no size
        return None
