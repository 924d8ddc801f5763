"""Group commit for the hot write paths (loop starts, task claims and submits).

The request threads of one process hand their write to one writer thread, which runs
everything waiting in a single transaction, one after the other, and commits once; each
request is answered only after that commit (acknowledged still means durable). What a
transaction costs besides its own statements (BEGIN, the counter upserts and the event
wake-up at commit, the fsync) is then paid once per group instead of once per request,
and the process's hot-path writers never wait on each other in SQLite's busy handler.

If anything in a group fails, the transaction is rolled back and every request of the
group runs again on its own (``Services.write``), so only the failing one fails, with the
error it would have had alone. A domain call must therefore be safe to run again, which
``Services.write``'s retries already require.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy.orm import Session

from loopin.db import Database
from loopin.errors import LoopinError

T = TypeVar("T")
log = logging.getLogger("loopin.group_commit")
MAX_GROUP = 64  # requests per transaction: bounds how long the first of them waits


class RunAlone(Exception):
    """The group this request was in failed: run it again in a transaction of its own."""


@dataclass(frozen=True)
class Committed(Generic[T]):
    result: T
    after: Any  # what ``before_commit`` returned for this request


@dataclass
class _Request:
    fn: Callable[[Session], Any]
    done: Future[Committed[Any]] = field(default_factory=Future)


class GroupWriter:
    def __init__(self, db: Database, *, before_commit: Callable[[Session], Any]) -> None:
        """``before_commit`` runs in the transaction after each request (the outputs it made
        due are claimed there); what it returns is handed back with the request's result."""
        self._db = db
        self._before_commit = before_commit
        self._queue: queue.SimpleQueue[_Request] = queue.SimpleQueue()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, fn: Callable[[Session], T]) -> Future[Committed[T]]:
        """Run ``fn`` in the next group's transaction (writes submitted together share
        one); the future is done once it committed, or raises ``RunAlone`` when the group
        failed (nothing of ``fn`` was kept)."""
        self._ensure_thread()
        request = _Request(fn)
        self._queue.put(request)
        return request.done

    def _ensure_thread(self) -> None:
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._loop, name="loopin-group-commit", daemon=True)
                    self._thread.start()

    def _loop(self) -> None:
        while True:
            group = [self._queue.get()]
            while len(group) < MAX_GROUP:
                try:
                    group.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._commit(group)

    def _commit(self, group: list[_Request]) -> None:
        outcomes: list[Committed[Any]] = []
        try:
            with self._db.write() as session:
                for request in group:
                    result = request.fn(session)
                    session.flush()  # the next request sees this one's rows, as if run after it
                    outcomes.append(Committed(result, self._before_commit(session)))
        except LoopinError as exc:
            if len(group) == 1:  # a domain error of a request that was alone: its answer
                group[0].done.set_exception(exc)
                return
            self._run_alone(group, exc)
            return
        except Exception as exc:
            self._run_alone(group, exc)
            return
        for request, outcome in zip(group, outcomes, strict=True):
            request.done.set_result(outcome)

    def _run_alone(self, group: list[_Request], exc: Exception) -> None:
        """The group was rolled back: each request runs again in a transaction of its own."""
        log.debug("a group of %d writes failed (%r); running each alone", len(group), exc)
        for request in group:
            request.done.set_exception(RunAlone())
