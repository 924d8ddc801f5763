"""Keys derived from the server's secret key: signed, expiring tokens (worker sign-in) and
sealed secrets (encrypted values the server reads back)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from loopin.errors import AuthenticationError


def derive_key(secret_key: str, purpose: str) -> bytes:
    """A separate key per purpose, so one leaked use cannot forge another."""
    return hmac.new(secret_key.encode(), purpose.encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def sign_token(key: bytes, payload: dict[str, Any], *, expires_ms: int) -> str:
    body = _b64(json.dumps({**payload, "exp": expires_ms}, separators=(",", ":")).encode())
    sig = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
    return f"{body}.{sig}"


def verify_token(key: bytes, token: str, *, now_ms: int) -> dict[str, Any]:
    """The payload of a valid, unexpired token; AuthenticationError otherwise."""
    try:
        body, sig = token.split(".", 1)
        expected = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(sig.encode(), expected.encode()):
            raise ValueError("bad signature")
        payload: dict[str, Any] = json.loads(_unb64(body))
    except (ValueError, UnicodeDecodeError) as exc:
        raise AuthenticationError("The sign-in token is not valid. Sign in again.") from exc
    if not isinstance(payload.get("exp"), int) or payload["exp"] <= now_ms:
        raise AuthenticationError("The sign-in token has expired. Sign in again.")
    return payload


def _fernet(secret_key: str, purpose: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(derive_key(secret_key, purpose)))


def seal(secret_key: str, purpose: str, plaintext: str) -> str:
    """Encrypt a secret that must be read back later (access-key and webhook secrets)."""
    return _fernet(secret_key, purpose).encrypt(plaintext.encode()).decode()


def unseal(secret_key: str, purpose: str, sealed: str) -> str:
    """Decrypt ``seal``'s output; ValueError when this server's key cannot read it."""
    try:
        return _fernet(secret_key, purpose).decrypt(sealed.encode()).decode()
    except InvalidToken as exc:
        raise ValueError("cannot be read with this server's secret key") from exc
