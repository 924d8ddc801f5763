"""Pre-processing, the output heads (NanoDet's GFL head, YOLOv8's) and post-processing (NMS)."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image

from loopin.inference.results import Detection, ModelOutputError
from loopin.inference.spec import ModelSpec

FloatArray = npt.NDArray[np.float32]
_BILINEAR = Image.Resampling.BILINEAR

# --------------------------------------------------------------------------- pre-processing


@dataclass(frozen=True, slots=True)
class _Placement:
    """Where the original image sits in the model input: input = original * scale + offset."""

    scale_x: float
    scale_y: float
    offset_x: float
    offset_y: float


def preprocess(image: Image.Image, spec: ModelSpec) -> tuple[FloatArray, _Placement]:
    width, height = image.size
    in_w, in_h = spec.input_size
    if spec.resize == "stretch":
        canvas = image if image.size == (in_w, in_h) else image.resize((in_w, in_h), _BILINEAR)
        placement = _Placement(in_w / width, in_h / height, 0.0, 0.0)
    else:
        ratio = min(in_w / width, in_h / height)
        new_w = min(in_w, max(1, round(width * ratio)))
        new_h = min(in_h, max(1, round(height * ratio)))
        left, top = (in_w - new_w) // 2, (in_h - new_h) // 2
        canvas = Image.new("RGB", (in_w, in_h), (spec.pad_value,) * 3)
        resized = image if image.size == (new_w, new_h) else image.resize((new_w, new_h), _BILINEAR)
        canvas.paste(resized, (left, top))
        placement = _Placement(new_w / width, new_h / height, float(left), float(top))

    rgb = np.asarray(canvas).transpose(2, 0, 1)  # uint8 planes R, G, B
    table = _normalisation_table(spec.scale, spec.mean, spec.std)
    planes = np.empty((3, in_h, in_w), dtype=np.float32)
    sources = (2, 1, 0) if spec.channel_order == "BGR" else (0, 1, 2)
    for channel, source in enumerate(sources):
        np.take(table[channel], rgb[source], out=planes[channel])
    if spec.layout == "NHWC":
        planes = np.ascontiguousarray(planes.transpose(1, 2, 0))
    return planes[np.newaxis], placement


@functools.lru_cache(maxsize=32)
def _normalisation_table(scale: float, mean: tuple[float, float, float], std: tuple[float, float, float]) -> FloatArray:
    """``(value * scale - mean) / std`` for every 8-bit value and channel: a [3, 256] lookup,
    several times faster than the arithmetic on a whole image."""
    values = np.arange(256, dtype=np.float32)[np.newaxis, :] * np.float32(scale)
    mean_col = np.asarray(mean, dtype=np.float32)[:, np.newaxis]
    std_col = np.asarray(std, dtype=np.float32)[:, np.newaxis]
    table: FloatArray = ((values - mean_col) / std_col).astype(np.float32)
    table.setflags(write=False)
    return table


# --------------------------------------------------------------------------- heads


def _as_rows(output: np.ndarray) -> np.ndarray | None:
    """``[1, n, d]`` or ``[n, d]`` -> ``[n, d]``; anything else -> None."""
    if output.ndim == 3 and output.shape[0] == 1:
        rows: np.ndarray = output[0]
        return rows
    if output.ndim == 2:
        return output
    return None


class NanoDetHead:
    """NanoDet GFL head: class probabilities and per-side distance distributions."""

    def __init__(self, spec: ModelSpec) -> None:
        in_w, in_h = spec.input_size
        self.num_classes = len(spec.class_names)
        self.bins = spec.reg_max + 1
        self.level_sizes: list[int] = []
        centres, strides = [], []
        for stride in spec.strides:
            grid_w, grid_h = math.ceil(in_w / stride), math.ceil(in_h / stride)
            ys, xs = np.divmod(np.arange(grid_w * grid_h), grid_w)  # row-major cells
            centres.append(np.stack([(xs + spec.grid_offset) * stride, (ys + spec.grid_offset) * stride], 1))
            strides.append(np.full(grid_w * grid_h, stride, dtype=np.float64))
            self.level_sizes.append(grid_w * grid_h)
        self.centres = np.concatenate(centres).astype(np.float64)  # [N, 2]
        self.strides = np.concatenate(strides)  # [N]
        self.project = np.arange(self.bins, dtype=np.float32)

    def _match(self, outputs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        c, r = self.num_classes, 4 * self.bins
        total = sum(self.level_sizes)
        rows = [_as_rows(o) for o in outputs]
        if any(x is None for x in rows):
            shapes = [list(o.shape) for o in outputs]
            raise ModelOutputError(f"nanodet head: unexpected output shapes {shapes}")
        arrays = [x for x in rows if x is not None]
        for arr in arrays:
            if arr.shape == (total, c + r):  # NanoDet's own export: one concatenated output
                return arr[:, :c], arr[:, c:]
        cls_by_n: dict[int, np.ndarray] = {}
        reg_by_n: dict[int, np.ndarray] = {}
        for arr in arrays:
            n, d = arr.shape
            target = cls_by_n if d == c else reg_by_n if d == r else None
            if target is not None:
                if n in target:
                    raise ModelOutputError(f"nanodet head: two outputs of shape [1, {n}, {d}]")
                target[n] = arr
        missing = [n for n in self.level_sizes if n not in cls_by_n or n not in reg_by_n]
        if missing:
            shapes = [list(o.shape) for o in outputs]
            raise ModelOutputError(
                f"nanodet head: expected outputs [1, n, {c}] and [1, n, {r}] for n in "
                f"{self.level_sizes} (or one [1, {total}, {c + r}]); the model gives {shapes}"
            )
        return (
            np.concatenate([cls_by_n[n] for n in self.level_sizes]),
            np.concatenate([reg_by_n[n] for n in self.level_sizes]),
        )

    def decode(self, outputs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """-> boxes [N, 4] (x1, y1, x2, y2 in input pixels), scores [N, C]."""
        scores, dist = self._match(outputs)
        logits = dist.astype(np.float32).reshape(-1, 4, self.bins)
        logits -= logits.max(axis=2, keepdims=True)
        prob = np.exp(logits)
        prob /= prob.sum(axis=2, keepdims=True)
        # Expected bin (0..reg_max) per side, in strides: left, top, right, bottom distances.
        dist_px = (prob @ self.project) * self.strides[:, np.newaxis]
        cx, cy = self.centres[:, 0], self.centres[:, 1]
        boxes = np.stack([cx - dist_px[:, 0], cy - dist_px[:, 1], cx + dist_px[:, 2], cy + dist_px[:, 3]], 1)
        return boxes, scores


class YoloV8Head:
    """Ultralytics YOLOv8 detect export: ``[1, 4 + C, N]`` with cx, cy, w, h + C scores."""

    def __init__(self, spec: ModelSpec) -> None:
        self.num_classes = len(spec.class_names)

    def decode(self, outputs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        width = 4 + self.num_classes
        for out in outputs:
            if out.ndim == 3 and out.shape[0] == 1:
                if out.shape[1] == width:
                    rows = out[0].T
                    break
                if out.shape[2] == width:
                    rows = out[0]
                    break
        else:
            shapes = [list(o.shape) for o in outputs]
            raise ModelOutputError(
                f"yolov8 head: expected an output [1, {width}, N] (4 box values + "
                f"{self.num_classes} classes); the model gives {shapes}"
            )
        xywh = rows[:, :4].astype(np.float64)
        half_w, half_h = xywh[:, 2] / 2, xywh[:, 3] / 2
        boxes = np.stack(
            [xywh[:, 0] - half_w, xywh[:, 1] - half_h, xywh[:, 0] + half_w, xywh[:, 1] + half_h],
            1,
        )
        return boxes, rows[:, 4:]


# --------------------------------------------------------------------------- post-processing


def _nms(boxes: np.ndarray, classes: np.ndarray, iou_threshold: float, limit: int) -> list[int]:
    """Greedy per-class NMS over boxes already sorted by score (highest first).

    Each class is shifted to its own region of the plane so that one pass handles all
    classes; the IoU of one kept box against all remaining ones is computed at once.
    """
    if len(boxes) == 0:
        return []
    span = float(boxes.max() - boxes.min()) + 1.0
    shifted = boxes + (classes.astype(np.float64) * span)[:, np.newaxis]
    x1, y1, x2, y2 = (np.ascontiguousarray(column) for column in shifted.T)
    areas = np.maximum(x2 - x1, 0.0) * np.maximum(y2 - y1, 0.0)
    order = np.arange(len(boxes))
    keep: list[int] = []
    while order.size and len(keep) < limit:
        i, rest = order[0], order[1:]
        keep.append(int(i))
        inter_w = np.maximum(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0.0)
        inter_h = np.maximum(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0.0)
        inter = inter_w * inter_h
        # Degenerate pairs (zero union) get IoU 0: they never suppress each other.
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-12)
        order = rest[iou <= iou_threshold]
    return keep


def postprocess(
    boxes: np.ndarray,
    scores: np.ndarray,
    spec: ModelSpec,
    placement: _Placement,
    image_size: tuple[int, int],
) -> list[Detection]:
    if boxes.shape[0] != scores.shape[0]:
        raise ModelOutputError(f"{len(boxes)} boxes but {len(scores)} score rows")
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size and not (np.nanmin(scores) >= -1e-6 and np.nanmax(scores) <= 1 + 1e-6):
        raise ModelOutputError("class scores must be probabilities in 0..1 (the graph must apply the sigmoid)")
    # Every (box, class) pair above the floor is a candidate, as in NanoDet's multiclass NMS:
    # a reviewer then sees "person 0.59" and "cat 0.40" for the same ambiguous object.
    box_idx, cls_idx = np.nonzero(scores >= spec.score_floor)
    cand_scores = scores[box_idx, cls_idx]
    finite = np.isfinite(boxes[box_idx]).all(axis=1)
    box_idx, cls_idx, cand_scores = box_idx[finite], cls_idx[finite], cand_scores[finite]
    # Highest first; ties broken by (box, class) order so results are deterministic.
    order = np.lexsort((cls_idx, box_idx, -cand_scores))[: spec.pre_nms_top_k]
    box_idx, cls_idx, cand_scores = box_idx[order], cls_idx[order], cand_scores[order]
    cand_boxes = boxes[box_idx].astype(np.float64)
    keep = _nms(cand_boxes, cls_idx, spec.iou_threshold, spec.max_detections)

    width, height = image_size
    scale = np.array([placement.scale_x, placement.scale_y] * 2)
    offset = np.array([placement.offset_x, placement.offset_y] * 2)
    original = (cand_boxes[keep] - offset) / scale
    original[:, 0::2] = np.clip(original[:, 0::2], 0, width)
    original[:, 1::2] = np.clip(original[:, 1::2], 0, height)
    detections = []
    for row, k in zip(original, keep, strict=True):
        if row[2] - row[0] <= 0 or row[3] - row[1] <= 0:
            continue  # entirely outside the image
        c = int(cls_idx[k])
        detections.append(detection(c, spec.class_names[c], float(cand_scores[k]), row))
    return detections


def detection(class_index: int, label: str, score: float, box: Sequence[float]) -> Detection:
    """Round to 1/100 pixel and 1e-6 score: plenty for review, stable in JSON."""
    left, top, right, bottom = (round(float(v), 2) for v in box)
    return Detection(class_index, label, round(score, 6), left, top, right, bottom)
