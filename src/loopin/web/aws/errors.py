"""Errors on the AWS wire, one translation per protocol, each pinned by a contract test.

* rest-json (``sagemaker-a2i-runtime``, ``sagemaker-runtime``): the status code, the code
  in the ``X-Amzn-ErrorType`` header and ``{"message": ...}`` in the body.
* json 1.1 (the SageMaker control plane): ``{"__type": code, "message": ...}``, status 400
  for every client error.
* S3: an XML ``<Error>`` document (no body on HEAD, where botocore reads the status).

Domain errors (``LoopinError``) and signature failures (``AuthFailure``) are mapped here
only; the handlers raise and never build error responses themselves.
"""

from __future__ import annotations

import json
import uuid
from xml.sax.saxutils import escape

from starlette.responses import Response

from loopin.errors import (
    AccessDeniedError,
    AuthenticationError,
    ConflictError,
    LoopinError,
    ModelError,
    NotFoundError,
    QuotaExceededError,
    ResourceInUseError,
    StoreUnavailableError,
    ValidationError,
)
from loopin.web.aws.sigv4 import AuthFailure

JSON11 = "application/x-amz-json-1.1"


class WireError(Exception):
    """An error already in a protocol's terms (code and status)."""

    def __init__(self, status: int, code: str, message: str, **fields: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields


def new_request_id() -> str:
    return str(uuid.uuid4())


# -- signature failures ---------------------------------------------------------------------

_JSON_AUTH = {
    "missing": (403, "MissingAuthenticationTokenException"),
    "malformed": (400, "IncompleteSignatureException"),
    "unknown_key": (403, "UnrecognizedClientException"),
    "mismatch": (403, "InvalidSignatureException"),
    "skewed": (403, "InvalidSignatureException"),
    "expired": (403, "InvalidSignatureException"),
    "wrong_service": (403, "InvalidSignatureException"),
}
_S3_AUTH = {
    "missing": (403, "AccessDenied"),
    "malformed": (400, "AuthorizationHeaderMalformed"),
    "unknown_key": (403, "InvalidAccessKeyId"),
    "mismatch": (403, "SignatureDoesNotMatch"),
    "skewed": (403, "RequestTimeTooSkewed"),
    "expired": (403, "AccessDenied"),
    "wrong_service": (403, "SignatureDoesNotMatch"),
}


def json_auth_error(failure: AuthFailure) -> WireError:
    status, code = _JSON_AUTH[failure.kind]
    return WireError(status, code, failure.message)


def s3_auth_error(failure: AuthFailure) -> WireError:
    status, code = _S3_AUTH[failure.kind]
    return WireError(status, code, failure.message)


# -- domain errors, per protocol -----------------------------------------------------------


def a2i_error(exc: LoopinError) -> WireError:
    """sagemaker-a2i-runtime's modeled errors."""
    if isinstance(exc, ValidationError):
        return WireError(400, "ValidationException", exc.message)
    if isinstance(exc, NotFoundError):
        return WireError(404, "ResourceNotFoundException", exc.message)
    if isinstance(exc, ConflictError | ResourceInUseError):
        return WireError(409, "ConflictException", exc.message)
    if isinstance(exc, QuotaExceededError):
        return WireError(402, "ServiceQuotaExceededException", exc.message)
    return _common(exc) or WireError(500, "InternalServerException", exc.message)


def runtime_error(exc: LoopinError, account_id: str) -> WireError:
    """sagemaker-runtime's: ``ValidationError`` (not ValidationException), ``ModelError`` 424."""
    if isinstance(exc, NotFoundError):
        return WireError(400, "ValidationError", f"{exc.message.rstrip('.')} in account {account_id}.")
    if isinstance(exc, ValidationError):
        return WireError(400, "ValidationError", exc.message)
    if isinstance(exc, ModelError):
        return WireError(424, "ModelError", exc.message)
    if isinstance(exc, StoreUnavailableError):
        return WireError(503, "ServiceUnavailable", exc.message)
    return _common(exc) or WireError(500, "InternalFailure", exc.message)


def control_plane_error(exc: LoopinError, *, not_found: str) -> WireError:
    """The SageMaker API's; ``not_found`` is the operation's code for a missing resource
    (``ValidationException`` for hosting, which the waiters rely on; ``ResourceNotFound``
    for human review resources)."""
    if isinstance(exc, ValidationError):
        return WireError(400, "ValidationException", exc.message)
    if isinstance(exc, NotFoundError):
        return WireError(400, not_found, exc.message)
    if isinstance(exc, ResourceInUseError):
        return WireError(400, "ResourceInUse", exc.message)
    if isinstance(exc, ConflictError):
        return WireError(400, "ConflictException", exc.message)
    if isinstance(exc, QuotaExceededError):
        return WireError(400, "ResourceLimitExceeded", exc.message)
    if isinstance(exc, StoreUnavailableError):
        return WireError(503, "ServiceUnavailable", exc.message)
    return _common(exc) or WireError(500, "InternalFailure", exc.message)


def s3_error(exc: LoopinError) -> WireError:
    """Errors of the local store, as S3 names them."""
    if isinstance(exc, NotFoundError):
        return WireError(404, "NoSuchKey", exc.message)
    if isinstance(exc, ValidationError | ConflictError):
        return WireError(400, "InvalidArgument", exc.message)
    if isinstance(exc, StoreUnavailableError):
        return WireError(503, "ServiceUnavailable", exc.message)
    if isinstance(exc, AuthenticationError | AccessDeniedError):
        return WireError(403, "AccessDenied", exc.message)
    return WireError(500, "InternalError", exc.message)


def _common(exc: LoopinError) -> WireError | None:
    if isinstance(exc, AuthenticationError):
        return WireError(403, "UnrecognizedClientException", exc.message)
    if isinstance(exc, AccessDeniedError):
        return WireError(403, "AccessDeniedException", exc.message)
    return None


# -- rendering -----------------------------------------------------------------------------


def rest_json_response(error: WireError, request_id: str) -> Response:
    return Response(
        json.dumps({"message": error.message, **error.fields}),
        status_code=error.status,
        media_type="application/json",
        headers={"X-Amzn-ErrorType": error.code, "x-amzn-RequestId": request_id},
    )


def json11_response(error: WireError, request_id: str) -> Response:
    return Response(
        json.dumps({"__type": error.code, "message": error.message}),
        status_code=error.status,
        media_type=JSON11,
        headers={"x-amzn-RequestId": request_id},
    )


def s3_response(error: WireError, request_id: str, *, head: bool = False) -> Response:
    headers = {"x-amz-request-id": request_id}
    if head:
        return Response(status_code=error.status, headers=headers)
    fields = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in error.fields.items())
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{error.code}</Code><Message>{escape(error.message)}</Message>{fields}"
        f"<RequestId>{request_id}</RequestId></Error>"
    )
    return Response(body, status_code=error.status, media_type="application/xml", headers=headers)
