"""Image classifiers behind moderation endpoints: class probabilities become moderation
labels in the shape of Rekognition's DetectModerationLabels (Name, ParentName, Confidence).

A classifier's spec (head ``classifier``) says how to feed it (the detectors' pre-processing)
and which classes make each label (``moderation_labels``; by default each class is a label).
A label's confidence is the sum of its classes' probabilities, capped at 1. Every label is
returned, however low, highest first: the routing rule's lower bound plays the part of
Rekognition's ``MinConfidence``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort
from PIL import Image

from loopin.errors import ValidationError
from loopin.inference.heads import preprocess
from loopin.inference.results import Detection, ModelOutputError
from loopin.inference.spec import ModelSpec, ModerationLabelMap


@dataclass(frozen=True, slots=True)
class ModerationLabel:
    name: str
    parent_name: str  # "" for a top-level label
    confidence: float  # 0..1, rounded to 1e-6

    def to_dict(self) -> dict[str, Any]:
        """Rekognition's ModerationLabel: Confidence in percent."""
        return {"Name": self.name, "ParentName": self.parent_name, "Confidence": round(self.confidence * 100, 4)}


def label_maps(spec: ModelSpec) -> tuple[ModerationLabelMap, ...]:
    """The spec's moderation labels, or one top-level label per class."""
    if spec.moderation_labels is not None:
        return spec.moderation_labels
    return tuple(ModerationLabelMap(name=name, classes=(name,)) for name in spec.class_names)


class ModerationClassifier:
    """Runs an ONNX classifier; ``__call__`` is thread-safe (onnxruntime sessions are)."""

    def __init__(self, session: ort.InferenceSession, spec: ModelSpec) -> None:
        inputs = session.get_inputs()
        if len(inputs) != 1 or inputs[0].type != "tensor(float)":
            raise ValidationError("A classifier must have exactly one float32 input.")
        self.session = session
        self.spec = spec
        self.input_name = inputs[0].name
        self.labels = label_maps(spec)
        self.label_names = tuple(label.name for label in self.labels)
        index = {name: n for n, name in enumerate(spec.class_names)}
        # [labels, classes]: a label's probability is this row times the class probabilities.
        self._sums = np.zeros((len(self.labels), len(spec.class_names)), dtype=np.float64)
        for row, label in enumerate(self.labels):
            self._sums[row, [index[c] for c in label.classes]] = 1.0

    def probabilities(self, image: Image.Image) -> np.ndarray:
        tensor, _ = preprocess(image, self.spec)
        try:
            (output,) = self.session.run(None, {self.input_name: tensor})[:1]
        except Exception as exc:  # onnxruntime raises its own types for runtime failures
            raise ModelOutputError(f"The model failed to run: {exc}") from exc
        scores = np.asarray(output, dtype=np.float64).reshape(-1)
        if scores.shape[0] != len(self.spec.class_names):
            raise ModelOutputError(
                f"The classifier gave {scores.shape[0]} scores for {len(self.spec.class_names)} classes."
            )
        if self.spec.softmax:
            scores = np.exp(scores - scores.max())
            scores /= scores.sum()
        if not np.all(np.isfinite(scores)):
            raise ModelOutputError("The classifier gave scores that are not finite numbers.")
        return np.clip(scores, 0.0, 1.0)

    def __call__(self, image: Image.Image) -> tuple[list[Detection], tuple[ModerationLabel, ...]]:
        """The moderation labels, highest confidence first, and the same as detections over
        the whole image (so that routing treats them as any detections)."""
        confidences = np.minimum(self._sums @ self.probabilities(image), 1.0)
        order = sorted(range(len(self.labels)), key=lambda n: (-confidences[n], n))
        labels = tuple(
            ModerationLabel(self.labels[n].name, self.labels[n].parent_name, round(float(confidences[n]), 6))
            for n in order
        )
        width, height = image.size
        detections = [
            Detection(self.label_names.index(label.name), label.name, label.confidence, 0.0, 0.0, width, height)
            for label in labels
        ]
        return detections, labels
