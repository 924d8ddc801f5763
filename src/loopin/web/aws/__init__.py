"""The AWS wire protocols loopin serves, so that boto3 and the AWS CLI work against it by
changing only ``endpoint_url``.

All of them share the server's root with the native API (``/api/v1``), the worker console
and the store's signed URLs, and each is a sub-app with its own error shape. A small ASGI
dispatcher in front of the app picks the protocol before any other routing:

* a request signed for the ``s3`` service (the credential scope in ``Authorization`` or a
  presigned URL's ``X-Amz-Credential``) goes to S3, whatever its path, because S3's
  path-style ``/<bucket>/<key>`` can look like any other path;
* ``POST /`` with ``X-Amz-Target`` is the SageMaker control plane (json 1.1);
* ``/human-loops`` and below is ``sagemaker-a2i-runtime`` (rest-json);
* ``POST /endpoints/{name}/invocations`` (``sagemaker-runtime``) is a route of the app.

Everything else falls through to the app unchanged.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from loopin.services import Services
from loopin.web.aws.a2i_runtime import a2i_runtime_app
from loopin.web.aws.control_plane import control_plane_app
from loopin.web.aws.s3_protocol import s3_app
from loopin.web.aws.sigv4 import signing_service

__all__ = ["AwsDispatcher", "mount_aws"]


def mount_aws(app: Starlette, ctx: Services) -> None:
    """Put the AWS protocols in front of ``app`` (call it before the app starts)."""
    app.add_middleware(AwsDispatcher, ctx=ctx)


class AwsDispatcher:
    def __init__(self, app: ASGIApp, ctx: Services) -> None:
        self.app = app
        self.a2i = a2i_runtime_app(ctx)
        self.control_plane = control_plane_app(ctx)
        self.s3 = s3_app(ctx)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await (self._protocol(scope) or self.app)(scope, receive, send)

    def _protocol(self, scope: Scope) -> ASGIApp | None:
        if scope["type"] != "http":
            return None
        headers = dict(scope["headers"])
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        if signing_service(authorization, scope.get("query_string", b"").decode("latin-1")) == "s3":
            return self.s3
        path = scope["path"]
        if path == "/" and scope["method"] == "POST" and b"x-amz-target" in headers:
            return self.control_plane
        if path == "/human-loops" or path.startswith("/human-loops/"):
            return self.a2i
        return None
