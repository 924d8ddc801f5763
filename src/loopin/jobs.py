"""Periodic work, idempotent and safe when several server processes run it at once:
lease expiry, availability expiry and (re)writing pending outputs."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Sequence

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from loopin.arns import arn
from loopin.context import Services
from loopin.endpoints import deploy_pending
from loopin.errors import LoopinError
from loopin.events import NEW_EVENTS
from loopin.loops import (
    build_output,
    claim_pending_outputs,
    complete_output,
    output_failed,
    output_uri_for,
)
from loopin.models import FlowDefinition, HumanLoop
from loopin.tasks import expire_leases, expire_loops
from loopin.webhooks import deliver_due

log = logging.getLogger("loopin.jobs")
# How long one process may spend writing an output before another process retries it.
OUTPUT_CLAIM_MS = 60_000
MAX_BACKOFF_MS = 300_000
WAKE_SPACING_SECONDS = 0.05


def write_pending_outputs(ctx: Services, *, loop_ids: Sequence[int] = (), limit: int = 100) -> int:
    """Write the output.json of loops whose answers are all in; returns how many succeeded.

    The file is written outside any transaction and the loop is marked afterwards, so a
    crash in between only means the (identical) file is written once more later.
    """
    now = ctx.clock.now_ms()
    with ctx.db.write() as session:
        loops = claim_pending_outputs(
            session, now_ms=now, retry_after_ms=OUTPUT_CLAIM_MS, limit=limit, loop_ids=loop_ids
        )
        work = []
        for loop in loops:
            flow = session.get_one(FlowDefinition, loop.flow_id)
            flow_arn = arn(ctx.settings.region, ctx.settings.account_id, "flow-definition", flow.name)
            output = build_output(session, loop, flow_arn=flow_arn, issuer=ctx.settings.resolved_public_url)
            work.append((loop.id, loop.output_attempts, output_uri_for(flow, loop), output))
    written = 0
    for loop_id, attempts, uri, output in work:
        try:
            ctx.store.put(uri, output.body, content_type="application/json")
        except LoopinError as exc:
            log.warning("output %s not written (attempt %d): %s", uri, attempts, exc)
            backoff = min(MAX_BACKOFF_MS, 1000 * 2 ** min(attempts, 16))
            with ctx.db.write() as session:
                output_failed(
                    session,
                    loop_id,
                    error=str(exc),
                    next_attempt_ms=ctx.clock.now_ms() + random.randint(backoff // 2, backoff),
                )
            continue
        with ctx.db.write() as session:
            complete_output(session, loop_id, uri=uri, now_ms=ctx.clock.now_ms(), event_data=output.event_data)
        written += 1
    return written


def write_output_now(ctx: Services, loop_name: str) -> bool:
    """Write a loop's pending output right away instead of at the next job round; True if
    written. If the store is down this only logs: the loop stays pending and the jobs retry.
    """
    with ctx.db.read() as session:
        loop_id = session.scalar(select(HumanLoop.id).where(HumanLoop.name == loop_name))
    if loop_id is None:
        return False
    try:
        return write_pending_outputs(ctx, loop_ids=[loop_id], limit=1) == 1
    except Exception:  # the request that triggered this has succeeded already
        log.exception("writing the output of %s failed; the jobs will retry", loop_name)
        return False


def run_once(ctx: Services) -> dict[str, int]:
    deployed = deploy_pending(ctx)
    with ctx.db.write() as session:
        leases = expire_leases(session, now_ms=ctx.clock.now_ms())
    with ctx.db.write() as session:
        expired = expire_loops(session, now_ms=ctx.clock.now_ms())
    outputs = write_pending_outputs(ctx)
    delivered = deliver_due(ctx)
    return {
        "endpoints_deployed": deployed,
        "leases_expired": leases,
        "loops_expired": expired,
        "outputs_written": outputs,
        "webhooks_delivered": delivered,
    }


class JobRunner:
    """Runs ``run_once`` every ``settings.job_interval_seconds`` in a daemon thread, and at
    once when this process commits a new event (so webhooks do not wait for the next round)."""

    def __init__(self, ctx: Services) -> None:
        self._ctx = ctx
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="loopin-jobs", daemon=True)

    def start(self) -> None:
        event.listen(Session, "after_commit", self._after_commit)
        self._thread.start()

    def stop(self) -> None:
        event.remove(Session, "after_commit", self._after_commit)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)

    def _after_commit(self, session: Session) -> None:
        if session.info.pop(NEW_EVENTS, False):
            self._wake.set()

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
                    # A new event: deliver it now, leave the other jobs to their round.
                    deliver_due(self._ctx)
                    time.sleep(WAKE_SPACING_SECONDS)  # under load, one delivery round per spacing
                    continue
                run_once(self._ctx)
            except Exception:  # a job must never take the server down; log and go on
                log.exception("periodic jobs failed; retrying next round")
            next_full = time.monotonic() + interval * random.uniform(0.8, 1.2)
