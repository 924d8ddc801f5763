"""Writing a loop's ``output.json`` once its answers are all in (``output_state='pending'``).

A domain call that makes a loop pending records it in its session
(``loops.note_output_due``); the services' write path writes those outputs right after the
commit (``Services.write``; after ``Services.write_grouped`` the two transactions around
the file join the group commit too), and the background runner retries whatever is still
pending (the store was down, the process died in between). The file is written outside any
transaction and the loop is marked afterwards, so a crash in between only means the
(identical) file is written once more.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy.orm import Session

from loopin.errors import LoopinError
from loopin.loops import (
    OutputDocument,
    build_output,
    claim_pending_outputs,
    complete_output,
    output_failed,
    output_uri_for,
)
from loopin.models import FlowDefinition

if TYPE_CHECKING:
    from loopin.services import Services

T = TypeVar("T")
log = logging.getLogger("loopin.outputs")
# How long one process may spend writing an output before another process retries it.
OUTPUT_CLAIM_MS = 60_000
MAX_BACKOFF_MS = 300_000


def write_pending_outputs(
    ctx: Services, *, loop_ids: Sequence[int] = (), limit: int = 100, grouped: bool = False
) -> int:
    """Write the output.json of loops whose answers are all in; returns how many succeeded.
    ``grouped``: the two transactions around the file join the process's group commit
    (``Services.write_grouped``), as the hot paths that made the loops due do."""
    now = ctx.clock.now_ms()

    def claim(session: Session) -> list[tuple[int, int, str, OutputDocument]]:
        loops = claim_pending_outputs(
            session, now_ms=now, retry_after_ms=OUTPUT_CLAIM_MS, limit=limit, loop_ids=loop_ids
        )
        work = []
        for loop in loops:
            flow = session.get_one(FlowDefinition, loop.flow_id)
            flow_arn = ctx.settings.arn("flow-definition", flow.name)
            output = build_output(session, loop, flow_arn=flow_arn, issuer=ctx.settings.resolved_public_url)
            work.append((loop.id, loop.output_attempts, output_uri_for(flow, loop), output))
        return work

    def write(fn: Callable[[Session], T]) -> T:
        if grouped:
            return ctx.write_grouped(fn)
        with ctx.db.write() as session:
            return fn(session)

    work = write(claim)
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
        write(
            partial(complete_output, loop_id=loop_id, uri=uri, now_ms=ctx.clock.now_ms(), event_data=output.event_data)
        )
        written += 1
    return written


def write_outputs_now(ctx: Services, loop_ids: Iterable[int], *, grouped: bool = False) -> int:
    """Write these loops' pending outputs right after the commit that made them pending,
    instead of at the next background round. If the store is down this only logs: the loops
    stay pending and the background runner retries."""
    ids = sorted(loop_ids)
    try:
        return write_pending_outputs(ctx, loop_ids=ids, limit=len(ids), grouped=grouped)
    except Exception:  # the request that made them pending has succeeded already
        log.exception("writing the outputs of loops %s failed; the background runner will retry", ids)
        return 0
