"""Workers' reliability without ground truth: each loop's boxes as present/absent
questions, and a Dawid-Skene presence model fitted on many loops."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from loopin.consolidation.boxes import MATCH_IOU, cluster_boxes
from loopin.consolidation.fields import Answer, is_box
from loopin.consolidation.labels import MIN_EM_ITEMS, dawid_skene


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
            and all(is_box(b) for b in content[name]["boundingBoxes"])
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
