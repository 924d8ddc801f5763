"""Object storage for inputs, outputs and task assets, addressed by ``s3://bucket/key``.

Two stores share one interface (``ObjectStore``):

* ``LocalStore`` keeps ``s3://bucket/key`` at ``<root>/<bucket>/<key>``; buckets are
  folders, created on first write. Content type and ETag live in the file's extended
  attribute ``user.loopin.meta`` (JSON), written before the file's ``fsync`` and renamed
  with it: no second file to write and sync. Where the filesystem has no user extended
  attributes they live in a mirror tree ``<root>/.loopin-meta/<bucket>/<key>.loopin-meta``
  (JSON), which no bucket name can reach because bucket names start with a letter or
  digit; the suffix keeps a sidecar from carrying its object's name (``find -name
  output.json`` finds outputs only). Sidecars of earlier versions (``<root>/.loopin-meta/
  <bucket>/<key>``) are still read, and removed when the object is written again. Files
  dropped into a bucket folder by hand are served too, with a content type guessed from
  the name.
* ``S3Store`` talks to AWS S3 or an S3-compatible server through boto3.

Both stores apply the same key rules (``validate_key``), so a key that works locally
works on S3: no empty, ``.`` or ``..`` segments (also percent-encoded), no leading ``/``,
backslash or control character, nothing starting ``.loopin-tmp-`` (the local store's
temp files). Keys are raw (an ``s3://`` URI is not percent-decoded); the ``https://``
forms are URLs and are decoded once.

Output locations: ``file://`` is refused. A ``file://`` URI names a filesystem path,
and letting flows write anywhere on disk would defeat the store root; an alias
``file://<bucket>/<prefix>`` would read like a path yet mean a bucket. Local output
therefore uses ``s3://bucket/prefix`` URIs whose buckets are folders under the root.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import hashlib
import hmac
import json
import mimetypes
import os
import re
import stat
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote, unquote, urlsplit

import boto3
from boto3.exceptions import S3UploadFailedError
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from loopin.config import Settings, private_dir
from loopin.errors import (
    AccessDeniedError,
    ConflictError,
    LoopinError,
    NotFoundError,
    StoreUnavailableError,
    ValidationError,
)

DEFAULT_CONTENT_TYPE = "application/octet-stream"
MAX_KEY_BYTES = 1024
MAX_SIGNED_URL_TTL = 7 * 24 * 3600

_META_DIR = ".loopin-meta"
_META_SUFFIX = ".loopin-meta"  # on each sidecar's name, so it never has its object's name
_META_XATTR = "user.loopin.meta"
_TMP_PREFIX = ".loopin-tmp-"
_FOLDERS_KEPT = 10_000  # resolved folders a LocalStore keeps (see ``LocalStore._inside``)
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_AWS_HOST_RE = re.compile(r"(?:(?P<bucket>.+)\.)?s3(?:[.-][a-z0-9-]+)?\.amazonaws\.com")


@dataclass(frozen=True)
class ObjectInfo:
    uri: str
    size: int
    etag: str  # hex MD5 of the content for single-part objects, without quotes
    content_type: str | None  # None only in S3Store.list (S3 listings do not carry it)
    last_modified_ms: int


# --- URIs and keys -----------------------------------------------------------------


def validate_bucket(bucket: str) -> str:
    if not _BUCKET_RE.fullmatch(bucket) or ".." in bucket:
        raise ValidationError(
            f"invalid bucket name {bucket!r}: use 3-63 characters a-z, 0-9, '.', '-', "
            "starting and ending with a letter or digit"
        )
    return bucket


def _fully_unquote(text: str) -> str:
    for _ in range(5):
        decoded = unquote(text)
        if decoded == text:
            break
        text = decoded
    return text


def validate_key(key: str, *, what: str = "object key") -> str:
    """Reject keys that could name something outside their bucket folder."""
    if not key:
        raise ValidationError(f"{what} is empty")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise ValidationError(f"{what} is longer than {MAX_KEY_BYTES} bytes")
    if key.startswith("/"):
        raise ValidationError(f"{what} {key!r} is absolute (starts with '/')")
    if "\\" in key:
        raise ValidationError(f"{what} {key!r} contains a backslash")
    if _CONTROL_RE.search(key):
        raise ValidationError(f"{what} {key!r} contains a control character (such as NUL)")
    for segment in key.split("/"):
        if not segment:
            raise ValidationError(f"{what} {key!r} has an empty segment ('//' or a trailing '/')")
        # Decoded repeatedly so that no later decoding step can turn a segment into a path.
        decoded = _fully_unquote(segment)
        if decoded in (".", ".."):
            raise ValidationError(f"{what} {key!r} has a '.' or '..' segment")
        if any(c in decoded for c in "/\\\x00"):
            raise ValidationError(f"{what} {key!r} contains a percent-encoded separator")
        if segment.startswith(_TMP_PREFIX):
            raise ValidationError(f"{what} {key!r}: names starting {_TMP_PREFIX!r} are reserved")
    return key


def _split_uri(uri: str) -> tuple[str, str]:
    """``(bucket, raw key or prefix)`` of an s3:// or AWS https:// URI, not yet validated."""
    if uri.startswith("s3://"):
        bucket, _, key = uri[len("s3://") :].partition("/")
        return bucket, key
    parts = urlsplit(uri)
    if parts.scheme == "file":
        raise ValidationError(
            f"{uri!r}: file:// locations are not supported; local storage uses "
            "s3://<bucket>/<prefix> URIs whose buckets are folders under the store root"
        )
    match = _AWS_HOST_RE.fullmatch(parts.hostname or "")
    if parts.scheme not in ("http", "https") or match is None:
        raise ValidationError(f"{uri!r} is not an S3 location (s3://bucket/key or https://s3.amazonaws.com/bucket/key)")
    if parts.query or parts.fragment:
        raise ValidationError(f"{uri!r}: S3 locations take no query or fragment")
    path = parts.path[1:]
    if match.group("bucket"):
        return match.group("bucket"), unquote(path)
    bucket, _, key = path.partition("/")
    return bucket, unquote(key)


