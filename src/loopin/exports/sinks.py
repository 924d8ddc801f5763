"""Where an export's files go while it runs: a zip file or a folder, both under a temporary
name that only the finished export renames into place, so a failed or abandoned export
leaves nothing half-written where anyone looks. One file is open at a time (a zip writes
members one after the other), and every file is hashed as it is written: the export's
content hash covers every file but the ``loopin-export.json`` that records it."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import IO

META_FILE = "loopin-export.json"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed, so the same export is the same zip


class HashingFile:
    """A write-only file that hashes and counts what passes through."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._raw.write(data)
        self.sha256.update(data)
        self.size += len(data)
        return len(data)


class Sink(ABC):
    def __init__(self) -> None:
        self._tree = hashlib.sha256()
        self.files: list[str] = []
        self.size = 0

    @abstractmethod
    def _open(self, path: str, *, compress: bool) -> contextlib.AbstractContextManager[IO[bytes]]: ...

    @contextlib.contextmanager
    def open(self, path: str, *, compress: bool = True) -> Iterator[HashingFile]:
        with self._open(path, compress=compress) as raw:
            out = HashingFile(raw)
            yield out
        self.size += out.size
        self.files.append(path)
        if path != META_FILE:
            self._tree.update(f"{path}\t{out.sha256.hexdigest()}\t{out.size}\n".encode())

    def write(self, path: str, data: bytes, *, compress: bool = True) -> None:
        with self.open(path, compress=compress) as fh:
            fh.write(data)

    def content_sha256(self) -> str:
        return self._tree.hexdigest()

    @abstractmethod
    def close(self) -> Path:
        """Finish writing; the temporary file or folder (not yet in place)."""

    @abstractmethod
    def discard(self) -> None: ...


class _AppendOnly:
    """A file zipfile cannot seek in: it then writes each member's sizes after its data (a
    data descriptor) instead of seeking back to its header, which would flush the write
    buffer three times per member (a YOLO export has one member per image)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._pos = 0

    def write(self, data: bytes) -> int:
        self._raw.write(data)
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos

    def seek(self, *_: object) -> int:
        raise OSError("append only")

    def flush(self) -> None:
        self._raw.flush()

    def close(self) -> None:
        self._raw.close()


class ZipSink(Sink):
    def __init__(self, tmp_path: Path) -> None:
        super().__init__()
        self.path = tmp_path
        tmp_path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(tmp_path, "wb", buffering=1 << 20)  # noqa: SIM115  (closed in close/discard)
        self._zip = zipfile.ZipFile(_AppendOnly(self._file), "w", allowZip64=True)

    def _open(self, path: str, *, compress: bool) -> contextlib.AbstractContextManager[IO[bytes]]:
        info = zipfile.ZipInfo(path, date_time=_ZIP_TIME)
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        if compress:  # level 1: fast; labels are small and images are compressed already
            # the attribute's name changed in Python 3.13
            setattr(info, "compress_level" if hasattr(info, "compress_level") else "_compresslevel", 1)
        info.external_attr = 0o644 << 16
        return self._zip.open(info, "w", force_zip64=True)

    def close(self) -> Path:
        self._zip.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        return self.path

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            self._zip.close()
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class FolderSink(Sink):
    def __init__(self, tmp_dir: Path) -> None:
        super().__init__()
        self.path = tmp_dir
        tmp_dir.mkdir(parents=True, exist_ok=False)

    def _open(self, path: str, *, compress: bool) -> contextlib.AbstractContextManager[IO[bytes]]:
        target = self.path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        return open(target, "wb")

    def close(self) -> Path:
        return self.path

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
