"""What the server's layers share (the database, the object store, settings, clock, the
models this process serves), how they are opened, and the one write path that commits a
change and then finishes what the commit made due (loop outputs)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from loopin.access_keys import SecretCache
from loopin.clock import Clock, SystemClock
from loopin.config import Settings
from loopin.db import Database
from loopin.errors import ConflictError, LoopinError
from loopin.group_commit import Committed, GroupWriter, RunAlone
from loopin.model_host import ModelHost
from loopin.outputs import claim_due, write_claimed
from loopin.store import LocalStore, ObjectStore, open_store

T = TypeVar("T")


@dataclass(frozen=True)
class Services:
    db: Database
    store: ObjectStore
    settings: Settings
    clock: Clock
    models: ModelHost  # the detectors this process serves
    secrets: SecretCache  # access-key secrets, cached for a few seconds
    group: GroupWriter  # the hot paths' group commit (see ``write_grouped``)

    @property
    def default_input_locations(self) -> list[str] | None:
        """Where the tasks of a flow without input locations of its own may point: with the
        local store and no setting, anywhere outside the output locations (None: each of its
        buckets was made through loopin); else the setting's locations and the routed
        images' bucket, which loopin uploads to itself (and the flow's own output bucket:
        see ``flows.may_grant``)."""
        if not self.settings.input_locations and isinstance(self.store, LocalStore):
            return None
        bucket = self.settings.routing_image_location.removeprefix("s3://").partition("/")[0]
        return [*self.settings.input_locations, f"s3://{bucket}"]

    def write(self, fn: Callable[[Session], T], *, attempts: int = 3) -> T:
        """Run ``fn`` in a write transaction, retrying races the database detected
        (a unique key taken meanwhile, a deadlock victim). The domain re-checks on retry
        and then answers with a proper error. Outputs the change made due are claimed in
        its transaction and written after the commit, before this returns."""
        for attempt in range(attempts):
            try:
                with self.db.write() as session:
                    result = fn(session)
                    claimed = claim_due(session, self.settings, now_ms=self.clock.now_ms())
                if claimed:
                    write_claimed(self, claimed)
                return result
            except IntegrityError as exc:
                if attempt == attempts - 1:
                    raise ConflictError("The request conflicted with a concurrent change; try again.") from exc
            except DBAPIError as exc:
                if not _is_retryable(exc) or attempt == attempts - 1:
                    raise
            time.sleep(0.005 * (attempt + 1))
        raise AssertionError("unreachable")

    def write_grouped(self, fn: Callable[[Session], T]) -> T:
        """``write`` for the hot paths (loop starts, task claims and submits): ``fn`` runs
        in one transaction together with whatever else this process is writing this way at
        the moment, and returns once that transaction committed (``loopin.group_commit``).
        ``fn`` must not call ``write`` or ``write_grouped`` itself."""
        return self._grouped(self.group.submit(fn), fn)

    async def write_grouped_async(self, fn: Callable[[Session], T]) -> T:
        """``write_grouped`` for a request handler on the event loop: it waits for the
        commit without holding a thread of the pool (the rare run alone, after a group
        failed, and the outputs the change made due are written in a thread)."""
        future = self.group.submit(fn)
        try:
            committed = await asyncio.wrap_future(future)
        except RunAlone:
            return await asyncio.to_thread(self.write, fn)
        if committed.after:
            await asyncio.to_thread(write_claimed, self, committed.after, grouped=True)
        return committed.result

    def write_grouped_each(self, fns: Sequence[Callable[[Session], T]]) -> list[T | LoopinError]:
        """``write_grouped`` for several writes handed over at once, so they share a
        transaction (a batch job's images): each one's result, or the domain error it
        failed with on its own (the others are kept)."""
        futures = [self.group.submit(fn) for fn in fns]
        outcomes: list[T | LoopinError] = []
        for future, fn in zip(futures, fns, strict=True):
            try:
                outcomes.append(self._grouped(future, fn))
            except LoopinError as exc:
                outcomes.append(exc)
        return outcomes

    def _grouped(self, future: Future[Committed[T]], fn: Callable[[Session], T]) -> T:
        try:
            committed = future.result()
        except RunAlone:
            return self.write(fn)
        if committed.after:
            write_claimed(self, committed.after, grouped=True)
        return committed.result


def build_services(settings: Settings, *, clock: Clock | None = None) -> Services:
    """Open the database (migrated) and the object store for these settings."""
    settings = settings.ensure_secret_key()
    db = Database(settings.resolved_database_url, pool_size=settings.db_pool_size)
    db.upgrade()
    store = open_store(settings)
    clock = clock or SystemClock()
    return Services(
        db=db,
        store=store,
        settings=settings,
        clock=clock,
        models=ModelHost(
            store,
            inference_threads=settings.inference_threads,
            max_model_bytes=settings.max_model_bytes,
            model_load_timeout_s=settings.model_load_timeout_seconds,
            model_load_memory_bytes=settings.model_load_memory_bytes,
            max_image_pixels=settings.max_image_pixels,
            concurrent_decodes=settings.image_decode_concurrency,
        ),
        secrets=SecretCache(db, settings.secret_key, clock),
        group=GroupWriter(db, before_commit=lambda session: claim_due(session, settings, now_ms=clock.now_ms())),
    )


def _is_retryable(exc: DBAPIError) -> bool:
    # PostgreSQL: 40P01 deadlock detected, 40001 serialization failure.
    code = getattr(exc.orig, "sqlstate", None)
    return code in ("40P01", "40001")
