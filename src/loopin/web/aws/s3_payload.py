"""S3 request bodies: checking them against the signed ``x-amz-content-sha256``, decoding
``aws-chunked`` uploads (what boto3 sends over HTTPS, with the checksum in a trailer), and
the ``Content-MD5`` and ``x-amz-checksum-*`` digests."""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Callable, Mapping

from loopin.web.aws.errors import WireError
from loopin.web.aws.sigv4 import UNSIGNED_PAYLOAD

UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
_CHECKSUMS: dict[str, Callable[[bytes], bytes]] = {
    "x-amz-checksum-crc32": lambda data: zlib.crc32(data).to_bytes(4, "big"),
    "x-amz-checksum-sha1": lambda data: hashlib.sha1(data).digest(),
    "x-amz-checksum-sha256": lambda data: hashlib.sha256(data).digest(),
}


def verified_payload(raw: bytes, headers: Mapping[str, str]) -> bytes:
    """The object's bytes from a request body, or WireError if they do not match what the
    client signed or declared."""
    declared = headers.get("x-amz-content-sha256", "")
    if declared == UNSIGNED_TRAILER:
        data, trailers = _decode_aws_chunked(raw)
        _check_checksums(data, trailers)
    elif declared.startswith("STREAMING-"):
        raise WireError(501, "NotImplemented", f"loopin does not accept {declared} uploads; sign the whole payload.")
    else:
        if declared not in ("", UNSIGNED_PAYLOAD) and hashlib.sha256(raw).hexdigest() != declared.lower():
            raise WireError(
                400, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match."
            )
        data = raw
    _check_checksums(data, headers)
    md5 = headers.get("content-md5")
    if md5 is not None and base64.b64encode(hashlib.md5(data).digest()).decode() != md5.strip():
        raise WireError(400, "BadDigest", "The Content-MD5 you specified did not match what we received.")
    return data


def _check_checksums(data: bytes, fields: Mapping[str, str]) -> None:
    for name, digest in _CHECKSUMS.items():
        expected = fields.get(name)
        if expected is not None and base64.b64encode(digest(data)).decode() != expected.strip():
            raise WireError(400, "BadDigest", f"The {name} you specified did not match the calculated checksum.")


def _decode_aws_chunked(raw: bytes) -> tuple[bytes, dict[str, str]]:
    """``<hex size>\\r\\n<bytes>\\r\\n`` chunks, a zero-size one, then trailer lines."""
    data, pos = bytearray(), 0
    try:
        while True:
            end = raw.index(b"\r\n", pos)
            size = int(raw[pos:end].split(b";")[0], 16)
            pos = end + 2
            if size == 0:
                break
            if raw[pos + size : pos + size + 2] != b"\r\n":
                raise ValueError("chunk overrun")
            data += raw[pos : pos + size]
            pos += size + 2
    except ValueError as exc:
        raise WireError(400, "IncompleteBody", f"The aws-chunked body is malformed: {exc}") from None
    trailers = {}
    for line in raw[pos:].split(b"\r\n"):
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip():
            trailers[name.strip().lower()] = value.strip()
    return bytes(data), trailers
