"""AWS Signature Version 4 verification against loopin's access keys.

The expected signature is computed with botocore's own signer (``SigV4Auth`` and its S3
and presigned-URL variants) on a request rebuilt from what was received: the method,
the path and query exactly as sent, only the headers the client listed as signed (with
their received values, so ``host`` carries the host and port the client used), and the
payload hash. It is compared in constant time. A reverse proxy in front of loopin must
therefore forward the original ``Host`` header.

S3's presigned URLs are also accepted in Signature Version 2 form, which boto3's
``generate_presigned_url`` still makes for S3 unless told ``signature_version="s3v4"``.

Accepting unsigned or wrongly signed requests is a development mode the operator switches
on explicitly (``aws_allow_unsigned``); it is logged on every such request.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

from botocore.auth import HmacV1Auth, S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from starlette.types import Scope

from loopin import access_keys
from loopin.errors import AuthenticationError
from loopin.services import Services

log = logging.getLogger("loopin.aws.sigv4")

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW_MS = 15 * 60 * 1000
MAX_PRESIGNED_SECONDS = 7 * 24 * 3600
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_AMZ_DATE = "%Y%m%dT%H%M%SZ"
_HEADER_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+),\s*SignedHeaders=(?P<headers>[^,\s]+),"
    r"\s*Signature=(?P<signature>[0-9a-fA-F]{64})\s*$"
)


class AuthFailure(Exception):
    """The request's signature is missing or does not hold. ``kind`` picks the wire code:
    missing, malformed, unknown_key, mismatch, skewed (the signing time is more than 15
    minutes off), expired (a presigned URL past its lifetime), wrong_service."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class Received:
    """An HTTP request as it came in: path and query still percent-encoded."""

    method: str
    raw_path: str
    query: str
    headers: tuple[tuple[str, str], ...]  # lower-case names, in arrival order

    @classmethod
    def from_scope(cls, scope: Scope) -> Received:
        raw_path = scope.get("raw_path") or scope["path"].encode()
        return cls(
            method=scope["method"],
            raw_path=raw_path.decode("latin-1").split("?", 1)[0],
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=tuple((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]),
        )

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)

    def query_params(self) -> dict[str, str]:
        params = {}
        for pair in self.query.split("&"):
            if pair:
                key, _, value = pair.partition("=")
                params[unquote(key.replace("+", " "))] = unquote(value.replace("+", " "))
        return params


@dataclass(frozen=True)
class _Signed:
    key_id: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    amz_date: str
    expires: int | None  # presigned URLs only


def signing_service(authorization: str | None, query: str) -> str | None:
    """The service named in a request's credential scope (``s3``, ``sagemaker``), if any:
    cheap enough to route every request by."""
    if "AWSAccessKeyId=" in query and not authorization:
        return "s3"  # a Signature Version 2 presigned URL, which only S3 has
    credential = None
    if authorization and authorization.startswith(ALGORITHM):
        match = re.search(r"Credential=([^,\s]+)", authorization)
        credential = match[1] if match else None
    elif "X-Amz-Credential=" in query:
        match = re.search(r"(?:^|&)X-Amz-Credential=([^&]+)", query)
        credential = unquote(match[1]) if match else None
    parts = credential.split("/") if credential else []
    return parts[3] if len(parts) == 5 else None


def authenticate(ctx: Services, request: Received, *, service: str, body: bytes | None) -> str | None:
    """The access key id that signed ``request`` for ``service``; raises AuthFailure.

    ``body`` is the whole body; ``None`` trusts the signed ``x-amz-content-sha256``
    header instead (S3, whose handler checks the body against it while reading it). In
    development mode a failure is logged and ``None`` returned.
    Blocking (a database read): call it from a worker thread.
    """
    try:
        if service == "s3" and request.header("authorization") is None and "AWSAccessKeyId" in request.query_params():
            return _presigned_v2(ctx, request)
        signed = _parse(request)
        if signed.service != service:
            raise AuthFailure("wrong_service", f"Credential should be scoped to correct service: '{service}'.")
        _check_time(signed, ctx.clock.now_ms())
        expected = _expected_signature(signed, _secret(ctx, signed.key_id), request, body)
        _compare(expected, signed.signature.lower())
        return signed.key_id
    except AuthFailure as failure:
        if not ctx.settings.aws_allow_unsigned:
            raise
        log.warning("accepting a request without a valid signature (aws_allow_unsigned): %s", failure.message)
        return None


