"""Periodic work, idempotent and safe when several server processes run it at once:
endpoint deployment, lease expiry, availability expiry, deadline fallbacks, (re)writing
pending outputs and webhook delivery; export jobs and batch jobs in threads of their own
(they run for minutes)."""

from __future__ import annotations

import logging
import random
import threading
import time

from sqlalchemy import event
from sqlalchemy.orm import Session

from loopin.batch import new_owner, run_next
from loopin.deadlines import fall_back_overdue
from loopin.endpoints import deploy_pending
from loopin.events import NEW_EVENTS
from loopin.exports import run_pending_exports
from loopin.outputs import write_pending_outputs
from loopin.services import Services
from loopin.tasks import expire_leases, expire_loops
from loopin.webhooks import deliver_due

log = logging.getLogger("loopin.background")
WAKE_SPACING_SECONDS = 0.05


def run_once(ctx: Services) -> dict[str, int]:
    """One round of every periodic duty; the counts of what each did."""
    deployed = deploy_pending(ctx)
    with ctx.db.write() as session:
        leases = expire_leases(session, now_ms=ctx.clock.now_ms())
    with ctx.db.write() as session:  # before expiry: a deadline is never later than the lifetime
        fallbacks = fall_back_overdue(session, now_ms=ctx.clock.now_ms())
    with ctx.db.write() as session:
        expired = expire_loops(session, now_ms=ctx.clock.now_ms())
    outputs = write_pending_outputs(ctx)
    delivered = deliver_due(ctx)
    return {
        "endpoints_deployed": deployed,
        "leases_expired": leases,
        "loops_expired": expired,
        "deadline_fallbacks": fallbacks,
        "outputs_written": outputs,
        "webhooks_delivered": delivered,
    }


class BackgroundRunner:
    """Runs ``run_once`` every ``settings.job_interval_seconds`` in a daemon thread, and at
    once when this process commits a new event (so webhooks do not wait for the next round).
    Export jobs, which run for minutes, have a thread of their own that claims one at a time."""

    def __init__(self, ctx: Services) -> None:
        self._ctx = ctx
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="loopin-background", daemon=True)
        self._exports = threading.Thread(target=self._export_loop, name="loopin-exports", daemon=True)
        self._batch_thread = threading.Thread(target=self._batch_loop, name="loopin-batch-runner", daemon=True)
        self._owner = new_owner()

    def start(self) -> None:
        event.listen(Session, "after_commit", self._after_commit)
        self._thread.start()
        self._exports.start()
        self._batch_thread.start()

    def stop(self) -> None:
        event.remove(Session, "after_commit", self._after_commit)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)
        self._exports.join(timeout=1)  # an export in progress is left to its lease
        self._batch_thread.join(timeout=10)

    def _after_commit(self, session: Session) -> None:
        if session.info.pop(NEW_EVENTS, False):
            self._wake.set()

    def _export_loop(self) -> None:
        interval = self._ctx.settings.job_interval_seconds
        while not self._stop.is_set():
            try:
                if run_pending_exports(self._ctx):
                    continue
            except Exception:
                log.exception("running an export failed; retrying next round")
            self._stop.wait(interval * random.uniform(0.8, 1.2))

    def _loop(self) -> None:
        interval = self._ctx.settings.job_interval_seconds
        next_full = 0.0
        while not self._stop.is_set():
            woken = self._wake.wait(max(0.0, next_full - time.monotonic()))
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                if woken and time.monotonic() < next_full:
                    # A new event: deliver it now, leave the other duties to their round.
                    deliver_due(self._ctx)
                    time.sleep(WAKE_SPACING_SECONDS)  # under load, one delivery round per spacing
                    continue
                run_once(self._ctx)
            except Exception:  # periodic work must never take the server down; log and go on
                log.exception("periodic work failed; retrying next round")
            next_full = time.monotonic() + interval * random.uniform(0.8, 1.2)

    def _batch_loop(self) -> None:
        """Batch jobs, one at a time per process: claim one (waiting, or abandoned by a process
        whose lease ran out), run it to its end, look for the next."""
        interval = self._ctx.settings.job_interval_seconds
        while not self._stop.is_set():
            try:
                ran = run_next(self._ctx, owner=self._owner, stop=self._stop)
            except Exception:  # a store outage: the job's lease is released, the next round retries
                log.exception("batch job failed; retrying next round")
                ran = None
            if ran is None:
                self._stop.wait(interval * random.uniform(0.8, 1.2))
