"""The sign-in rate limit, kept in the database so that every server process (and every
sign-in path: worker console, admin console, API) counts against the same numbers, and a
restart forgets nothing.

Failed sign-ins are counted per e-mail address and per client address in a sliding window;
while either is over its limit further attempts are refused. An attempt counts as a
failure from the moment it begins (parallel guesses cannot slip past the limit while the
slow password hash runs) until ``record_success`` says otherwise. Each function runs in the
caller's transaction; ``begin_attempt`` must be committed before the password is checked.
"""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from loopin.models import SignInFailure

PER_EMAIL = 5
PER_CLIENT = 50
WINDOW_MS = 15 * 60_000


def begin_attempt(
    session: Session,
    *,
    email: str,
    client: str,
    now_ms: int,
    per_email: int = PER_EMAIL,
    per_client: int = PER_CLIENT,
    window_ms: int = WINDOW_MS,
) -> int:
    """0 if an attempt is allowed now (it is recorded as a failure); else the seconds until
    one is allowed."""
    keys = sorted(((email_key(email), per_email), (client_key(client), per_client)))
    if session.get_bind().dialect.name == "postgresql":  # SQLite serialises write transactions
        for key, _ in keys:
            session.execute(select(func.pg_advisory_xact_lock(func.hashtext(key))))
    cutoff = now_ms - window_ms
    session.execute(delete(SignInFailure).where(SignInFailure.at_ms <= cutoff))
    wait = 0
    for key, limit in keys:
        recent = session.scalars(
            select(SignInFailure.at_ms)
            .where(SignInFailure.key == key, SignInFailure.at_ms > cutoff)
            .order_by(SignInFailure.at_ms.desc(), SignInFailure.id.desc())
            .limit(limit)
        ).all()
        if len(recent) >= limit:
            wait = max(wait, max(1, -(-(recent[limit - 1] + window_ms - now_ms) // 1000)))
    if wait:
        return wait
    session.add_all(SignInFailure(key=key, at_ms=now_ms) for key, _ in keys)
    session.flush()
    return 0


def record_success(session: Session, *, email: str, client: str) -> None:
    """The attempt succeeded: the address's failures are forgotten, and this attempt no
    longer counts against the client."""
    session.execute(delete(SignInFailure).where(SignInFailure.key == email_key(email)))
    newest = session.scalar(
        select(SignInFailure.id).where(SignInFailure.key == client_key(client)).order_by(SignInFailure.id.desc())
    )
    if newest is not None:
        session.execute(delete(SignInFailure).where(SignInFailure.id == newest))


def email_key(email: str) -> str:
    return ("email:" + email.strip().lower())[:300]


def client_key(client: str) -> str:
    return ("ip:" + client)[:300]