def precheck(ctx: Services, request: Received, *, service: str) -> None:
    """Everything ``authenticate`` checks that does not need the body (a signature of the
    right form, scope and time, by a known key), so that a request body is read only for
    a caller who may be who they claim. Raises AuthFailure (logged and passed in
    development mode). Blocking on a cache miss (a database read): call it from a thread."""
    try:
        signed = _parse(request)
        if signed.service != service:
            raise AuthFailure("wrong_service", f"Credential should be scoped to correct service: '{service}'.")
        _check_time(signed, ctx.clock.now_ms())
        try:
            ctx.secrets.secret(signed.key_id)  # cached for a few seconds
        except AuthenticationError as exc:
            raise AuthFailure("unknown_key", "The security token included in the request is invalid.") from exc
    except AuthFailure as failure:
        if not ctx.settings.aws_allow_unsigned:
            raise
        log.warning("accepting a request without a valid signature (aws_allow_unsigned): %s", failure.message)


def _secret(ctx: Services, key_id: str) -> str:
    try:
        with ctx.db.read() as session:
            return access_keys.secret_for(session, key_id, secret_key=ctx.settings.secret_key)
    except AuthenticationError as exc:
        raise AuthFailure("unknown_key", "The security token included in the request is invalid.") from exc


def _compare(expected: str, received: str) -> None:
    if not hmac.compare_digest(expected.encode(), received.encode()):
        raise AuthFailure(
            "mismatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method.",
        )


class _HmacV1Presigned(HmacV1Auth):  # type: ignore[misc]  # botocore ships no types
    """botocore's Signature Version 2 signer with the URL's own expiry as its date."""

    def __init__(self, credentials: Credentials, expires: str) -> None:
        super().__init__(credentials)
        self._expires = expires

    def _get_date(self) -> str:
        return self._expires


def _presigned_v2(ctx: Services, request: Received) -> str:
    """A Signature Version 2 presigned S3 URL (``AWSAccessKeyId``, ``Expires``,
    ``Signature``): what boto3's ``generate_presigned_url`` makes for S3 by default."""
    params = request.query_params()
    key_id, signature, expires = params["AWSAccessKeyId"], params.get("Signature", ""), params.get("Expires", "")
    if not (signature and expires.isdigit()):
        raise AuthFailure("malformed", "The presigned URL needs AWSAccessKeyId, Expires and Signature.")
    if ctx.clock.now_ms() > int(expires) * 1000:
        raise AuthFailure("expired", "Request has expired")
    signer = _HmacV1Presigned(Credentials(key_id, _secret(ctx, key_id)), expires)
    headers = AWSRequest().headers
    for name, value in request.headers:
        if name in ("content-md5", "content-type") or name.startswith("x-amz-"):
            headers[name] = value
    split = urlsplit(f"http://host{request.raw_path}?{request.query}")
    _compare(signer.sign_string(signer.canonical_string(request.method, split, headers)), signature)
    return key_id


def _parse(request: Received) -> _Signed:
    authorization = request.header("authorization")
    params = request.query_params()
    if authorization is not None:
        match = _HEADER_AUTH.match(authorization)
        if match is None:
            raise AuthFailure(
                "malformed",
                "The Authorization header is not AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...",
            )
        credential, headers, signature = match["credential"], match["headers"], match["signature"]
        amz_date, expires = request.header("x-amz-date"), None
        if amz_date is None:
            raise AuthFailure("malformed", "The request carries no X-Amz-Date header.")
    elif "X-Amz-Algorithm" in params:
        if params["X-Amz-Algorithm"] != ALGORITHM:
            raise AuthFailure("malformed", f"X-Amz-Algorithm must be {ALGORITHM}.")
        try:
            credential, headers, signature = (
                params["X-Amz-Credential"],
                params["X-Amz-SignedHeaders"],
                params["X-Amz-Signature"],
            )
            amz_date, expires_text = params["X-Amz-Date"], params["X-Amz-Expires"]
        except KeyError as exc:
            raise AuthFailure("malformed", f"The presigned URL lacks the {exc.args[0]} parameter.") from None
        if not expires_text.isdigit() or not 1 <= int(expires_text) <= MAX_PRESIGNED_SECONDS:
            raise AuthFailure(
                "malformed", f"X-Amz-Expires must be a number of seconds from 1 to {MAX_PRESIGNED_SECONDS}."
            )
        expires = int(expires_text)
    else:
        raise AuthFailure("missing", "The request is not signed: it carries no AWS Signature Version 4.")
    scope = credential.split("/")
    if len(scope) != 5 or scope[4] != "aws4_request" or not all(scope):
        raise AuthFailure(
            "malformed", f"The credential '{credential}' is not <key id>/<date>/<region>/<service>/aws4_request."
        )
    signed_headers = tuple(headers.split(";"))
    if "host" not in signed_headers:
        raise AuthFailure("malformed", "The host header must be signed.")
    if not amz_date.startswith(scope[1]):
        raise AuthFailure("malformed", f"The credential's date {scope[1]} is not the date of X-Amz-Date {amz_date}.")
    return _Signed(scope[0], scope[1], scope[2], scope[3], signed_headers, signature, amz_date, expires)


