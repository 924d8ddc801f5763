"""The inference library: image decoding, the built-in NanoDet detector on real photographs,
the YOLOv8 and NanoDet decoders on tiny hand-built ONNX graphs, and Python-callable models.

The photographs in tests/data/ come from scikit-image (see tests/data/LICENSES.md).
"""

from __future__ import annotations

import io
import json
import struct
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image, ImageFile

from loopin.errors import NotFoundError, ValidationError
from loopin.inference import (
    BUILTIN_MODELS,
    Detection,
    DetectionResult,
    Detector,
    ModelOutputError,
    ModelSpec,
    decode_image,
)

DATA = Path(__file__).parent / "data"

# Hand-checked boxes (left, top, right, bottom) in original-image pixels. Each was found by
# viewing the photograph, zooming on each edge with a 10-pixel tick ruler drawn on a PIL
# copy, then drawing the box on the image to confirm it hugs the object.
# astronaut: hair top y=15; orange suit's left edge x=18, right edge x=362 (the helmet in
# front is not part of the person); the body runs off the bottom edge.
ASTRONAUT_PERSON = (18.0, 15.0, 362.0, 512.0)
# motorcycle_left: rear light x=91, front tyre x=684; mirror top y=77, tyre bottom y=450.
MOTORCYCLE = (91.0, 77.0, 684.0, 450.0)
# coffee: cup rim left x=174, right x=407, top y=18; handle bottom y=302 (saucer excluded).
COFFEE_CUP = (174.0, 18.0, 407.0, 302.0)


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    inter_w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def box(d: Detection) -> tuple[float, float, float, float]:
    return (d.left, d.top, d.right, d.bottom)


def best(result: DetectionResult, label: str) -> Detection:
    found = [d for d in result.detections if d.label == label]
    assert found, f"no {label} in {[(d.label, d.score) for d in result.detections[:10]]}"
    return found[0]


def photo(name: str) -> bytes:
    return (DATA / name).read_bytes()


def png_bytes(image: Image.Image, **params: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", **params)
    return out.getvalue()


@pytest.fixture(scope="module")
def nanodet() -> Detector:
    return Detector.builtin("nanodet-g-416-coco")


# --------------------------------------------------------------------------- built-in model


def test_builtin_catalogue_and_package_data() -> None:
    info = BUILTIN_MODELS["nanodet-g-416-coco"]
    assert info.input_size == (416, 416)
    assert len(info.classes) == 80
    assert info.classes[:4] == ("person", "bicycle", "car", "motorcycle")
    assert (info.classes[15], info.classes[41], info.classes[79]) == ("cat", "cup", "toothbrush")
    labels = json.loads((Path(__file__).parents[1] / "src/loopin/weights/coco_labels.json").read_text())
    assert tuple(labels) == info.classes
    assert info.spec.class_names == info.classes
    assert "Apache-2.0" in info.licence and "MIT" in info.licence


def test_unknown_builtin_is_not_found() -> None:
    with pytest.raises(NotFoundError):
        Detector.builtin("yolo-imaginary")


def test_astronaut_person(nanodet: Detector) -> None:
    result = nanodet.detect(photo("astronaut.jpg"))
    assert (result.image_width, result.image_height) == (512, 512)
    top = result.detections[0]
    assert top.label == "person" and top.class_index == 0
    assert top.score > 0.6
    assert iou(box(top), ASTRONAUT_PERSON) >= 0.7


def test_motorcycle(nanodet: Detector) -> None:
    result = nanodet.detect(photo("motorcycle_left.jpg"))
    assert (result.image_width, result.image_height) == (741, 500)
    top = result.detections[0]
    assert top.label == "motorcycle" and top.score > 0.6
    assert iou(box(top), MOTORCYCLE) >= 0.7


def test_coffee_cup(nanodet: Detector) -> None:
    result = nanodet.detect(photo("coffee.jpg"))
    cup = best(result, "cup")
    assert cup.score > 0.2
    assert iou(box(cup), COFFEE_CUP) >= 0.7


def test_chelsea_cat(nanodet: Detector) -> None:
    result = nanodet.detect(photo("chelsea.jpg"))
    assert best(result, "cat").score > 0.3


def test_result_shape(nanodet: Detector) -> None:
    result = nanodet.detect(photo("coffee.jpg"))
    assert result.model_name == "nanodet-g-416-coco" and result.model_version == "1"
    assert result.inference_ms > 0
    scores = [d.score for d in result.detections]
    assert scores == sorted(scores, reverse=True)
    assert 0 < len(result.detections) <= 100
    assert min(scores) >= 0.05  # the score floor
    for d in result.detections:
        assert 0 <= d.left < d.right <= 600 and 0 <= d.top < d.bottom <= 400
        assert d.label == BUILTIN_MODELS["nanodet-g-416-coco"].classes[d.class_index]
    as_dict = result.to_dict()
    assert json.loads(json.dumps(as_dict))["detections"][0] == result.detections[0].to_dict()


def test_deterministic(nanodet: Detector) -> None:
    first = nanodet.detect(photo("motorcycle_left.jpg"))
    second = nanodet.detect(photo("motorcycle_left.jpg"))
    assert first.detections == second.detections


def test_concurrent_calls_match_sequential(nanodet: Detector) -> None:
    names = ["astronaut.jpg", "coffee.jpg", "chelsea.jpg", "motorcycle_left.jpg"] * 2
    expected = [nanodet.detect(photo(n)).detections for n in names]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda n: nanodet.detect(photo(n)).detections, names))
    assert got == expected


