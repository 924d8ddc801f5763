"""Admin access keys: an id and a secret, shown once, stored encrypted, revocable.

The secret is encrypted (Fernet, keyed from the server's secret key) rather than hashed
because AWS SigV4 verification needs the secret itself to recompute signatures.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import string
import threading
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from loopin.clock import Clock
from loopin.db import Database
from loopin.errors import AuthenticationError, NotFoundError, ValidationError
from loopin.models import AccessKey
from loopin.signing import seal, unseal

_ID_ALPHABET = string.ascii_uppercase + string.digits

log = logging.getLogger("loopin.access_keys")
# The same words whether the key id is unknown, revoked or unreadable, or the secret wrong.
INVALID_CREDENTIALS = "The credentials are not valid."


@dataclass(frozen=True)
class NewAccessKey:
    access_key_id: str
    secret_access_key: str
    description: str
    created_at: int


PURPOSE = "loopin-access-keys"


def create_key(session: Session, *, secret_key: str, description: str, now_ms: int) -> NewAccessKey:
    if len(description) > 256:
        raise ValidationError("The description is longer than 256 characters.")
    key_id = "LKIA" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(16))
    secret = secrets.token_urlsafe(30)[:40]
    session.add(
        AccessKey(
            key_id=key_id,
            secret_encrypted=seal(secret_key, PURPOSE, secret),
            description=description,
            created_at=now_ms,
        )
    )
    return NewAccessKey(key_id, secret, description, now_ms)


def list_keys(session: Session) -> list[AccessKey]:
    return list(session.scalars(select(AccessKey).order_by(AccessKey.created_at)))


def revoke_key(session: Session, key_id: str, *, now_ms: int) -> None:
    key = session.get(AccessKey, key_id)
    if key is None:
        raise NotFoundError(f"No access key '{key_id}'.")
    if key.revoked_at is None:
        key.revoked_at = now_ms


def secret_for(session: Session, key_id: str, *, secret_key: str) -> str:
    """The secret of an active key (for signature checks); AuthenticationError if none."""
    key = session.get(AccessKey, key_id)
    if key is None or key.revoked_at is not None:
        raise AuthenticationError(INVALID_CREDENTIALS)
    try:
        return unseal(secret_key, PURPOSE, key.secret_encrypted)
    except ValueError as exc:
        # Said in the log only: the answer must not tell whether the key id exists.
        log.warning("access key %s cannot be read with this server's secret key (was it changed?)", key_id)
        raise AuthenticationError(INVALID_CREDENTIALS) from exc


def authenticate(session: Session, key_id: str, secret: str, *, secret_key: str) -> str:
    """Check an id/secret pair; returns the key id."""
    expected = secret_for(session, key_id, secret_key=secret_key)
    if not hmac.compare_digest(expected.encode(), secret.encode()):
        raise AuthenticationError(INVALID_CREDENTIALS)
    return key_id


class SecretCache:
    """Access-key secrets for a few seconds, so that each request does not read and decrypt
    its key again. A revoked key stops working within ``ttl_seconds``."""

    def __init__(self, db: Database, secret_key: str, clock: Clock, *, ttl_seconds: float = 5.0) -> None:
        self._db = db
        self._clock = clock
        self._secret_key = secret_key
        self._ttl = ttl_seconds
        self._entries: dict[str, tuple[str, int]] = {}
        self._lock = threading.Lock()

    def is_cached(self, key_id: str) -> bool:
        """Whether ``secret`` would answer without reading the database."""
        with self._lock:
            cached = self._entries.get(key_id)
        return cached is not None and cached[1] > self._clock.now_ms()

    def secret(self, key_id: str) -> str:
        now = self._clock.now_ms()
        with self._lock:
            cached = self._entries.get(key_id)
        if cached is not None and cached[1] > now:
            return cached[0]
        with self._db.read() as session:
            value = secret_for(session, key_id, secret_key=self._secret_key)
        with self._lock:
            if len(self._entries) > 10_000:  # bounded, even if many ids are tried
                self._entries.clear()
            self._entries[key_id] = (value, now + int(self._ttl * 1000))
        return value

    def authenticate(self, key_id: str, secret: str) -> str:
        if not hmac.compare_digest(self.secret(key_id).encode(), secret.encode()):
            raise AuthenticationError(INVALID_CREDENTIALS)
        return key_id
