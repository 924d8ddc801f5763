"""What the server's layers share: the database, the object store, settings and clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from loopin.access_keys import SecretCache
from loopin.clock import Clock
from loopin.config import Settings
from loopin.db import Database
from loopin.errors import ConflictError
from loopin.model_host import ModelHost
from loopin.store import ObjectStore

T = TypeVar("T")


@dataclass(frozen=True)
class Services:
    db: Database
    store: ObjectStore
    settings: Settings
    clock: Clock
    models: ModelHost  # the detectors this process serves
    secrets: SecretCache  # access-key secrets, cached for a few seconds

    def write(self, fn: Callable[[Session], T], *, attempts: int = 3) -> T:
        """Run ``fn`` in a write transaction, retrying races the database detected
        (a unique key taken meanwhile, a deadlock victim). The domain re-checks on retry
        and then answers with a proper error."""
        for attempt in range(attempts):
            try:
                with self.db.write() as session:
                    return fn(session)
            except IntegrityError as exc:
                if attempt == attempts - 1:
                    raise ConflictError("The request conflicted with a concurrent change; try again.") from exc
            except DBAPIError as exc:
                if not _is_retryable(exc) or attempt == attempts - 1:
                    raise
            time.sleep(0.005 * (attempt + 1))
        raise AssertionError("unreachable")


def _is_retryable(exc: DBAPIError) -> bool:
    # PostgreSQL: 40P01 deadlock detected, 40001 serialization failure.
    code = getattr(exc.orig, "sqlstate", None)
    return code in ("40P01", "40001")
