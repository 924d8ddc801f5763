"""S3's REST protocol on the local store, for the embedded default only: enough for an A2I
client to upload its images and read ``output.json`` with boto3 or the AWS CLI.

Requests reach this app when they are signed for the ``s3`` service (see ``loopin.aws``).
Path-style addressing (``/<bucket>/<key>``), which boto3 uses for an ``endpoint_url`` such
as ``http://127.0.0.1:8321``. Served: ListBuckets, CreateBucket, HeadBucket, ListObjectsV2,
PutObject, GetObject (with ``Range``), HeadObject, DeleteObject, multipart uploads, and
presigned GET/PUT URLs. Anything else answers ``NotImplemented`` naming it. Objects keep
their content type; user metadata (``x-amz-meta-*``) is not stored.

With an external S3 configured, loopin does not serve S3 and says where to go instead.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Iterator
from email.utils import formatdate
from typing import Any, BinaryIO
from urllib.parse import quote
from xml.etree import ElementTree

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from loopin.clock import iso_ms
from loopin.errors import LoopinError, ValidationError
from loopin.services import Services
from loopin.store import DEFAULT_CONTENT_TYPE, LocalStore, ObjectInfo, validate_bucket
from loopin.web.aws.errors import WireError, new_request_id, s3_auth_error, s3_error, s3_response
from loopin.web.aws.s3_multipart import MultipartUploads
from loopin.web.aws.s3_payload import verified_payload
from loopin.web.aws.sigv4 import AuthFailure, Received, authenticate
from loopin.web.bodies import read_capped

log = logging.getLogger("loopin.aws.s3")

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
# LocalStore.put takes the whole object in memory, so objects are capped well below S3's 5 TB.
MAX_OBJECT_BYTES = 1024 * 1024 * 1024
MAX_XML_BYTES = 2 * 1024 * 1024
_CHUNK = 256 * 1024
# Sub-resources that name operations loopin does not serve (bucket policies, ACLs...).
# fmt: off
_UNSERVED = (
    "acl", "policy", "tagging", "versioning", "versions", "lifecycle", "cors", "website", "delete", "location",
    "notification", "encryption", "logging", "replication", "uploads", "restore", "select", "attributes",
    "legal-hold", "retention", "object-lock", "torrent", "accelerate", "ownershipControls", "publicAccessBlock",
    "requestPayment", "analytics", "inventory", "metrics", "intelligent-tiering",
)
# fmt: on


def s3_app(ctx: Services) -> ASGIApp:
    if isinstance(ctx.store, LocalStore):
        return _S3(ctx, ctx.store)
    return _external_store_notice


async def _external_store_notice(scope: Scope, receive: Receive, send: Send) -> None:
    error = WireError(
        501,
        "NotImplemented",
        "This loopin server keeps its objects in an external S3 store; send S3 requests to that store.",
    )
    await s3_response(error, new_request_id(), head=scope["method"] == "HEAD")(scope, receive, send)


class _S3:
    def __init__(self, ctx: Services, store: LocalStore) -> None:
        self.ctx = ctx
        self.store = store
        self.uploads = MultipartUploads(store, max_object_bytes=MAX_OBJECT_BYTES)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        request_id = new_request_id()
        head = request.method == "HEAD"
        try:
            await run_in_threadpool(authenticate, self.ctx, Received.from_scope(scope), service="s3", body=None)
            response = await self._operation(request)
        except AuthFailure as exc:
            response = s3_response(s3_auth_error(exc), request_id, head=head)
        except WireError as exc:
            response = s3_response(exc, request_id, head=head)
        except LoopinError as exc:
            response = s3_response(s3_error(exc), request_id, head=head)
        except Exception:
            log.exception("S3 request %s %s failed", request.method, request.url.path)
            response = s3_response(WireError(500, "InternalError", "The server failed; see its log."), request_id)
        response.headers["x-amz-request-id"] = request_id
        if response.status_code >= 300 and _has_body(request):
            # Refused before its body was read (an unknown bucket, a bad signature): a
            # client that sends the body anyway would desynchronise a kept-alive connection.
            response.headers["Connection"] = "close"
        await response(scope, receive, send)

    async def _operation(self, request: Request) -> Response:
        bucket, _, key = request.url.path[1:].partition("/")
        query, method = request.query_params, request.method
        unserved = next((name for name in _UNSERVED if name in query and not (name == "uploads" and key)), None)
        if unserved or "x-amz-copy-source" in request.headers:
            what = f"?{unserved}" if unserved else "CopyObject"
            raise WireError(501, "NotImplemented", f"loopin's S3 does not implement {method} {what}.")
        if not bucket:
            if method == "GET":
                return await run_in_threadpool(self._list_buckets)
        elif not key:
            if method == "PUT":
                await _body(request, MAX_XML_BYTES)  # a CreateBucketConfiguration; the region is not kept
                return await run_in_threadpool(self._create_bucket, bucket)
            self._existing_bucket(bucket)
            if method == "HEAD":
                return Response(headers={"x-amz-bucket-region": self.ctx.settings.region})
            if method == "GET":
                return await run_in_threadpool(self._list_objects, bucket, query)
        else:
            return await self._object_operation(request, bucket, key)
        raise WireError(501, "NotImplemented", f"loopin's S3 does not implement {method} on {request.url.path}.")

    async def _object_operation(self, request: Request, bucket: str, key: str) -> Response:
        self._existing_bucket(bucket)
        uri = f"s3://{bucket}/{key}"
        query, method = request.query_params, request.method
        upload_id = query.get("uploadId")
        if method == "PUT" and upload_id is not None:
            data = verified_payload(await _body(request, MAX_OBJECT_BYTES), request.headers)
            number = int(query["partNumber"]) if query.get("partNumber", "").isdigit() else 0
            etag = await run_in_threadpool(self.uploads.put_part, upload_id, bucket, key, number, data)
            return Response(headers={"ETag": f'"{etag}"'})
        if method == "PUT":
            data = verified_payload(await _body(request, MAX_OBJECT_BYTES), request.headers)
            content_type = request.headers.get("content-type") or DEFAULT_CONTENT_TYPE
            await run_in_threadpool(self.store.put, uri, data, content_type=content_type)
            return Response(headers={"ETag": f'"{hashlib.md5(data).hexdigest()}"'})
        if method in ("GET", "HEAD"):
            return await run_in_threadpool(self._read, uri, request.headers.get("range"), method == "HEAD")
        if method == "DELETE" and upload_id is not None:
            await run_in_threadpool(self.uploads.abort, upload_id, bucket, key)
            return Response(status_code=204)
        if method == "DELETE":
            await run_in_threadpool(self.store.delete, uri)
            return Response(status_code=204)
        if method == "POST" and "uploads" in query:
            content_type = request.headers.get("content-type") or DEFAULT_CONTENT_TYPE
            upload = await run_in_threadpool(self.uploads.create, bucket, key, content_type)
            return _xml("InitiateMultipartUploadResult", [("Bucket", bucket), ("Key", key), ("UploadId", upload)])
        if method == "POST" and upload_id is not None:
            parts = _completed_parts(await _body(request, MAX_XML_BYTES))
            data, content_type = await run_in_threadpool(self.uploads.complete, upload_id, bucket, key, parts)
            await run_in_threadpool(self.store.put, uri, data, content_type=content_type)
            await run_in_threadpool(self.uploads.abort, upload_id, bucket, key)
            location = f"{self.ctx.settings.resolved_public_url}/{bucket}/{quote(key)}"
            etag = f'"{hashlib.md5(data).hexdigest()}"'  # the local store's ETag: the content's MD5
            fields = [("Location", location), ("Bucket", bucket), ("Key", key), ("ETag", etag)]
            return _xml("CompleteMultipartUploadResult", fields)
        raise WireError(501, "NotImplemented", f"loopin's S3 does not implement {method} on an object.")

    # -- buckets ---------------------------------------------------------------------------

    def _existing_bucket(self, bucket: str) -> None:
        try:
            validate_bucket(bucket)
        except ValidationError as exc:
            raise WireError(400, "InvalidBucketName", exc.message, BucketName=bucket) from None
        if not (self.store.root / bucket).is_dir():
            raise WireError(404, "NoSuchBucket", "The specified bucket does not exist.", BucketName=bucket)

    def _create_bucket(self, bucket: str) -> Response:
        try:
            validate_bucket(bucket)
        except ValidationError as exc:
            raise WireError(400, "InvalidBucketName", exc.message, BucketName=bucket) from None
        try:
            (self.store.root / bucket).mkdir()  # a bucket of the local store is a folder
        except FileExistsError:
            raise WireError(409, "BucketAlreadyOwnedByYou", "You already own this bucket.", BucketName=bucket) from None
        return Response(headers={"Location": f"/{bucket}"})

    def _list_buckets(self) -> Response:
        buckets = ElementTree.Element("Buckets")
        for path in sorted(self.store.root.iterdir()):
            if path.is_dir() and not path.name.startswith("."):
                bucket = ElementTree.SubElement(buckets, "Bucket")
                _text(bucket, "Name", path.name)
                _text(bucket, "CreationDate", iso_ms(int(path.stat().st_mtime * 1000)))
        owner = ElementTree.Element("Owner")
        _text(owner, "ID", self.ctx.settings.account_id)
        return _xml("ListAllMyBucketsResult", [owner, buckets])

    def _list_objects(self, bucket: str, query: Any) -> Response:
        """ListObjectsV2 (``list-type=2``) and the older ListObjects. Common prefixes count
        towards ``max-keys``, as on S3; a page continues after the last key or prefix of
        the one before."""
        v2 = query.get("list-type") == "2"
        prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
        max_keys = min(int(query["max-keys"]), 1000) if query.get("max-keys", "").isdigit() else 1000
        token = query.get("continuation-token") if v2 else None
        marker = _decode_marker(token) if token else query.get("start-after" if v2 else "marker", "")
        encode = query.get("encoding-type") == "url"
        contents: list[ObjectInfo] = []
        prefixes: list[str] = []
        truncated, last = False, ""
        for info in self.store.list(f"s3://{bucket}/{prefix}"):
            key = info.uri[len(f"s3://{bucket}/") :]
            cut = key.find(delimiter, len(prefix)) if delimiter else -1
            entry = key[: cut + len(delimiter)] if cut >= 0 else key
            if entry <= marker or (prefixes and entry == prefixes[-1]):
                continue
            if len(contents) + len(prefixes) == max_keys:
                truncated = True
                break
            if cut >= 0:
                prefixes.append(entry)
            else:
                contents.append(info)
            last = entry
        fields: list[Any] = [("Name", bucket), ("Prefix", _enc(prefix, encode)), ("MaxKeys", str(max_keys))]
        fields.append(("IsTruncated", str(truncated).lower()))
        if delimiter:
            fields.append(("Delimiter", _enc(delimiter, encode)))
        if encode:
            fields.append(("EncodingType", "url"))
        if v2:
            fields.append(("KeyCount", str(len(contents) + len(prefixes))))
            if token:
                fields.append(("ContinuationToken", token))
            if truncated:
                fields.append(("NextContinuationToken", base64.urlsafe_b64encode(last.encode()).decode()))
        else:
            fields.append(("Marker", _enc(marker, encode)))
            if truncated:
                fields.append(("NextMarker", _enc(last, encode)))
        for info in contents:
            item = ElementTree.Element("Contents")
            _text(item, "Key", _enc(info.uri[len(f"s3://{bucket}/") :], encode))
            _text(item, "LastModified", iso_ms(info.last_modified_ms))
            _text(item, "ETag", f'"{info.etag}"')
            _text(item, "Size", str(info.size))
            _text(item, "StorageClass", "STANDARD")
            fields.append(item)
        for common in prefixes:
            item = ElementTree.Element("CommonPrefixes")
            _text(item, "Prefix", _enc(common, encode))
            fields.append(item)
        return _xml("ListBucketResult", fields)

    # -- objects ---------------------------------------------------------------------------

    def _read(self, uri: str, range_header: str | None, head: bool) -> Response:
        fh, info = self.store.open_read(uri)
        headers = {
            "ETag": f'"{info.etag}"',
            "Last-Modified": formatdate(info.last_modified_ms / 1000, usegmt=True),
            "Accept-Ranges": "bytes",
            "Content-Type": info.content_type or DEFAULT_CONTENT_TYPE,
        }
        start, end, status = 0, info.size - 1, 200
        if range_header is not None:
            try:
                start, end = _byte_range(range_header, info.size)
            except WireError:
                fh.close()
                raise
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{info.size}"
        headers["Content-Length"] = str(end - start + 1)
        if head:
            fh.close()
            return Response(status_code=status, headers=headers)
        fh.seek(start)
        return StreamingResponse(_chunks(fh, end - start + 1), status_code=status, headers=headers)


def _has_body(request: Request) -> bool:
    return request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers


async def _body(request: Request, limit: int) -> bytes:
    body = await read_capped(request, limit)
    if body is None:
        raise WireError(400, "EntityTooLarge", f"loopin's local store takes bodies up to {limit:,} bytes.")
    return body


def _byte_range(header: str, size: int) -> tuple[int, int]:
    """The inclusive (first, last) byte of a single ``bytes=`` range."""
    unit, _, spec = header.partition("=")
    first, _, last = spec.strip().partition("-")
    try:
        if unit.strip() != "bytes" or "," in spec:
            raise ValueError
        if first == "":  # the last N bytes
            start, end = max(0, size - int(last)), size - 1
        else:
            start, end = int(first), min(int(last), size - 1) if last else size - 1
    except ValueError:
        start, end = size, size - 1  # unsatisfiable
    if start > end or start >= size:
        raise WireError(416, "InvalidRange", "The requested range is not satisfiable.", RangeRequested=header)
    return start, end


def _chunks(fh: BinaryIO, length: int) -> Iterator[bytes]:
    with fh:
        while length > 0 and (chunk := fh.read(min(_CHUNK, length))):
            length -= len(chunk)
            yield chunk


def _completed_parts(body: bytes) -> list[tuple[int, str]]:
    try:
        root = ElementTree.fromstring(body)
        parts = [
            (int(part.findtext(f"{ns}PartNumber") or ""), part.findtext(f"{ns}ETag") or "")
            for ns in (f"{{{NS}}}", "")
            for part in root.iter(f"{ns}Part")
        ]
    except (ElementTree.ParseError, ValueError):
        raise WireError(400, "MalformedXML", "The XML you provided was not well-formed.") from None
    return parts


def _decode_marker(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except ValueError:
        raise WireError(400, "InvalidArgument", "The continuation token provided is incorrect.") from None


def _enc(value: str, encode: bool) -> str:
    return quote(value, safe="/") if encode else value


def _text(parent: ElementTree.Element, tag: str, value: str) -> None:
    ElementTree.SubElement(parent, tag).text = value


def _xml(root_tag: str, fields: list[Any]) -> Response:
    root = ElementTree.Element(root_tag, xmlns=NS)
    for field in fields:
        if isinstance(field, tuple):
            _text(root, *field)
        else:
            root.append(field)
    body = b'<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(root)
    return Response(body, media_type="application/xml")
