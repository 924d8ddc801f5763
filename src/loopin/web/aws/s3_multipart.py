"""S3 multipart uploads on the local store (boto3's ``upload_fileobj`` uses them above
8 MiB). Parts wait in ``<store root>/.loopin-multipart/<upload id>/``, a folder no bucket
name can reach; completing an upload puts the whole object into the store and removes
the folder. Uploads that are never completed or aborted stay until they are aborted, as on
S3 without a lifecycle rule."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
from pathlib import Path

from loopin.store import LocalStore
from loopin.web.aws.errors import WireError

MULTIPART_DIR = ".loopin-multipart"
MIN_PART_BYTES = 5 * 1024 * 1024  # S3's minimum for every part but the last
MAX_PARTS = 10_000
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")


class MultipartUploads:
    def __init__(self, store: LocalStore, *, max_object_bytes: int) -> None:
        self.root = store.root / MULTIPART_DIR
        self.max_object_bytes = max_object_bytes

    def create(self, bucket: str, key: str, content_type: str) -> str:
        upload_id = secrets.token_hex(16)
        folder = self.root / upload_id
        folder.mkdir(mode=0o700, parents=True)
        fd = os.open(folder / "upload.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps({"bucket": bucket, "key": key, "content_type": content_type}))
        return upload_id

    def put_part(self, upload_id: str, bucket: str, key: str, number: int, data: bytes) -> str:
        folder = self._folder(upload_id, bucket, key)
        if not 1 <= number <= MAX_PARTS:
            raise WireError(400, "InvalidArgument", f"Part number must be an integer between 1 and {MAX_PARTS}.")
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".part-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, folder / f"{number:05d}")
        return hashlib.md5(data).hexdigest()

    def complete(self, upload_id: str, bucket: str, key: str, parts: list[tuple[int, str]]) -> tuple[bytes, str]:
        """The object's bytes and content type; the upload is gone afterwards."""
        folder = self._folder(upload_id, bucket, key)
        if not parts:
            raise WireError(400, "MalformedXML", "The upload names no parts.")
        if [n for n, _ in parts] != sorted({n for n, _ in parts}):
            raise WireError(400, "InvalidPartOrder", "The list of parts was not in ascending order.")
        chunks = []
        for index, (number, etag) in enumerate(parts):
            path = folder / f"{number:05d}"
            data = path.read_bytes() if path.is_file() else None
            if data is None or hashlib.md5(data).hexdigest() != etag.strip('"'):
                raise WireError(400, "InvalidPart", f"Part {number} was not uploaded, or its ETag does not match.")
            if index < len(parts) - 1 and len(data) < MIN_PART_BYTES:
                raise WireError(400, "EntityTooSmall", f"Part {number} is smaller than the 5 MiB minimum.")
            chunks.append(data)
        if sum(len(c) for c in chunks) > self.max_object_bytes:
            raise WireError(
                400, "EntityTooLarge", f"loopin's local store takes objects up to {self.max_object_bytes:,} bytes."
            )
        content_type = json.loads((folder / "upload.json").read_text())["content_type"]
        return b"".join(chunks), content_type

    def abort(self, upload_id: str, bucket: str, key: str) -> None:
        shutil.rmtree(self._folder(upload_id, bucket, key), ignore_errors=True)

    def _folder(self, upload_id: str, bucket: str, key: str) -> Path:
        folder = self.root / upload_id
        try:
            upload = json.loads((folder / "upload.json").read_text()) if _UPLOAD_ID.fullmatch(upload_id) else None
        except (OSError, ValueError):
            upload = None
        if upload is None or (upload["bucket"], upload["key"]) != (bucket, key):
            raise WireError(404, "NoSuchUpload", "The specified multipart upload does not exist.", UploadId=upload_id)
        return folder