def parse_object_uri(uri: str) -> tuple[str, str]:
    """``(bucket, key)`` of ``s3://bucket/key`` or ``http(s)://s3.amazonaws.com/bucket/key``."""
    bucket, key = _split_uri(uri)
    return validate_bucket(bucket), validate_key(key)


def _parse_prefix_uri(uri: str) -> tuple[str, str]:
    """``(bucket, prefix)``; the prefix may be empty or end with '/'."""
    bucket, prefix = _split_uri(uri)
    validate_bucket(bucket)
    if prefix:
        validate_key(prefix[:-1] if prefix.endswith("/") else prefix, what="prefix")
    return bucket, prefix


def normalize_output_location(uri: str) -> str:
    """Canonical ``s3://bucket[/prefix]`` (no trailing slash) of an output location."""
    bucket, prefix = _parse_prefix_uri(uri)
    prefix = prefix.removesuffix("/")
    return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"


def join_uri(base_uri: str, *parts: str) -> str:
    """``join_uri("s3://b/out/", "flow", "2026/01/01/00/00/00", "loop", "output.json")``."""
    base = normalize_output_location(base_uri)
    tail = "/".join(part.strip("/") for part in parts)
    uri = f"{base}/{tail}" if tail else base
    parse_object_uri(uri)
    return uri


# --- the interface -------------------------------------------------------------------


class ObjectStore(ABC):
    @abstractmethod
    def put(self, uri: str, data: bytes, *, content_type: str = DEFAULT_CONTENT_TYPE) -> None: ...

    @abstractmethod
    def get(self, uri: str) -> bytes: ...

    @abstractmethod
    def put_file(self, uri: str, path: Path, *, content_type: str = DEFAULT_CONTENT_TYPE) -> None:
        """Store a local file's content, read in pieces (large exports never sit in memory)."""

    @abstractmethod
    def head(self, uri: str) -> ObjectInfo: ...

    @abstractmethod
    def list(self, prefix_uri: str) -> builtins.list[ObjectInfo]:
        """Every object whose URI starts with ``prefix_uri``, sorted by key."""

    @abstractmethod
    def delete(self, uri: str) -> None:
        """Remove the object; a missing object is not an error."""

    @abstractmethod
    def signed_url(self, uri: str, *, ttl_seconds: int, now_ms: int) -> str:
        """A URL that reads exactly this object until ``ttl_seconds`` after ``now_ms``."""


def _check_ttl(ttl_seconds: int) -> None:
    if not 1 <= ttl_seconds <= MAX_SIGNED_URL_TTL:
        raise ValidationError(f"ttl_seconds must be between 1 and {MAX_SIGNED_URL_TTL}")


# --- local folder --------------------------------------------------------------------


