"""The entry point: one loop's answers in, a ``Consolidation`` out (each field by the
method for its kind)."""

from __future__ import annotations

import functools
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loopin.consolidation.boxes import MATCH_IOU, boxes_field
from loopin.consolidation.fields import Answer, FieldResult, clamped_weight, field_kind, rounded
from loopin.consolidation.keypoints import keypoints_field
from loopin.consolidation.labels import label_field, labels_field
from loopin.consolidation.reliability import PresenceModel, presence_model, presence_votes
from loopin.consolidation.scalars import (
    boolean_field,
    choices_field,
    number_field,
    numeric_text_field,
    text_field,
)


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
            "agreement": rounded(self.agreement),
            "answerContent": self.answer_content,
            "method": {name: f.method for name, f in self.fields.items()},
            "notConsolidated": dict(self.not_consolidated),
            "perField": {
                name: {
                    "agreement": rounded(f.agreement),
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
            "agreement": rounded(self.agreement),
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
    label_reliability: Mapping[str, float] | None = None,
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

    ``label_reliability``: each worker's accuracy at labelling boxes (from gold items); when
    given, it weights the vote on a box's label instead of ``reliability``, which mixes
    drawing and labelling (a worker who draws well may still mix labels up).
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
    weights = {worker: clamped_weight(reliability, worker) for worker, _ in answers}
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
        kind, reason = field_kind([value for _, value in given])
        if kind is None:
            skipped[name] = reason
            continue
        past = [
            [(worker, content[name]) for worker, content in item if name in content and isinstance(content, Mapping)]
            for item in history
        ]
        method: Callable[..., FieldResult | str] = _METHODS[kind]
        if kind == "boxes":
            label_weights = None
            if label_reliability:
                label_weights = {worker: clamped_weight(label_reliability, worker) for worker, _ in answers}
            if automatic and presence is not None:
                method = functools.partial(boxes_field, presence=presence, label_weights=label_weights)
            elif learned:  # an explicit quorum counts workers, not learned weights
                method = functools.partial(
                    boxes_field, quorum_weights={w: 1.0 for w, _ in answers}, label_weights=label_weights
                )
            else:
                method = functools.partial(boxes_field, label_weights=label_weights)
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


_METHODS: dict[str, Callable[..., FieldResult | str]] = {
    "boxes": boxes_field,
    "keypoints": keypoints_field,
    "label": label_field,
    "labels": labels_field,
    "boolean": boolean_field,
    "choices": choices_field,
    "number": number_field,
    "numeric-text": numeric_text_field,
    "text": text_field,
}


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
