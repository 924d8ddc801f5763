"""Detections and results, and the error for a model that fails."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loopin.errors import ModelError

if TYPE_CHECKING:  # ocr.py and moderation.py raise this module's ModelOutputError
    from loopin.inference.moderation import ModerationLabel
    from loopin.inference.ocr import Document


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
    class_names: tuple[str, ...] | None = None  # every class the model knows, when it has a list
    document: Document | None = None  # a text reader's lines and key-value pairs
    moderation: tuple[ModerationLabel, ...] | None = None  # a classifier's labels, highest first

    def moderation_labels(self) -> dict[str, Any] | None:
        """Rekognition's DetectModerationLabels answer for a classifier's result, else None."""
        if self.moderation is None:
            return None
        return {
            "ModerationLabels": [label.to_dict() for label in self.moderation],
            "ModerationModelVersion": f"{self.model_name}/{self.model_version}",
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "detections": [d.to_dict() for d in self.detections],
            "image_width": self.image_width,
            "image_height": self.image_height,
            "inference_ms": self.inference_ms,
            "model_name": self.model_name,
            "model_version": self.model_version,
        } | (
            ({"document": self.document.to_dict()} if self.document is not None else {})
            | ({"moderation": self.moderation_labels()} if self.moderation is not None else {})
        )
