"""``ModelSpec``: how a user's ONNX detector wants its input and what its output head is."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from loopin.errors import ValidationError

# --------------------------------------------------------------------------- model spec


class ModerationLabelMap(BaseModel):
    """A moderation label made of a classifier's classes: its confidence is the sum of
    their probabilities (capped at 1)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=256)
    parent_name: str = Field(default="", max_length=256, description="'' for a top-level label.")
    classes: tuple[str, ...] = Field(min_length=1, max_length=10_000)


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

    - ``classifier``: an image classifier (e.g. for moderation), one output ``[1, C]`` (or
      ``[C]``) of class probabilities (``softmax: true`` applies a softmax first, for logits).
      Its classes become moderation labels by ``moderation_labels`` (each a label name, a
      parent name and the classes whose probabilities it sums); None: each class is a
      top-level label of its own. Its detections are those labels over the whole image.

    Then (detectors) per-class NMS at ``iou_threshold``, drop scores below ``score_floor``,
    keep at most ``max_detections``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    head: Literal["nanodet", "yolov8", "classifier"]
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
    # classifier only
    softmax: bool = False
    moderation_labels: tuple[ModerationLabelMap, ...] | None = Field(default=None, min_length=1, max_length=10_000)

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
        if self.moderation_labels is not None:
            if self.head != "classifier":
                raise ValueError("moderation_labels belong to the classifier head")
            known = set(self.class_names)
            for label in self.moderation_labels:
                if unknown := [c for c in label.classes if c not in known]:
                    raise ValueError(f"moderation label {label.name!r} names unknown classes {unknown}")
            if len({label.name for label in self.moderation_labels}) != len(self.moderation_labels):
                raise ValueError("moderation label names must be unique")
        if self.head == "nanodet" and len(self.class_names) == 4 * (self.reg_max + 1):
            raise ValueError(
                "with the nanodet head the number of classes must differ from "
                "4 * (reg_max + 1): outputs are told apart by shape"
            )
        return self