class LocalStore(ObjectStore):
    def __init__(self, root: Path, *, public_url: str, secret_key: str) -> None:
        if not secret_key:
            raise ValueError("LocalStore needs a secret_key (see Settings.ensure_secret_key)")
        private_dir(root)  # objects are task inputs and answers: the owner's only (files are 0600)
        self.root = root.resolve()
        self.public_url = public_url.rstrip("/")
        self._url_key = hmac.new(secret_key.encode(), b"loopin-store-url", "sha256").digest()
        self._folders: dict[Path, Path] = {}  # a folder's path -> the same with symlinks followed

    # paths

    def _inside(self, path: Path, what: str) -> Path:
        """``path`` with its symlinks followed; refused when that leads outside the root.
        Keys have no '.' or '..' segments (``validate_key``), so only symlinks can. A
        folder's resolution is kept (``realpath`` costs a system call per level, and a put
        checks three paths): a symlink put in place of a folder the store already used
        would need write access to the store root, which is the server's own. The last
        level is checked on every call."""
        resolved = _followed(self._folder(path.parent) / path.name)
        if not resolved.is_relative_to(self.root):
            raise ValidationError(f"{what} resolves outside the store root")
        return resolved

    def _folder(self, folder: Path) -> Path:
        """``folder`` resolved, from the levels kept: each level not seen before costs one
        ``lstat`` (an output's folder is new for every loop; ``resolve`` would follow
        every level from the filesystem's root again)."""
        new = []
        known = self._folders.get(folder)
        while known is None and folder != self.root and folder.parent != folder:
            new.append(folder)
            folder = folder.parent
            known = self._folders.get(folder)
        if known is None:
            known = self.root if folder == self.root else folder.resolve()
        if len(self._folders) + len(new) > _FOLDERS_KEPT:
            self._folders.clear()
        for level in reversed(new):
            known = self._folders[level] = _followed(known / level.name)
        return known

    def _data_path(self, bucket: str, key: str) -> Path:
        return self._inside(self.root / bucket / key, f"s3://{bucket}/{key}")

    def _meta_path(self, bucket: str, key: str) -> Path:
        return self._inside(self.root / _META_DIR / bucket / (key + _META_SUFFIX), f"s3://{bucket}/{key}")

    def _legacy_meta_path(self, bucket: str, key: str) -> Path:
        """Where versions before the suffix kept the sidecar (same name as the object)."""
        return self._inside(self.root / _META_DIR / bucket / key, f"s3://{bucket}/{key}")

    # reading

    def _read_meta(self, meta_path: Path, st: os.stat_result) -> dict[str, Any] | None:
        try:
            meta: dict[str, Any] = json.loads(meta_path.read_bytes())
        except (OSError, ValueError):
            return None
        # Metadata is trusted only for the exact file it was written for (a crash between
        # the two writes, or a file replaced by hand, leaves it stale).
        if (meta.get("ino"), meta.get("mtime_ns"), meta.get("size")) != (
            st.st_ino,
            st.st_mtime_ns,
            st.st_size,
        ):
            return None
        return meta

    def _info(self, bucket: str, key: str, fh: BinaryIO | None = None) -> ObjectInfo:
        path = self._data_path(bucket, key)
        uri = f"s3://{bucket}/{key}"
        try:
            st = os.fstat(fh.fileno()) if fh is not None else path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise NotFoundError(f"{uri} does not exist") from None
        if not path.is_file():
            raise NotFoundError(f"{uri} does not exist")
        meta = _read_tag(fh.fileno() if fh is not None else path, st)
        if meta is None:
            meta = self._read_meta(self._meta_path(bucket, key), st)
        if meta is None:
            meta = self._read_meta(self._legacy_meta_path(bucket, key), st)
        if meta is not None:
            etag, content_type = meta["etag"], meta["content_type"]
        else:
            etag = _md5_file(fh) if fh is not None else _md5_path(path)
            content_type = mimetypes.guess_type(key)[0] or DEFAULT_CONTENT_TYPE
        return ObjectInfo(uri, st.st_size, etag, content_type, st.st_mtime_ns // 1_000_000)

    def open_read(self, uri: str) -> tuple[BinaryIO, ObjectInfo]:
        """An open file and its info; the caller closes the file."""
        bucket, key = parse_object_uri(uri)
        try:
            fh = open(self._data_path(bucket, key), "rb")  # noqa: SIM115
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise NotFoundError(f"{uri} does not exist") from None
        try:
            return fh, self._info(bucket, key, fh)
        except BaseException:
            fh.close()
            raise

    def get(self, uri: str) -> bytes:
        fh, _ = self.open_read(uri)
        with fh:
            return fh.read()

    def head(self, uri: str) -> ObjectInfo:
        return self._info(*parse_object_uri(uri))

    def list(self, prefix_uri: str) -> builtins.list[ObjectInfo]:
        bucket, prefix = _parse_prefix_uri(prefix_uri)
        start = self.root / bucket / prefix.rpartition("/")[0]
        self._inside(start, prefix_uri)
        found = []
        for dirpath, _dirs, files in os.walk(start):
            for name in files:
                key = Path(dirpath, name).relative_to(self.root / bucket).as_posix()
                if name.startswith(_TMP_PREFIX) or not key.startswith(prefix):
                    continue
                with contextlib.suppress(NotFoundError, ValidationError):
                    found.append(self._info(bucket, key))
        return sorted(found, key=lambda info: info.uri)

    # writing

    def put(self, uri: str, data: bytes, *, content_type: str = DEFAULT_CONTENT_TYPE) -> None:
        bucket, key = parse_object_uri(uri)
        path = self._data_path(bucket, key)
        try:
            etag = hashlib.md5(data).hexdigest()
            st, tagged = _atomic_write(path, data, tag=(content_type, etag))
            if tagged:
                self._drop_sidecars(bucket, key)
            else:
                self._write_sidecar(bucket, key, st, content_type, etag)
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            raise ConflictError(
                f"{uri} conflicts with an existing object: the local store cannot hold both 'a' and 'a/b'"
            ) from None
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                raise ValidationError(f"{uri}: a name in the key is too long") from None
            raise StoreUnavailableError(f"cannot write {uri}: {exc.strerror}") from exc

    def put_file(self, uri: str, path: Path, *, content_type: str = DEFAULT_CONTENT_TYPE) -> None:
        bucket, key = parse_object_uri(uri)
        target = self._data_path(bucket, key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=_TMP_PREFIX)
            digest = hashlib.md5()
            try:
                with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
                    for chunk in iter(lambda: src.read(1 << 20), b""):
                        out.write(chunk)
                        digest.update(chunk)
                    out.flush()
                    tagged = _tag(out.fileno(), content_type, digest.hexdigest())
                    os.fsync(out.fileno())
                    st = os.fstat(out.fileno())
                os.replace(tmp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            if tagged:
                self._drop_sidecars(bucket, key)
            else:
                self._write_sidecar(bucket, key, st, content_type, digest.hexdigest())
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            raise ConflictError(
                f"{uri} conflicts with an existing object: the local store cannot hold both 'a' and 'a/b'"
            ) from None
        except OSError as exc:
            raise StoreUnavailableError(f"cannot write {uri}: {exc.strerror}") from exc

    def _write_sidecar(self, bucket: str, key: str, st: os.stat_result, content_type: str, etag: str) -> None:
        meta = {
            "content_type": content_type,
            "etag": etag,
            "size": st.st_size,
            "ino": st.st_ino,
            "mtime_ns": st.st_mtime_ns,
        }
        try:
            _atomic_write(self._meta_path(bucket, key), json.dumps(meta).encode())
        except OSError as exc:
            # A name that fits the filesystem only without the suffix: no sidecar, the
            # content type is then guessed from the name and the ETag computed on read.
            if exc.errno != errno.ENAMETOOLONG:
                raise

    def _drop_sidecars(self, bucket: str, key: str) -> None:
        """Remove the sidecars an earlier write of this object may have left (a store
        that never wrote one has no metadata tree: one ``stat``)."""
        if not (self.root / _META_DIR).is_dir():
            return
        for meta_path in (self._meta_path(bucket, key), self._legacy_meta_path(bucket, key)):
            with contextlib.suppress(FileNotFoundError, NotADirectoryError, IsADirectoryError):
                meta_path.unlink()

    def delete(self, uri: str) -> None:
        bucket, key = parse_object_uri(uri)
        for path, top in (
            (self._data_path(bucket, key), self.root / bucket),
            (self._meta_path(bucket, key), self.root / _META_DIR / bucket),
            (self._legacy_meta_path(bucket, key), self.root / _META_DIR / bucket),
        ):
            with contextlib.suppress(FileNotFoundError, NotADirectoryError, IsADirectoryError):
                path.unlink()
            # Empty folders would keep a later put of "a" from succeeding after "a/b" is gone.
            for parent in path.parents:
                if parent == top or not parent.is_relative_to(top):
                    break
                try:
                    parent.rmdir()
                except OSError:
                    break

    # signed URLs

    def _signature(self, bucket: str, key: str, expires: str) -> str:
        message = f"{bucket}\n{key}\n{expires}".encode()
        return hmac.new(self._url_key, message, "sha256").hexdigest()

    def signed_url(self, uri: str, *, ttl_seconds: int, now_ms: int) -> str:
        _check_ttl(ttl_seconds)
        bucket, key = parse_object_uri(uri)
        expires = str(now_ms // 1000 + ttl_seconds)
        signature = self._signature(bucket, key, expires)
        return f"{self.public_url}/store/{bucket}/{quote(key, safe='/')}?expires={expires}&signature={signature}"

    def verify_signature(self, bucket: str, key: str, expires: str, signature: str, *, now_ms: int) -> None:
        if not (expires.isascii() and expires.isdigit() and len(expires) <= 12):
            raise AccessDeniedError("the signed URL is malformed")
        expected = self._signature(bucket, key, expires)
        if not hmac.compare_digest(expected.encode(), signature.lower().encode()):
            raise AccessDeniedError("the signature of the URL does not match")
        if now_ms >= int(expires) * 1000:
            raise AccessDeniedError("the signed URL has expired")


def _followed(path: Path) -> Path:
    """``path`` (whose folder is resolved already) with its last level followed if it is a
    symlink."""
    with contextlib.suppress(OSError):  # missing, or a name too long: as ``resolve`` takes it
        if stat.S_ISLNK(os.lstat(path).st_mode):
            return path.resolve()
    return path


def _md5_file(fh: BinaryIO) -> str:
    digest = hashlib.md5()
    for chunk in iter(lambda: fh.read(1 << 20), b""):
        digest.update(chunk)
    fh.seek(0)
    return digest.hexdigest()


def _md5_path(path: Path) -> str:
    with open(path, "rb") as fh:
        return _md5_file(fh)


def _make_dirs(path: Path) -> None:
    """``mkdir -p`` with every new level 0700 (``Path.mkdir`` gives parents the umask's mode)."""
    missing = []
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o700)


def _tag(fd: int, content_type: str, etag: str) -> bool:
    """Put the object's metadata on the open file (before its ``fsync``, so it is as durable
    as the data); False when the file cannot take it (a filesystem without user extended
    attributes, or a content type too long for one): the caller writes a sidecar."""
    st = os.fstat(fd)
    meta = {"content_type": content_type, "etag": etag, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    try:
        os.setxattr(fd, _META_XATTR, json.dumps(meta).encode())
    except OSError:
        return False
    return True


def _read_tag(file: int | Path, st: os.stat_result) -> dict[str, Any] | None:
    """The metadata ``_tag`` put on the file, if it is still the file's: a file changed in
    place (same inode, other size or time) keeps its attributes, so they are checked."""
    try:
        meta: dict[str, Any] = json.loads(os.getxattr(file, _META_XATTR))
    except (OSError, ValueError):
        return None
    if (meta.get("size"), meta.get("mtime_ns")) != (st.st_size, st.st_mtime_ns):
        return None
    return meta


def _atomic_write(path: Path, data: bytes, *, tag: tuple[str, str] | None = None) -> tuple[os.stat_result, bool]:
    """Write via a temp file in the same folder, so readers see the old or the new file;
    with ``tag`` (content type, ETag), ``_tag`` the file. Returns its status and whether it
    was tagged."""
    for attempt in range(3):
        _make_dirs(path.parent)
        try:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_TMP_PREFIX)
            break
        except FileNotFoundError:  # a concurrent delete pruned the new folder
            if attempt == 2:
                raise
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            tagged = tag is not None and _tag(fh.fileno(), *tag)
            os.fsync(fh.fileno())
            st = os.fstat(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return st, tagged


# --- S3 ------------------------------------------------------------------------------

_NOT_FOUND_CODES = {"NoSuchKey", "NotFound", "404"}
_ACCESS_CODES = {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"}
_VALIDATION_CODES = {"InvalidBucketName", "KeyTooLongError", "InvalidArgument", "400"}


class S3Store(ObjectStore):
    def __init__(
        self,
        *,
        endpoint_url: str | None,
        region: str,
        access_key_id: str | None,
        secret_access_key: str | None,
    ) -> None:
        config = Config(
            region_name=region,
            signature_version="s3v4",
            connect_timeout=2,
            read_timeout=10,
            # Few, quick retries: an outage must surface fast; callers retry later.
            retries={"max_attempts": 2, "mode": "standard"},
            s3={"addressing_style": "path"} if endpoint_url else None,
        )
        session = boto3.session.Session(
            aws_access_key_id=access_key_id or None,
            aws_secret_access_key=secret_access_key or None,
            region_name=region,
        )
        self._client = session.client("s3", endpoint_url=endpoint_url or None, config=config)

    def _error(self, exc: Exception, what: str) -> LoopinError:
        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            message = exc.response.get("Error", {}).get("Message") or code
            if code == "NoSuchBucket":
                return NotFoundError(f"the bucket of {what} does not exist")
            if code in _NOT_FOUND_CODES:
                return NotFoundError(f"{what} does not exist")
            if code in _ACCESS_CODES:
                return AccessDeniedError(f"S3 denied access to {what}: {message}")
            if code in _VALIDATION_CODES:
                return ValidationError(f"S3 rejected {what}: {message}")
            if status >= 500 or code in ("SlowDown", "RequestTimeout", "ServiceUnavailable"):
                return StoreUnavailableError(f"S3 is unavailable for {what}: {message}")
            return StoreUnavailableError(f"S3 failed on {what}: {code} {message}")
        return StoreUnavailableError(f"S3 could not be reached for {what}: {exc}")

    def put(self, uri: str, data: bytes, *, content_type: str = DEFAULT_CONTENT_TYPE) -> None:
        bucket, key = parse_object_uri(uri)
        try:
            self._client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, uri) from exc

    def put_file(self, uri: str, path: Path, *, content_type: str = DEFAULT_CONTENT_TYPE) -> None:
        bucket, key = parse_object_uri(uri)
        try:  # multipart above boto3's threshold, read from the file in pieces
            self._client.upload_file(str(path), bucket, key, ExtraArgs={"ContentType": content_type})
        except (ClientError, BotoCoreError, S3UploadFailedError) as exc:
            cause = exc.__context__ if isinstance(exc, S3UploadFailedError) else exc
            raise self._error(cause if isinstance(cause, ClientError | BotoCoreError) else exc, uri) from exc

    def get(self, uri: str) -> bytes:
        bucket, key = parse_object_uri(uri)
        try:
            response = self._client.get_object(Bucket=bucket, Key=key)
            with response["Body"] as body:
                data: bytes = body.read()
                return data
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, uri) from exc

    def head(self, uri: str) -> ObjectInfo:
        bucket, key = parse_object_uri(uri)
        try:
            r = self._client.head_object(Bucket=bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, uri) from exc
        return ObjectInfo(
            uri=uri,
            size=int(r["ContentLength"]),
            etag=str(r.get("ETag", "")).strip('"'),
            content_type=r.get("ContentType") or DEFAULT_CONTENT_TYPE,
            last_modified_ms=int(r["LastModified"].timestamp() * 1000),
        )

    def list(self, prefix_uri: str) -> builtins.list[ObjectInfo]:
        bucket, prefix = _parse_prefix_uri(prefix_uri)
        found = []
        try:
            for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    found.append(
                        ObjectInfo(
                            uri=f"s3://{bucket}/{item['Key']}",
                            size=int(item["Size"]),
                            etag=str(item.get("ETag", "")).strip('"'),
                            content_type=None,
                            last_modified_ms=int(item["LastModified"].timestamp() * 1000),
                        )
                    )
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, prefix_uri) from exc
        return sorted(found, key=lambda info: info.uri)

    def delete(self, uri: str) -> None:
        bucket, key = parse_object_uri(uri)
        try:
            self._client.delete_object(Bucket=bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:  # S3 answers 204 for a missing key
            raise self._error(exc, uri) from exc

    def signed_url(self, uri: str, *, ttl_seconds: int, now_ms: int) -> str:
        """Presigned GET; boto3 signs with the system clock, so ``now_ms`` is not used."""
        _check_ttl(ttl_seconds)
        bucket, key = parse_object_uri(uri)
        try:
            url: str = self._client.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=ttl_seconds
            )
        except BotoCoreError as exc:
            raise self._error(exc, uri) from exc
        return url


def open_store(settings: Settings) -> ObjectStore:
    if settings.uses_external_s3:
        return S3Store(
            endpoint_url=settings.s3_endpoint_url or None,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id or None,
            secret_access_key=settings.s3_secret_access_key or None,
        )
    return LocalStore(
        settings.resolved_store_root,
        public_url=settings.resolved_public_url,
        secret_key=settings.secret_key,
    )