@pytest.mark.parametrize(
    ("orientation", "stored_transpose", "fmt"),
    [
        (3, Image.Transpose.ROTATE_180, "PNG"),
        (6, Image.Transpose.ROTATE_90, "PNG"),  # camera turned: display rotates 90° clockwise
        (8, Image.Transpose.ROTATE_270, "WEBP"),
    ],
)
def test_exif_orientation(nanodet: Detector, orientation: int, stored_transpose: Image.Transpose, fmt: str) -> None:
    upright = decode_image(photo("motorcycle_left.jpg"))
    stored = upright.transpose(stored_transpose)
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation
    out = io.BytesIO()
    params: dict[str, Any] = {"lossless": True} if fmt == "WEBP" else {}
    stored.save(out, fmt, exif=exif, **params)

    decoded = decode_image(out.getvalue())
    assert decoded.size == upright.size
    assert np.array_equal(np.asarray(decoded), np.asarray(upright))
    rotated_result = nanodet.detect(out.getvalue())
    assert rotated_result.detections == nanodet.detect(png_bytes(upright)).detections
    assert (rotated_result.image_width, rotated_result.image_height) == (741, 500)


# --------------------------------------------------------------------------- bad input


def png_with_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares width x height, followed by a tiny IDAT: the header alone
    claims a huge image (no pixel data needs to exist for the size check to fire)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_loading_truncated_images_stays_off() -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"hello, this is not an image", "not a JPEG, PNG or WebP"),
        (b"<html><body>404</body></html>", "not a JPEG, PNG or WebP"),
        (b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "Unsupported image format GIF"),
        (b"BM" + b"\x00" * 60, "Unsupported image format BMP"),
        (b"\xff\xd8\xff\xe0garbage", "JPEG"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 30, "PNG"),
    ],
)
def test_bad_bytes(data: bytes, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        decode_image(data)
    assert message in caught.value.message


def test_truncated_jpeg(nanodet: Detector) -> None:
    data = photo("astronaut.jpg")
    with pytest.raises(ValidationError, match="truncated or corrupt"):
        decode_image(data[: len(data) // 2])
    with pytest.raises(ValidationError):
        nanodet.detect(data[: len(data) // 2])


def test_truncated_png() -> None:
    data = png_bytes(decode_image(photo("chelsea.jpg")))
    with pytest.raises(ValidationError, match="truncated or corrupt"):
        decode_image(data[: len(data) * 2 // 3])


@pytest.mark.parametrize(
    ("width", "height"),
    [
        (100_000, 100_000),  # above twice Pillow's own limit: Pillow raises its bomb error
        (10_000, 10_000),  # between Pillow's limit and twice it: Pillow only warns
        (8_000, 8_000),  # under Pillow's limit, over loopin's 40 M pixels
    ],
)
def test_decompression_bomb_header(width: int, height: int) -> None:
    data = png_with_header(width, height)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with pytest.raises(ValidationError, match="pixels"):
            decode_image(data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a deployment that turns warnings into errors
        with pytest.raises(ValidationError, match="pixels"):
            decode_image(data)


def test_decompression_bomb_real_image(nanodet: Detector) -> None:
    # A real 41-megapixel black PNG compresses to a few tens of kilobytes.
    data = png_bytes(Image.new("L", (6400, 6400)), optimize=True)
    assert len(data) < 200_000
    with pytest.raises(ValidationError, match="limit is 40000000 pixels"):
        nanodet.detect(data)
    with pytest.raises(ValidationError, match="limit is 1000 pixels"):
        decode_image(photo("chelsea.jpg"), max_pixels=1000)


def test_image_modes_become_rgb() -> None:
    rgba = Image.new("RGBA", (20, 10), (10, 20, 30, 128))
    grey = Image.new("L", (20, 10), 7)
    assert decode_image(png_bytes(rgba)).mode == "RGB"
    assert decode_image(png_bytes(grey)).getpixel((0, 0)) == (7, 7, 7)
    deep = Image.fromarray(np.full((10, 20), 257 * 200, dtype=np.uint16))  # 16-bit greyscale
    assert decode_image(png_bytes(deep)).getpixel((0, 0)) == (200, 200, 200)


# --------------------------------------------------------------------------- tiny ONNX models


def constant_model(outputs: dict[str, np.ndarray], input_shape: list[int]) -> bytes:
    """An ONNX graph whose outputs are constants plus 0 * mean(input): the input is used,
    so onnxruntime keeps and checks it, and the outputs are exactly the given arrays."""
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
    ]
    initializers = [numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero")]
    graph_outputs = []
    for name, value in outputs.items():
        initializers.append(numpy_helper.from_array(value.astype(np.float32), f"{name}_const"))
        nodes.append(helper.make_node("Add", [f"{name}_const", "nothing"], [name]))
        graph_outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, value.shape))
    graph = helper.make_graph(
        nodes,
        "constant",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, input_shape)],
        graph_outputs,
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


# YOLOv8 rows: cx, cy, w, h (input pixels), then scores for classes a, b, c.
YOLO_ROWS = np.array(
    [
        [32, 32, 32, 16, 0.9, 0.0, 0.0],  # kept
        [33, 32, 32, 16, 0.8, 0.0, 0.0],  # IoU 0.94 with row 0, same class: suppressed
        [32, 32, 32, 16, 0.0, 0.7, 0.0],  # same box, other class: kept (per-class NMS)
        [4, 24, 16, 16, 0.0, 0.0, 0.5],  # sticks out left of the image: clipped
        [60, 40, 8, 8, 0.04, 0.0, 0.0],  # below the 0.05 floor
        [56, 44, 8, 8, 0.0, 0.3, 0.2],  # two classes on one box: both kept
        [32, 8, 8, 8, 0.6, 0.0, 0.0],  # inside the letterbox padding only: dropped
        [10, 10, 4, 4, 0.0, 0.0, 0.0],  # nothing
    ],
    dtype=np.float32,
)


def yolo_spec(**changes: Any) -> ModelSpec:
    fields: dict[str, Any] = {
        "head": "yolov8",
        "class_names": ("a", "b", "c"),
        "input_size": (64, 64),
        "resize": "letterbox",
    }
    return ModelSpec(**(fields | changes))


def yolo_detector(rows: np.ndarray = YOLO_ROWS, transposed: bool = False, **spec: Any) -> Detector:
    output = rows[np.newaxis] if transposed else rows.T[np.newaxis]  # [1, N, 7] or [1, 7, N]
    model = constant_model({"output0": output}, [1, 3, 64, 64])
    return Detector.from_onnx(model, yolo_spec(**spec), name="tiny-yolo", version="3")


def summary(result: DetectionResult) -> list[tuple[str, float, tuple[float, ...]]]:
    return [(d.label, d.score, box(d)) for d in result.detections]


@pytest.mark.parametrize("transposed", [False, True])
def test_yolov8_letterbox_decode_nms_scale(transposed: bool) -> None:
    detector = yolo_detector(transposed=transposed)
    # 200x100 image -> scale 0.32 into 64x32, centred: 16 pixels of padding above and below.
    result = detector.detect(png_bytes(Image.new("RGB", (200, 100))))
    assert summary(result) == [
        ("a", 0.9, (50.0, 25.0, 150.0, 75.0)),  # input (16, 24, 48, 40)
        ("b", 0.7, (50.0, 25.0, 150.0, 75.0)),
        ("c", 0.5, (0.0, 0.0, 37.5, 50.0)),  # input (-4, 16, 12, 32), clipped at x = 0
        ("b", 0.3, (162.5, 75.0, 187.5, 100.0)),  # input (52, 40, 60, 48)
        ("c", 0.2, (162.5, 75.0, 187.5, 100.0)),
    ]
    assert [d.class_index for d in result.detections] == [0, 1, 2, 1, 2]
    assert (result.model_name, result.model_version) == ("tiny-yolo", "3")


def test_yolov8_stretch_cap_floor_and_iou() -> None:
    image = png_bytes(Image.new("RGB", (128, 32)))  # stretch: x * 2, y / 2
    capped = yolo_detector(resize="stretch", max_detections=2).detect(image)
    assert summary(capped) == [
        ("a", 0.9, (32.0, 12.0, 96.0, 20.0)),
        ("b", 0.7, (32.0, 12.0, 96.0, 20.0)),
    ]
    floor = yolo_detector(resize="stretch", score_floor=0.6).detect(image)
    assert [(d.label, d.score) for d in floor.detections] == [("a", 0.9), ("b", 0.7), ("a", 0.6)]
    loose = yolo_detector(resize="stretch", score_floor=0.6, iou_threshold=0.95).detect(image)
    assert [(d.label, d.score) for d in loose.detections] == [
        ("a", 0.9),
        ("a", 0.8),  # IoU 0.94 no longer suppresses
        ("b", 0.7),
        ("a", 0.6),
    ]


def test_missing_model_file() -> None:
    with pytest.raises(NotFoundError):
        Detector.from_onnx("/nonexistent/model.onnx", yolo_spec(), name="x")


def test_onnx_spec_mismatch_is_rejected_at_load() -> None:
    with pytest.raises(ValidationError, match="does not match its spec"):
        # 4 classes declared, the graph has 3
        Detector.from_onnx(
            constant_model({"o": YOLO_ROWS.T[np.newaxis]}, [1, 3, 64, 64]),
            yolo_spec().model_copy(update={"class_names": ("a", "b", "c", "d")}),
            name="x",
        )
    with pytest.raises(ValidationError, match="input has shape"):
        Detector.from_onnx(constant_model({"o": YOLO_ROWS.T[np.newaxis]}, [1, 3, 32, 32]), yolo_spec(), name="x")
    with pytest.raises(ValidationError, match="not a loadable ONNX model"):
        Detector.from_onnx(b"definitely not protobuf", yolo_spec(), name="x")


def test_model_spec_validation() -> None:
    spec = ModelSpec.from_dict({"head": "yolov8", "class_names": ["cat", "dog"], "input_size": [640, 640]})
    assert (spec.score_floor, spec.iou_threshold, spec.max_detections) == (0.05, 0.6, 100)
    assert (spec.layout, spec.channel_order, spec.resize) == ("NCHW", "RGB", "letterbox")
    bad: list[dict[str, Any]] = [
        {"head": "ssd", "class_names": ["a"], "input_size": [64, 64]},
        {"head": "yolov8", "class_names": [], "input_size": [64, 64]},
        {"head": "yolov8", "class_names": ["a", "a"], "input_size": [64, 64]},
        {"head": "yolov8", "class_names": ["a"], "input_size": [0, 64]},
        {"head": "yolov8", "class_names": ["a"], "input_size": [64, 64], "std": [1, 0, 1]},
        {"head": "yolov8", "class_names": ["a"], "input_size": [64, 64], "score_floor": 2},
        {"head": "yolov8", "class_names": ["a"], "input_size": [64, 64], "layout": "CHW"},
        {"head": "yolov8", "class_names": ["a"], "input_size": [64, 64], "surprise": 1},
        {"head": "nanodet", "class_names": ["a"], "input_size": [64, 64], "strides": [16, 8]},
    ]
    for data in bad:
        with pytest.raises(ValidationError, match="Invalid model spec"):
            ModelSpec.from_dict(data)


def nanodet_outputs() -> tuple[np.ndarray, np.ndarray]:
    """Class scores [21, 2] and box logits [21, 8] for a 32x32 input (grids 4x4, 2x2, 1x1),
    reg_max 1: two bins per side, expected distance = P(bin 1) * stride."""
    scores = np.zeros((21, 2), dtype=np.float32)
    logits = np.zeros((21, 4, 2), dtype=np.float32)
    # Stride 8, cell x=1, y=2 (row-major index 9), centre (12, 20): class 0.
    scores[9, 0] = 0.9
    logits[9] = [[-20, 20], [0, 0], [20, -20], [-20, 20]]  # left 8, top 4, right 0, bottom 8
    # Stride 32, the single cell (index 20), centre (16, 16): class 1, 16 on every side.
    scores[20, 1] = 0.6
    return scores, logits.reshape(21, 8)


def nanodet_spec(**changes: Any) -> ModelSpec:
    return ModelSpec(
        head="nanodet",
        class_names=("thing", "other"),
        input_size=(32, 32),
        resize="stretch",
        reg_max=1,
        **changes,
    )


@pytest.mark.parametrize("layout", ["concatenated", "per-stride"])
def test_nanodet_head_decoding(layout: str) -> None:
    scores, logits = nanodet_outputs()
    if layout == "concatenated":  # NanoDet's own export: one [1, N, C + 4 * (reg_max + 1)]
        outputs = {"out": np.concatenate([scores, logits], 1)[np.newaxis]}
    else:  # the built-in's layout, outputs deliberately out of order: matched by shape
        levels = [(0, 16), (16, 20), (20, 21)]
        outputs = {}
        for n, (a, b) in reversed(list(enumerate(levels))):
            outputs[f"reg{n}"] = logits[np.newaxis, a:b]
            outputs[f"cls{n}"] = scores[np.newaxis, a:b]
    model = constant_model(outputs, [1, 3, 32, 32])
    detector = Detector.from_onnx(model, nanodet_spec(), name="tiny-nanodet")
    result = detector.detect(png_bytes(Image.new("RGB", (64, 64))))  # stretch: x 2
    assert summary(result) == [
        ("thing", 0.9, (8.0, 32.0, 24.0, 56.0)),  # input (4, 16, 12, 28)
        ("other", 0.6, (0.0, 0.0, 64.0, 64.0)),  # input (0, 0, 32, 32)
    ]
    # NanoDet-Plus places grid points on cell corners: everything moves half a stride.
    corner = Detector.from_onnx(model, nanodet_spec(grid_offset=0.0), name="plus")
    assert summary(corner.detect(png_bytes(Image.new("RGB", (64, 64))))) == [
        ("thing", 0.9, (0.0, 24.0, 16.0, 48.0)),
        ("other", 0.6, (0.0, 0.0, 32.0, 32.0)),
    ]


def test_nanodet_head_rejects_wrong_shapes() -> None:
    scores, logits = nanodet_outputs()
    model = constant_model({"cls": scores[np.newaxis], "reg": logits[np.newaxis]}, [1, 3, 32, 32])
    with pytest.raises(ValidationError, match="nanodet head"):
        Detector.from_onnx(model, nanodet_spec(strides=(8, 16)), name="x")


def test_nanodet_head_rejects_logits_as_scores() -> None:
    scores, logits = nanodet_outputs()
    scores[3, 0] = 4.0  # a raw logit: the graph forgot the sigmoid
    model = constant_model({"out": np.concatenate([scores, logits], 1)[np.newaxis]}, [1, 3, 32, 32])
    with pytest.raises(ValidationError, match="probabilities"):
        Detector.from_onnx(model, nanodet_spec(), name="x")


# --------------------------------------------------------------------------- callables


@pytest.fixture
def callable_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(DATA))


def test_callable_model(callable_models: None) -> None:
    detector = Detector.from_callable("callable_model:red_boxes", name="reds", version="7")
    image = Image.new("RGB", (120, 80), (0, 90, 0))
    image.paste((255, 0, 0), (30, 20, 50, 60))
    result = detector.detect(png_bytes(image))
    assert summary(result) == [("red", 0.9, (30.0, 20.0, 50.0, 60.0))]
    assert result.detections[0].class_index == -1
    assert (result.model_name, result.model_version) == ("reds", "7")
    assert detector.detect(png_bytes(Image.new("RGB", (10, 10)))).detections == ()


def test_callable_sorts_clips_floors_and_caps(callable_models: None) -> None:
    detector = Detector.from_callable(
        "callable_model:fixed_boxes",
        name="fixed",
        class_names=["a", "b", "low", "gone"],
        score_floor=0.05,
    )
    result = detector.detect(png_bytes(Image.new("RGB", (100, 50))))
    assert summary(result) == [
        ("a", 0.75, (1.5, 2.0, 3.0, 4.0)),
        ("b", 0.5, (0.0, 5.0, 20.0, 50.0)),
    ]
    assert [d.class_index for d in result.detections] == [0, 1]
    capped = Detector.from_callable("callable_model:fixed_boxes", name="f", max_detections=1)
    assert [d.label for d in capped.detect(png_bytes(Image.new("RGB", (100, 50)))).detections] == ["a"]


@pytest.mark.parametrize(
    "target",
    [
        "callable_model:nope",
        "no_such_module_anywhere:f",
        "callable_model:NOT_CALLABLE",
        "not a target",
        "os.path",
    ],
)
def test_callable_bad_target(callable_models: None, target: str) -> None:
    with pytest.raises(ValidationError):
        Detector.from_callable(target, name="x")


GOOD = {"label": "a", "score": 0.5, "left": 0, "top": 0, "right": 5, "bottom": 5}


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        ({"label": "x"}, "must return a list"),
        ("a string", "must return a list"),
        ([["a", 0.5, 0, 0, 5, 5]], "not a dict"),
        ([{k: v for k, v in GOOD.items() if k != "score"}], "lacks score"),
        ([{**GOOD, "label": ""}], "label"),
        ([{**GOOD, "label": 3}], "label"),
        ([{**GOOD, "score": 1.5}], "outside 0..1"),
        ([{**GOOD, "score": "0.5"}], "not a number"),
        ([{**GOOD, "score": True}], "not a number"),
        ([{**GOOD, "left": float("nan")}], "not a finite number"),
        ([{**GOOD, "right": float("inf")}], "not a finite number"),
        ([{**GOOD, "left": 9}], "right < left"),
        ([{**GOOD, "label": "zebra"}], "not one of the model's classes"),
    ],
)
def test_callable_bad_output(returned: Any, message: str) -> None:
    detector = Detector.from_callable(lambda image: returned, name="bad", class_names=["a"])
    with pytest.raises(ModelOutputError, match=message):
        detector.detect(png_bytes(Image.new("RGB", (10, 10))))


def test_callable_exception_becomes_model_error(callable_models: None) -> None:
    detector = Detector.from_callable("callable_model:raises", name="boom")
    with pytest.raises(ModelOutputError, match="RuntimeError: model exploded"):
        detector.detect(png_bytes(Image.new("RGB", (10, 10))))
    # Bad images are still the caller's fault, before the model runs.
    with pytest.raises(ValidationError):
        detector.detect(b"")
