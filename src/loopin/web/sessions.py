"""Console sessions (worker console and admin console): signed session cookies, CSRF tokens
bound to them, and a rate limit on sign-in.

A session is a signed, expiring token in an HttpOnly cookie naming the account, a random
session id and the account's session generation; nothing else is stored on the server, so
any number of processes can check it. The account's row is read on every request, so
disabling a worker or an admin ends their sessions at once, and signing out (which moves
the generation on) ends every session of the account for good. Each console signs with
keys derived for its own purpose, so a worker's cookie is never an admin's. A CSRF token
is an HMAC of the session id under a key of its own; forms shown before sign-in are bound
to a random "pre-session" cookie the same way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
from collections import deque
from dataclasses import dataclass

from loopin import sign_in_limits
from loopin.db import Database
from loopin.errors import AuthenticationError
from loopin.signing import derive_key, sign_token, verify_token

SESSION_COOKIE = "loopin_session"
PRE_SESSION_COOKIE = "loopin_pre"


@dataclass(frozen=True)
class ConsoleSession:
    account_id: int  # a worker's or an admin's row id, by the console
    sub: str
    sid: str
    gen: int = 0  # the account's session generation when it was issued


class SessionKeys:
    """Issues and checks session cookies and CSRF tokens for one secret key and one
    console (``purpose``: "console" for workers, "admin" for admins)."""

    def __init__(self, secret_key: str, *, ttl_seconds: int, purpose: str = "console") -> None:
        self._session_key = derive_key(secret_key, f"loopin-{purpose}-session")
        self._csrf_key = derive_key(secret_key, f"loopin-{purpose}-csrf")
        self.ttl_seconds = ttl_seconds

    def issue(self, *, account_id: int, sub: str, gen: int = 0, now_ms: int) -> str:
        payload = {"wid": account_id, "sub": sub, "sid": secrets.token_urlsafe(16), "gen": gen}
        return sign_token(self._session_key, payload, expires_ms=now_ms + self.ttl_seconds * 1000)

    def read(self, cookie: str | None, *, now_ms: int) -> ConsoleSession | None:
        if not cookie:
            return None
        try:
            payload = verify_token(self._session_key, cookie, now_ms=now_ms)
        except AuthenticationError:
            return None
        wid, sub, sid, gen = payload.get("wid"), payload.get("sub"), payload.get("sid"), payload.get("gen", 0)
        if not (isinstance(wid, int) and isinstance(sub, str) and isinstance(sid, str) and isinstance(gen, int)):
            return None
        return ConsoleSession(account_id=wid, sub=sub, sid=sid, gen=gen)

    def csrf_token(self, bound_to: str) -> str:
        """The form token for a session id (or a pre-session cookie value)."""
        digest = hmac.new(self._csrf_key, bound_to.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def check_csrf(self, bound_to: str | None, token: str | None) -> bool:
        if not bound_to or not token:
            return False
        return hmac.compare_digest(self.csrf_token(bound_to).encode(), token.encode())


def new_pre_session() -> str:
    return secrets.token_urlsafe(24)


class SignInLimiter:
    """Counts failed sign-ins per e-mail address and per client address in a sliding
    window and refuses further attempts while either is over its limit.

    With ``db`` (what the server uses) the counts are kept in the database
    (``loopin.sign_in_limits``): every sign-in path and every server process counts against
    the same numbers, and a restart forgets nothing. Without it they live in this object
    (a single process; tests of the semantics).
    """

    def __init__(
        self,
        *,
        per_email: int = sign_in_limits.PER_EMAIL,
        per_client: int = sign_in_limits.PER_CLIENT,
        window_ms: int = sign_in_limits.WINDOW_MS,
        max_keys: int = 100_000,
        db: Database | None = None,
    ) -> None:
        self._db = db
        self.per_email = per_email
        self.per_client = per_client
        self.window_ms = window_ms
        self._max_keys = max_keys
        self._failures: dict[str, deque[int]] = {}
        self._lock = threading.Lock()

    def begin_attempt(self, *, email: str, client: str, now_ms: int) -> int:
        """0 if an attempt is allowed now, and then it counts as a failure until
        ``record_success`` says otherwise; else the seconds until one is allowed.

        Counting before the password is checked means parallel guesses cannot slip past
        the limit while the (slow) hash runs. With a database this blocks: call it from a
        worker thread."""
        if self._db is not None:
            with self._db.write() as session:
                return sign_in_limits.begin_attempt(
                    session,
                    email=email,
                    client=client,
                    now_ms=now_ms,
                    per_email=self.per_email,
                    per_client=self.per_client,
                    window_ms=self.window_ms,
                )
        keys = ((_email_key(email), self.per_email), ("ip:" + client, self.per_client))
        with self._lock:
            wait = max(self._wait(key, limit, now_ms) for key, limit in keys)
            if wait:
                return wait
            if len(self._failures) >= self._max_keys:
                self._sweep(now_ms)
            for key, _ in keys:
                self._failures.setdefault(key, deque()).append(now_ms)
        return 0

    def record_success(self, *, email: str, client: str) -> None:
        """The attempt succeeded: the address's failures are forgotten, and this attempt
        no longer counts against the client."""
        if self._db is not None:
            with self._db.write() as session:
                sign_in_limits.record_success(session, email=email, client=client)
            return
        with self._lock:
            self._failures.pop(_email_key(email), None)
            attempts = self._failures.get("ip:" + client)
            if attempts:
                attempts.pop()

    def _wait(self, key: str, limit: int, now_ms: int) -> int:
        times = self._failures.get(key)
        if times is None:
            return 0
        while times and times[0] <= now_ms - self.window_ms:
            times.popleft()
        if not times:
            del self._failures[key]
            return 0
        if len(times) < limit:
            return 0
        return max(1, -(-(times[-limit] + self.window_ms - now_ms) // 1000))

    def _sweep(self, now_ms: int) -> None:
        for key in list(self._failures):
            self._wait(key, 1, now_ms)
        if len(self._failures) >= self._max_keys:  # still full of live entries: forget the oldest
            for key in list(self._failures)[: self._max_keys // 10]:
                del self._failures[key]


def _email_key(email: str) -> str:
    return "email:" + email.strip().lower()
