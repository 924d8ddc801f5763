"""Python-callable "models" for tests/test_inference.py (``Detector.from_callable``).

Imported by name ("callable_model:red_boxes") after the test puts this folder on sys.path.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image


def red_boxes(image: Image.Image) -> list[dict[str, Any]]:
    """A real, if simple, detector: the bounding box of the pure-red pixels."""
    pixels = np.asarray(image)
    red = (pixels[..., 0] > 200) & (pixels[..., 1] < 50) & (pixels[..., 2] < 50)
    if not red.any():
        return []
    ys, xs = np.nonzero(red)
    return [
        {
            "label": "red",
            "score": 0.9,
            "left": int(xs.min()),
            "top": int(ys.min()),
            "right": int(xs.max()) + 1,
            "bottom": int(ys.max()) + 1,
        }
    ]


def fixed_boxes(image: Image.Image) -> list[dict[str, Any]]:
    """Unsorted, partly outside the image, one entirely outside, one below a floor."""
    return [
        {"label": "low", "score": 0.01, "left": 1, "top": 1, "right": 2, "bottom": 2},
        {"label": "b", "score": 0.5, "left": -10, "top": 5, "right": 20, "bottom": 10_000},
        {"label": "a", "score": 0.75, "left": 1.5, "top": 2, "right": 3, "bottom": 4},
        {"label": "gone", "score": 0.9, "left": 5000, "top": 0, "right": 6000, "bottom": 5},
    ]


def not_a_list(image: Image.Image) -> Any:
    return {"label": "x"}


def raises(image: Image.Image) -> Any:
    raise RuntimeError("model exploded")


NOT_CALLABLE = 42
