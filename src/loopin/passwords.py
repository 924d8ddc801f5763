"""Password hashing for workers and admins: argon2id, with a check that takes the same
time whether or not the account exists."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from loopin.errors import ValidationError

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024  # checked before any hashing, on every path
# OWASP's recommended argon2id baseline (19 MiB, 2 passes, 1 lane): strong, yet cheap
# enough that sign-in does not become a denial-of-service lever on a small server.
_hasher = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)
# Verifying against this keeps sign-in time the same for unknown e-mail addresses.
_DUMMY_HASH = _hasher.hash("loopin-timing-equaliser")


def hash_password(password: str) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(f"The password must have at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValidationError(f"The password is longer than {MAX_PASSWORD_LENGTH} characters.")
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True if ``password`` matches; with no stored hash, spends the same time and is False.
    A password longer than any that can be set is False at once, without hashing it."""
    if not isinstance(password, str) or len(password) > MAX_PASSWORD_LENGTH:
        return False
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)