def _check_time(signed: _Signed, now_ms: int) -> None:
    try:
        signed_ms = int(datetime.strptime(signed.amz_date, _AMZ_DATE).replace(tzinfo=UTC).timestamp() * 1000)
    except ValueError:
        raise AuthFailure("malformed", f"X-Amz-Date '{signed.amz_date}' is not yyyyMMddTHHmmssZ.") from None
    now = _amz(now_ms)
    if signed.expires is not None:  # a presigned URL: valid from its date until it expires
        if signed_ms - now_ms > MAX_SKEW_MS:
            raise AuthFailure("skewed", f"Request is not yet valid: signed at {signed.amz_date}, now {now}.")
        if now_ms > signed_ms + signed.expires * 1000:
            raise AuthFailure("expired", "Request has expired")
    elif signed_ms < now_ms - MAX_SKEW_MS:
        raise AuthFailure(
            "skewed",
            f"Signature expired: {signed.amz_date} is now earlier than {_amz(now_ms - MAX_SKEW_MS)} ({now} - 15 min.)",
        )
    elif signed_ms > now_ms + MAX_SKEW_MS:
        raise AuthFailure(
            "skewed",
            f"Signature not yet current: {signed.amz_date} is still later than {_amz(now_ms + MAX_SKEW_MS)} "
            f"({now} + 15 min.)",
        )


def _amz(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).strftime(_AMZ_DATE)


def _expected_signature(signed: _Signed, secret: str, request: Received, body: bytes | None) -> str:
    credentials = Credentials(signed.key_id, secret)
    signer: SigV4Auth
    query = request.query
    if signed.expires is not None:
        # The canonical query of a presigned URL is every parameter but the signature.
        query = "&".join(p for p in query.split("&") if p and not p.startswith("X-Amz-Signature="))
        signer = S3SigV4QueryAuth(credentials, signed.service, signed.region, expires=signed.expires)
    elif signed.service == "s3":
        signer = S3SigV4Auth(credentials, signed.service, signed.region)
    else:
        signer = SigV4Auth(credentials, signed.service, signed.region)
    for name in signed.signed_headers:
        if request.header(name) is None:
            raise AuthFailure("malformed", f"The signed header '{name}' is not in the request.")
    url = f"http://{request.header('host') or ''}{request.raw_path}" + (f"?{query}" if query else "")
    rebuilt = AWSRequest(method=request.method, url=url, data=body or b"")
    for name, value in request.headers:
        if name in signed.signed_headers:
            rebuilt.headers[name] = value  # a repeated header stays repeated; the signer joins it
    content_sha256 = request.header("x-amz-content-sha256")
    if signed.service != "s3" and (content_sha256 == UNSIGNED_PAYLOAD or signed.expires is not None):
        # As AWS: only S3 may leave the body out of the signature. Elsewhere a captured
        # request could be replayed with another body while its signature is fresh.
        raise AuthFailure("mismatch", f"The payload must be signed: {UNSIGNED_PAYLOAD} is for S3 only.")
    if body is not None and content_sha256 not in (None, UNSIGNED_PAYLOAD, hashlib.sha256(body).hexdigest()):
        raise AuthFailure("mismatch", "The x-amz-content-sha256 header does not match the body.")
    if body is None and signed.expires is None and "x-amz-content-sha256" not in signed.signed_headers:
        raise AuthFailure("malformed", "Missing required header for this request: x-amz-content-sha256.")
    rebuilt.context["timestamp"] = signed.amz_date
    canonical = signer.canonical_request(rebuilt)
    return str(signer.signature(signer.string_to_sign(rebuilt, canonical), rebuilt))
