"""The training formats, written incrementally: each writer takes items one at a time and
keeps nothing per item in memory (what a format needs at its end — COCO's annotations
array, YOLO's image list — goes to a scratch file and is copied in at ``finish``).

- COCO detection JSON (``coco.json``): images, annotations (``bbox`` [x, y, w, h], ``area``,
  ``iscrowd``), categories; one JSON document, streamed by hand.
- YOLO: ``labels/<key>.txt`` (``class cx cy w h``, normalised), ``data.yaml`` with the class
  names, ``train.txt`` listing the images.
- Pascal VOC: ``Annotations/<key>.xml``.
- SageMaker Ground Truth augmented manifest (``output.manifest``, JSON Lines), as Ground Truth
  writes bounding-box and image-classification jobs.
- CSV (``labels.csv``): one row per class (classification) or per box.

Class ids follow the ``labels`` filter's order when given, else the order classes are first
met in (loops oldest first), so the same selection gives the same ids.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from abc import ABC, abstractmethod
from datetime import UTC, datetime
from pathlib import Path
from typing import IO
from xml.etree import ElementTree as ET

from loopin.clock import iso_ms
from loopin.exports.selection import ExportSpec, Item
from loopin.exports.sinks import Sink


class ClassMap:
    def __init__(self, fixed: tuple[str, ...] | None) -> None:
        self.names: list[str] = list(fixed or ())
        self._ids = {name: i for i, name in enumerate(self.names)}

    def id(self, name: str) -> int:
        """0-based id, assigned on first sight."""
        found = self._ids.get(name)
        if found is None:
            found = self._ids[name] = len(self.names)
            self.names.append(name)
        return found


class Writer(ABC):
    detection_only = True

    def __init__(self, sink: Sink, spec: ExportSpec, scratch: Path, *, created_ms: int) -> None:
        self.sink = sink
        self.spec = spec
        self.scratch = scratch
        self.classes = ClassMap(spec.labels)
        self.created_ms = created_ms
        self._scratch_files: list[IO[bytes]] = []

    def accepts(self, item: Item) -> bool:
        return item.boxes is not None or not self.detection_only

    @abstractmethod
    def add(self, item: Item, image_ref: str) -> int:
        """Write one item; returns how many annotations it had."""

    @abstractmethod
    def finish(self) -> None: ...

    def _scratch_file(self, name: str) -> IO[bytes]:
        fh = open(self.scratch / name, "w+b")  # noqa: SIM115  (closed by close)
        self._scratch_files.append(fh)
        return fh

    def close(self) -> None:
        """Close the scratch files (after ``finish``, or on failure)."""
        for fh in self._scratch_files:
            fh.close()

    def _copy_in(self, fh: IO[bytes], path: str, *, head: bytes = b"", tail: bytes = b"") -> None:
        fh.flush()
        fh.seek(0)
        with self.sink.open(path) as out:
            out.write(head)
            shutil.copyfileobj(fh, out)
            out.write(tail)
        fh.close()


def _num(value: float) -> float | int:
    if type(value) is int:
        return value
    return int(value) if float(value).is_integer() else round(value, 3)


class CocoWriter(Writer):
    def __init__(self, sink: Sink, spec: ExportSpec, scratch: Path, *, created_ms: int) -> None:
        super().__init__(sink, spec, scratch, created_ms=created_ms)
        self._images = self._scratch_file("images.json")
        self._annotations = self._scratch_file("annotations.json")
        self._image_id = 0
        self._annotation_id = 0

    def add(self, item: Item, image_ref: str) -> int:
        assert item.boxes is not None and item.width and item.height
        self._image_id += 1
        image = {
            "id": self._image_id,
            "file_name": image_ref,
            "width": item.width,
            "height": item.height,
            "loopin": {"loop": item.loop_name, "workers": item.workers, "consolidated": item.consolidated},
        }
        if image_ref != item.image_uri:
            image["source_uri"] = item.image_uri
        self._images.write((b"," if self._image_id > 1 else b"") + _dumps(image))
        parts = []
        for box in item.boxes:  # formatted by hand: json.dumps per annotation is the slow part
            self._annotation_id += 1
            parts.append(
                f'{{"id":{self._annotation_id},"image_id":{self._image_id},'
                f'"category_id":{self.classes.id(box.label) + 1},'
                f'"bbox":[{_num(box.left)},{_num(box.top)},{_num(box.width)},{_num(box.height)}],'
                f'"area":{_num(box.width * box.height)},"iscrowd":0}}'
            )
        if parts:
            lead = "," if self._annotation_id > len(parts) else ""
            self._annotations.write((lead + ",".join(parts)).encode())
        return len(item.boxes)

    def finish(self) -> None:
        info = {
            "description": f"loopin export of flow {self.spec.flow}",
            "date_created": iso_ms(self.created_ms),
            "version": "1.0",
        }
        categories = [{"id": i + 1, "name": name, "supercategory": ""} for i, name in enumerate(self.classes.names)]
        self._images.flush()
        self._images.seek(0)
        self._annotations.flush()
        self._annotations.seek(0)
        with self.sink.open("coco.json") as out:
            out.write(b'{"info":' + _dumps(info) + b',"licenses":[],"images":[')
            shutil.copyfileobj(self._images, out)
            out.write(b'],"annotations":[')
            shutil.copyfileobj(self._annotations, out)
            out.write(b'],"categories":' + _dumps(categories) + b"}")
        self._images.close()
        self._annotations.close()


class YoloWriter(Writer):
    def __init__(self, sink: Sink, spec: ExportSpec, scratch: Path, *, created_ms: int) -> None:
        super().__init__(sink, spec, scratch, created_ms=created_ms)
        self._list = self._scratch_file("train.txt")

    def add(self, item: Item, image_ref: str) -> int:
        assert item.boxes is not None and item.width and item.height
        w, h = item.width, item.height
        lines = []
        for box in item.boxes:
            cx, cy = (box.left + box.width / 2) / w, (box.top + box.height / 2) / h
            lines.append(f"{self.classes.id(box.label)} {cx:.6f} {cy:.6f} {box.width / w:.6f} {box.height / h:.6f}\n")
        # Stored, not deflated: a few dozen bytes gain nothing, and a zip member's deflate costs.
        self.sink.write(f"labels/{item.key}.txt", "".join(lines).encode(), compress=False)
        self._list.write(f"{image_ref}\n".encode())
        return len(item.boxes)

    def finish(self) -> None:
        self._copy_in(self._list, "train.txt")
        names = "".join(f"  {i}: {json.dumps(name)}\n" for i, name in enumerate(self.classes.names))
        train = "images" if self.spec.images == "copy" else "train.txt"
        data = f"# loopin export of flow {self.spec.flow}\npath: .\ntrain: {train}\nval: {train}\n"
        data += f"nc: {len(self.classes.names)}\nnames:\n{names}"
        self.sink.write("data.yaml", data.encode())


class VocWriter(Writer):
    def add(self, item: Item, image_ref: str) -> int:
        assert item.boxes is not None and item.width and item.height
        root = ET.Element("annotation")
        ET.SubElement(root, "folder").text = "images" if self.spec.images == "copy" else ""
        ET.SubElement(root, "filename").text = image_ref.rsplit("/", 1)[-1]
        ET.SubElement(root, "path").text = image_ref
        source = ET.SubElement(root, "source")
        ET.SubElement(source, "database").text = f"loopin/{self.spec.flow}/{item.loop_name}"
        size = ET.SubElement(root, "size")
        ET.SubElement(size, "width").text = str(item.width)
        ET.SubElement(size, "height").text = str(item.height)
        ET.SubElement(size, "depth").text = "3"
        ET.SubElement(root, "segmented").text = "0"
        for box in item.boxes:
            self.classes.id(box.label)
            obj = ET.SubElement(root, "object")
            ET.SubElement(obj, "name").text = box.label
            ET.SubElement(obj, "pose").text = "Unspecified"
            ET.SubElement(obj, "truncated").text = "0"
            ET.SubElement(obj, "difficult").text = "0"
            bndbox = ET.SubElement(obj, "bndbox")
            for tag, value in (("xmin", box.left), ("ymin", box.top), ("xmax", box.right), ("ymax", box.bottom)):
                ET.SubElement(bndbox, tag).text = str(_num(value))
        ET.indent(root)
        xml = ET.tostring(root, encoding="utf-8", xml_declaration=True)
        self.sink.write(f"Annotations/{item.key}.xml", xml, compress=False)
        return len(item.boxes)

    def finish(self) -> None:
        self.sink.write("labels.txt", "".join(f"{name}\n" for name in self.classes.names).encode())


class ManifestWriter(Writer):
    """Ground Truth's output manifest lines: detection as ``groundtruth/object-detection``,
    single-label classification as ``groundtruth/image-classification``, several labels as
    ``groundtruth/image-classification-multilabel``."""

    detection_only = False

    def __init__(self, sink: Sink, spec: ExportSpec, scratch: Path, *, created_ms: int) -> None:
        super().__init__(sink, spec, scratch, created_ms=created_ms)
        self._lines = self._scratch_file("output.manifest")

    def add(self, item: Item, image_ref: str) -> int:
        attr = self.spec.label_attribute
        created = datetime.fromtimestamp(item.answered_at / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
        metadata: dict[str, object] = {}
        line: dict[str, object] = {"source-ref": image_ref}
        if item.boxes is not None:
            ids = [self.classes.id(b.label) for b in item.boxes]
            line[attr] = {
                "image_size": [{"width": item.width, "height": item.height, "depth": 3}],
                "annotations": [
                    {
                        "class_id": cid,
                        "left": _num(b.left),
                        "top": _num(b.top),
                        "width": _num(b.width),
                        "height": _num(b.height),
                    }
                    for cid, b in zip(ids, item.boxes, strict=True)
                ],
            }
            metadata = {
                "objects": [{"confidence": 1.0} for _ in item.boxes],
                "class-map": {str(cid): self.classes.names[cid] for cid in sorted(set(ids))},
                "type": "groundtruth/object-detection",
            }
            count = len(item.boxes)
        else:
            assert item.classes is not None
            ids = [self.classes.id(c) for c in item.classes]
            if len(ids) == 1:
                line[attr] = ids[0]
                metadata = {
                    "confidence": 1.0,
                    "class-name": item.classes[0],
                    "type": "groundtruth/image-classification",
                }
            else:
                line[attr] = ids
                metadata = {
                    "class-map": {str(cid): self.classes.names[cid] for cid in ids},
                    "confidence-map": {str(cid): 1.0 for cid in ids},
                    "type": "groundtruth/image-classification-multilabel",
                }
            count = len(ids)
        metadata |= {
            "human-annotated": "yes",
            "creation-date": created,
            "job-name": f"labeling-job/{self.spec.flow}",
            "loopin-loop": item.loop_name,
        }
        line[f"{attr}-metadata"] = metadata
        self._lines.write(_dumps(line) + b"\n")
        return count

    def finish(self) -> None:
        self._copy_in(self._lines, "output.manifest")


class CsvWriter(Writer):
    detection_only = False
    COLUMNS = ("image", "loop", "workers", "label", "left", "top", "width", "height")

    def __init__(self, sink: Sink, spec: ExportSpec, scratch: Path, *, created_ms: int) -> None:
        super().__init__(sink, spec, scratch, created_ms=created_ms)
        self._rows = self._scratch_file("labels.csv")
        self._text = io.StringIO()
        self._csv = csv.writer(self._text, lineterminator="\n")
        self._row(self.COLUMNS)

    def _row(self, values: tuple[object, ...]) -> None:
        self._csv.writerow(values)
        self._rows.write(self._text.getvalue().encode())
        self._text.seek(0)
        self._text.truncate()

    def add(self, item: Item, image_ref: str) -> int:
        workers = " ".join(item.workers)
        if item.boxes is not None:
            for b in item.boxes:
                self.classes.id(b.label)
                self._row(
                    (
                        image_ref,
                        item.loop_name,
                        workers,
                        b.label,
                        _num(b.left),
                        _num(b.top),
                        _num(b.width),
                        _num(b.height),
                    )
                )
            return len(item.boxes)
        assert item.classes is not None
        for label in item.classes:
            self.classes.id(label)
            self._row((image_ref, item.loop_name, workers, label, "", "", "", ""))
        return len(item.classes)

    def finish(self) -> None:
        self._copy_in(self._rows, "labels.csv")


WRITERS: dict[str, type[Writer]] = {
    "coco": CocoWriter,
    "yolo": YoloWriter,
    "voc": VocWriter,
    "manifest": ManifestWriter,
    "csv": CsvWriter,
}


def _dumps(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
