"""Dependencies of the native API: the services, and who is calling (an admin with an
access key, or a signed-in worker)."""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasic, HTTPBasicCredentials, HTTPBearer
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


def signed_in_worker(ctx: Ctx, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Worker:
    if credentials is None:
        raise AuthenticationError("Sign in first: this call needs a worker token (Bearer).")
    payload = verify_token(worker_token_key(ctx), credentials.credentials, now_ms=ctx.clock.now_ms())
    with ctx.db.read() as session:
        worker = session.get(Worker, payload.get("wid"))
    if (
        worker is None
        or worker.status != "active"
        or worker.sub != payload.get("sub")
        or worker.token_generation != payload.get("gen", 0)
    ):
        raise AuthenticationError("This worker account is not active any more.")
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


def worker_token_key(ctx: Services) -> bytes:
    return derive_key(ctx.settings.secret_key, "loopin-worker-token")
