"""Serves ``LocalStore`` objects at the signed URLs that ``LocalStore.signed_url`` makes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from fastapi import APIRouter
from fastapi.responses import Response, StreamingResponse

from loopin.clock import Clock
from loopin.errors import LoopinError
from loopin.store import LocalStore
from loopin.web.errors import json_error

_CHUNK = 64 * 1024
# Stored objects come from users: never let one run script on this origin. PDFs are left
# out of the sandbox because browsers refuse to show them in a sandboxed document.
_CSP = "default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'"


def _chunks(fh: BinaryIO) -> Iterator[bytes]:
    with fh:
        while chunk := fh.read(_CHUNK):
            yield chunk


def store_router(store: LocalStore, clock: Clock) -> APIRouter:
    router = APIRouter()

    @router.get("/store/{bucket}/{key:path}")
    def read_object(bucket: str, key: str, expires: str = "", signature: str = "") -> Response:
        now_ms = clock.now_ms()
        try:
            store.verify_signature(bucket, key, expires, signature, now_ms=now_ms)
            fh, info = store.open_read(f"s3://{bucket}/{key}")
        except LoopinError as err:
            return json_error(err)
        content_type = info.content_type or "application/octet-stream"
        sandbox = "" if content_type.split(";")[0].strip() == "application/pdf" else "; sandbox"
        max_age = max(0, (int(expires) * 1000 - now_ms) // 1000)
        headers = {
            "Content-Length": str(info.size),
            "ETag": f'"{info.etag}"',
            "Cache-Control": f"private, max-age={max_age}",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": _CSP + sandbox,
        }
        return StreamingResponse(_chunks(fh), media_type=content_type, headers=headers)

    return router
