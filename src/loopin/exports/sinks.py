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
import struct
import zipfile
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

META_FILE = "loopin-export.json"


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
        self.size = 0

    @abstractmethod
    def _open(self, path: str, *, compress: bool) -> contextlib.AbstractContextManager[IO[bytes]]: ...

    @contextlib.contextmanager
    def open(self, path: str, *, compress: bool = True) -> Iterator[HashingFile]:
        with self._open(path, compress=compress) as raw:
            out = HashingFile(raw)
            yield out
        self.size += out.size
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


class ZipWriter:
    """A zip written front to back, for exports with one member per image: each member's
    central-directory record goes to a scratch file as soon as the member is written, so
    memory stays flat however many members there are (``zipfile`` keeps a ``ZipInfo`` per
    member until it closes, about half a kilobyte each). Members carry their sizes after
    their data (a data descriptor) and Zip64 fields, so any size fits; times are fixed, so
    the same export gives the same bytes."""

    def __init__(self, path: Path, directory: Path) -> None:
        self._out = open(path, "wb", buffering=1 << 20)  # noqa: SIM115  (closed by close)
        self._dir = open(directory, "w+b")  # noqa: SIM115  (closed by close)
        self._offset = 0
        self._count = 0

    def _write(self, data: bytes) -> None:
        self._out.write(data)
        self._offset += len(data)

    @contextlib.contextmanager
    def member(self, name: str, *, compress: bool) -> Iterator[_Member]:
        encoded = name.encode()
        method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        header_offset = self._offset
        zip64_extra = struct.pack("<HHQQ", 1, 16, 0, 0)
        self._write(
            struct.pack(
                "<IHHHHHIIIHH",
                0x04034B50,
                45,
                _FLAGS,
                method,
                _DOS_TIME,
                _DOS_DATE,
                0,
                0xFFFFFFFF,
                0xFFFFFFFF,
                len(encoded),
                len(zip64_extra),
            )
            + encoded
            + zip64_extra
        )
        member = _Member(self._write, compress)
        yield member
        member.finish()
        self._write(struct.pack("<IIQQ", 0x08074B50, member.crc, member.compressed, member.size))
        extra = struct.pack("<HHQQQ", 1, 24, member.size, member.compressed, header_offset)
        self._dir.write(
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                0x02014B50,
                45 | (3 << 8),  # made by: unix
                45,
                _FLAGS,
                method,
                _DOS_TIME,
                _DOS_DATE,
                member.crc,
                0xFFFFFFFF,
                0xFFFFFFFF,
                len(encoded),
                len(extra),
                0,
                0,
                0,
                0o100644 << 16,
                0xFFFFFFFF,
            )
            + encoded
            + extra
        )
        self._count += 1

    def close(self) -> None:
        directory_offset = self._offset
        self._dir.flush()
        self._dir.seek(0)
        shutil.copyfileobj(self._dir, _Counting(self._write))
        directory_size = self._offset - directory_offset
        end64 = self._offset
        self._write(
            struct.pack(
                "<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, self._count, self._count, directory_size, directory_offset
            )
        )
        self._write(struct.pack("<IIQI", 0x07064B50, 0, end64, 1))
        self._write(
            struct.pack(
                "<IHHHHIIH",
                0x06054B50,
                0,
                0,
                min(self._count, 0xFFFF),
                min(self._count, 0xFFFF),
                min(directory_size, 0xFFFFFFFF),
                min(directory_offset, 0xFFFFFFFF),
                0,
            )
        )
        self._out.flush()
        os.fsync(self._out.fileno())
        self.abandon()

    def abandon(self) -> None:
        self._out.close()
        self._dir.close()


_FLAGS = 0x08 | 0x800  # sizes after the data; UTF-8 names
_DOS_TIME, _DOS_DATE = 0, (0 << 9) | (1 << 5) | 1  # 1980-01-01 00:00


class _Counting:
    def __init__(self, write: Callable[[bytes], None]) -> None:
        self.write = write


class _Member:
    """One member's data: compressed (level 1: fast; labels are small) or stored, with its
    CRC-32 and sizes."""

    def __init__(self, write: Callable[[bytes], None], compress: bool) -> None:
        self._put = write
        self._deflate = zlib.compressobj(1, zlib.DEFLATED, -15) if compress else None
        self.crc = 0
        self.size = 0
        self.compressed = 0

    def write(self, data: bytes) -> int:
        self.crc = zlib.crc32(data, self.crc)
        self.size += len(data)
        out = self._deflate.compress(data) if self._deflate is not None else data
        if out:
            self._put(out)
            self.compressed += len(out)
        return len(data)

    def finish(self) -> None:
        if self._deflate is not None:
            tail = self._deflate.flush()
            self._put(tail)
            self.compressed += len(tail)


class ZipSink(Sink):
    def __init__(self, tmp_path: Path) -> None:
        super().__init__()
        self.path = tmp_path
        tmp_path.parent.mkdir(parents=True, exist_ok=True)
        self._directory = tmp_path.with_name(tmp_path.name + ".dir")
        self._zip = ZipWriter(tmp_path, self._directory)

    def _open(self, path: str, *, compress: bool) -> contextlib.AbstractContextManager[IO[bytes]]:
        return self._zip.member(path, compress=compress)  # type: ignore[return-value]

    def close(self) -> Path:
        self._zip.close()
        self._directory.unlink()
        return self.path

    def discard(self) -> None:
        self._zip.abandon()
        for path in (self.path, self._directory):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


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
