"""The ``LoopinError`` tree: stable error codes named like A2I's, no HTTP knowledge.

Each API surface maps ``code`` to its own status code and wire shape in one place.
The SDK raises the same classes, so callers catch one set of exceptions whether
they run in-process or over HTTP.
"""

from __future__ import annotations

from typing import Any


class LoopinError(Exception):
    """Base class. ``code`` is stable and part of the API contract."""

    code = "InternalServerException"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class ValidationError(LoopinError):
    """The request is malformed or breaks a rule (a field, a limit, a state)."""

    code = "ValidationException"


class NotFoundError(LoopinError):
    """The named resource does not exist."""

    code = "ResourceNotFound"


class ConflictError(LoopinError):
    """The request conflicts with what exists (same loop name, different input)."""

    code = "ConflictException"


class ResourceInUseError(LoopinError):
    """The resource exists already, or is still used by another one."""

    code = "ResourceInUse"


class QuotaExceededError(LoopinError):
    """A configured limit would be exceeded."""

    code = "ServiceQuotaExceededException"


class AuthenticationError(LoopinError):
    """No valid credentials came with the request."""

    code = "UnauthorizedException"


class AccessDeniedError(LoopinError):
    """The caller is known but may not do this."""

    code = "AccessDeniedException"


class TaskStateError(LoopinError):
    """A task action that the task's state does not allow (late or repeated submit...)."""

    code = "TaskStateException"


class StoreUnavailableError(LoopinError):
    """The object store could not be reached or refused the operation."""

    code = "ServiceUnavailable"


class ModelError(LoopinError):
    """The model failed on the input (SageMaker's ModelError, HTTP 424)."""

    code = "ModelError"


class ThrottlingError(LoopinError):
    """Too many attempts (failed sign-ins): ``details["retry_after_seconds"]`` says when to
    try again."""

    code = "ThrottlingException"


class InternalError(LoopinError):
    code = "InternalServerException"


ERRORS_BY_CODE: dict[str, type[LoopinError]] = {
    cls.code: cls
    for cls in (
        ValidationError,
        NotFoundError,
        ConflictError,
        ResourceInUseError,
        QuotaExceededError,
        AuthenticationError,
        AccessDeniedError,
        TaskStateError,
        StoreUnavailableError,
        ModelError,
        ThrottlingError,
        InternalError,
    )
}


def error_from_code(code: str, message: str, details: dict[str, Any] | None = None) -> LoopinError:
    """Rebuild the exception for a wire error (used by the SDK)."""
    cls = ERRORS_BY_CODE.get(code, LoopinError)
    err = cls(message, details=details)
    if cls is LoopinError:
        err.code = code
    return err
