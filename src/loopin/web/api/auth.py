"""Dependencies of the native API: the services, and who is calling (an admin with an
access key, or a signed-in worker)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasic, HTTPBasicCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from loopin.errors import AuthenticationError
from loopin.models import Worker
from loopin.services import Services
from loopin.signing import derive_key, verify_token

# The dependencies are ``async`` so that FastAPI runs them on the event loop: a sync one
# would cost a thread-pool hop per request each. Only a secret missing from the cache
# (once per key every few seconds) reads the database, in the thread pool.


async def services(request: Request) -> Services:
    ctx: Services = request.app.state.services
    return ctx


Ctx = Annotated[Services, Depends(services)]


_basic = HTTPBasic(auto_error=False, description="An access key: its id as user, its secret as password.")
_bearer = HTTPBearer(auto_error=False, description="A worker's token from /worker/sign-in.")


async def admin(ctx: Ctx, credentials: Annotated[HTTPBasicCredentials | None, Depends(_basic)]) -> str:
    """The access key id of an admin caller (HTTP Basic with key id and secret)."""
    if credentials is None:
        raise AuthenticationError(
            "This call needs an access key: HTTP Basic auth with the key id and secret "
            "(create one with `loopin keys create`)."
        )
    if not ctx.secrets.is_cached(credentials.username):
        await run_in_threadpool(ctx.secrets.secret, credentials.username)
    return ctx.secrets.authenticate(credentials.username, credentials.password)


@dataclass(frozen=True)
class WorkerToken:
    """A worker token whose signature and expiry were checked. Whether its worker may still
    act is a read of the worker row: ``worker_of`` does it in the transaction that acts."""

    worker_id: int
    sub: str
    generation: int


NOT_ACTIVE = "This worker account is not active any more."


async def worker_token(
    ctx: Ctx, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> WorkerToken:
    """The caller's worker token, checked without the database (on the event loop)."""
    if credentials is None:
        raise AuthenticationError("Sign in first: this call needs a worker token (Bearer).")
    payload = verify_token(worker_token_key(ctx), credentials.credentials, now_ms=ctx.clock.now_ms())
    return WorkerToken(payload["wid"], payload["sub"], payload.get("gen", 0))  # every token of ours has both


def worker_of(session: Session, token: WorkerToken) -> Worker | None:
    """The token's worker, read in ``session``, if the account is active and the token was
    not ended since (signed out everywhere, password changed); else None."""
    worker = session.get(Worker, token.worker_id)
    if (
        worker is None
        or worker.status != "active"
        or worker.sub != token.sub
        or worker.token_generation != token.generation
    ):
        return None
    return worker


def signed_in_worker(ctx: Ctx, token: Annotated[WorkerToken, Depends(worker_token)]) -> Worker:
    with ctx.db.read() as session:
        worker = worker_of(session, token)
    if worker is None:
        raise AuthenticationError(NOT_ACTIVE)
    return worker


async def precheck(ctx: Services, authorization: str) -> None:
    """Whether the Authorization header carries credentials of either kind that are valid
    now (an access key, or an unexpired worker token): checked before a request body is
    read. The route's own dependency then checks the kind it needs and the account."""
    scheme, _, value = authorization.partition(" ")
    scheme = scheme.lower()
    if scheme == "basic":
        try:
            key_id, sep, secret = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            sep = ""
        if sep:
            if not ctx.secrets.is_cached(key_id):
                await run_in_threadpool(ctx.secrets.secret, key_id)
            ctx.secrets.authenticate(key_id, secret)
            return
    elif scheme == "bearer" and value.strip():
        verify_token(worker_token_key(ctx), value.strip(), now_ms=ctx.clock.now_ms())
        return
    raise AuthenticationError("This call needs credentials: an access key (HTTP Basic) or a worker token (Bearer).")


Admin = Annotated[str, Depends(admin)]
SignedInWorker = Annotated[Worker, Depends(signed_in_worker)]
# For the hot paths (claim, submit): the token only; the worker is read in their transaction.
SignedInToken = Annotated[WorkerToken, Depends(worker_token)]


def worker_token_key(ctx: Services) -> bytes:
    return derive_key(ctx.settings.secret_key, "loopin-worker-token")
