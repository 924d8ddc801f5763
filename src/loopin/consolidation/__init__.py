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

Modules: ``answer`` (the entry point), ``fields`` (shared shapes, the kind of a field),
``votes``, ``boxes``, ``keypoints``, ``labels``, ``scalars`` (booleans, numbers, text) and
``reliability`` (the presence model: workers' reliability without ground truth).
"""

from loopin.consolidation.answer import Consolidation, consolidate, default_quorum, needs_history
from loopin.consolidation.boxes import (
    DEFAULT_IOU,
    MATCH_IOU,
    assignment,
    box_f1,
    cluster_boxes,
    iou,
    label_agreement,
    match_count,
)
from loopin.consolidation.fields import Answer, FieldResult
from loopin.consolidation.labels import MIN_EM_ITEMS, dawid_skene
from loopin.consolidation.reliability import (
    PresenceModel,
    estimate_reliability,
    presence_model,
    presence_votes,
    reliability_from_presence,
)
from loopin.consolidation.scalars import normalise_text
from loopin.consolidation.votes import vote_weight, weighted_vote

__all__ = [
    "DEFAULT_IOU",
    "MATCH_IOU",
    "MIN_EM_ITEMS",
    "Answer",
    "Consolidation",
    "FieldResult",
    "PresenceModel",
    "assignment",
    "box_f1",
    "cluster_boxes",
    "consolidate",
    "dawid_skene",
    "default_quorum",
    "estimate_reliability",
    "iou",
    "label_agreement",
    "match_count",
    "needs_history",
    "normalise_text",
    "presence_model",
    "presence_votes",
    "reliability_from_presence",
    "vote_weight",
    "weighted_vote",
]
