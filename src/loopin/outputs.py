"""Writing a loop's ``output.json`` once its answers are all in (``output_state='pending'``).

A domain call that makes a loop pending records it in its session
(``loops.note_output_due``); the services' write paths claim those loops and build their
documents in that same transaction (``claim_due``), write the files right after the commit
and mark the loops in one more transaction (``write_claimed``; after
``Services.write_grouped`` it joins the group commit too). The background runner retries
whatever is still pending (the store was down, the process died in between). The file is
written outside any transaction and the loop is marked afterwards, so a crash in between
only means the (identical) file is written once more.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy.orm import Session

from loopin import flow_cache
from loopin.config import Settings
from loopin.errors import LoopinError
from loopin.loops import (
    OutputDocument,
    build_output,
    claim_pending_outputs,
    complete_output,
    output_failed,
    output_uri_for,
    take_outputs_due,
)
from loopin.models import HumanLoop

if TYPE_CHECKING:
    from loopin.services import Services

T = TypeVar("T")
log = logging.getLogger("loopin.outputs")
# How long one process may spend writing an output before another process retries it.
OUTPUT_CLAIM_MS = 60_000
MAX_BACKOFF_MS = 300_000


@dataclass(frozen=True)
class Claimed:
    """A loop's output.json to write: this process claimed it (``output_attempts`` counts
    this attempt) and built its document."""

    loop_id: int
    attempts: int
    uri: str
    output: OutputDocument


def _claim(session: Session, settings: Settings, loop: HumanLoop) -> Claimed:
    flow = flow_cache.get_flow_by_id(session, loop.flow_id)
    output = build_output(
        session, loop, flow_arn=settings.arn("flow-definition", flow.name), issuer=settings.resolved_public_url
    )
    return Claimed(loop.id, loop.output_attempts, output_uri_for(flow, loop), output)


def claim_due(session: Session, settings: Settings, *, now_ms: int) -> list[Claimed]:
    """In the transaction that made loops pending (``loops.note_output_due``), before it
    commits: claim them and build their documents, so that writing them after the commit
    needs no transaction of its own to claim them. A document that fails to build is left
    unclaimed (and logged): the background runner retries it, and the change that made the
    loop pending still commits."""
    claimed = []
    for loop_id in sorted(take_outputs_due(session)):
        loop = session.get(HumanLoop, loop_id)  # loaded by the change that made it pending
        if loop is None or loop.output_state != "pending" or (loop.output_next_attempt_at or 0) > now_ms:
            continue
        try:
            work = _claim(session, settings, loop)
        except Exception:
            log.exception("building the output of loop %s failed; the background runner will retry", loop.name)
            continue
        loop.output_attempts += 1
        loop.output_next_attempt_at = now_ms + OUTPUT_CLAIM_MS
        claimed.append(Claimed(work.loop_id, loop.output_attempts, work.uri, work.output))
    return claimed


def write_pending_outputs(ctx: Services, *, limit: int = 100) -> int:
    """Write the output.json of loops whose answers are all in (the background runner's
    round); returns how many succeeded."""
    now = ctx.clock.now_ms()

    def claim(session: Session) -> list[Claimed]:
        loops = claim_pending_outputs(session, now_ms=now, retry_after_ms=OUTPUT_CLAIM_MS, limit=limit)
        return [_claim(session, ctx.settings, loop) for loop in loops]

    with ctx.db.write() as session:
        work = claim(session)
    return _write(ctx, work, grouped=False)


def write_claimed(ctx: Services, work: Sequence[Claimed], *, grouped: bool = False) -> int:
    """Write the files of outputs claimed by ``claim_due`` right after its commit, instead
    of at the next background round. If the store is down this only logs: the loops stay
    pending and the background runner retries. ``grouped``: the transaction that marks the
    loops joins the process's group commit (``Services.write_grouped``), as the hot paths
    that made the loops due do."""
    try:
        return _write(ctx, work, grouped=grouped)
    except Exception:  # the request that made them pending has succeeded already
        log.exception(
            "writing the outputs of loops %s failed; the background runner will retry", [w.loop_id for w in work]
        )
        return 0


def _write(ctx: Services, work: Sequence[Claimed], *, grouped: bool) -> int:
    def write(fn: Callable[[Session], T]) -> T:
        if grouped:
            return ctx.write_grouped(fn)
        with ctx.db.write() as session:
            return fn(session)

    written = 0
    for item in work:
        try:
            ctx.store.put(item.uri, item.output.body, content_type="application/json")
        except LoopinError as exc:
            log.warning("output %s not written (attempt %d): %s", item.uri, item.attempts, exc)
            backoff = min(MAX_BACKOFF_MS, 1000 * 2 ** min(item.attempts, 16))
            with ctx.db.write() as session:
                output_failed(
                    session,
                    item.loop_id,
                    error=str(exc),
                    next_attempt_ms=ctx.clock.now_ms() + random.randint(backoff // 2, backoff),
                )
            continue
        write(
            partial(
                complete_output,
                loop_id=item.loop_id,
                uri=item.uri,
                now_ms=ctx.clock.now_ms(),
                event_data=item.output.event_data,
            )
        )
        written += 1
    return written
