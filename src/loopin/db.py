"""Engine, sessions and migrations.

The caller owns the transaction: ``with db.write() as s: ...`` commits once on success
and rolls back on any error, so a failed request leaves nothing half-written.

SQLite: WAL, a busy timeout, and ``BEGIN IMMEDIATE`` for write transactions so that
concurrent writers queue instead of failing on a stale snapshot. PostgreSQL: READ
COMMITTED plus explicit row locks (``FOR UPDATE``, ``SKIP LOCKED``) where it matters.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from loopin.config import private_dir, private_file

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_PG_MIGRATION_LOCK = 0x6C6F6F70  # "loop": serialises upgrades from several processes


class Database:
    def __init__(self, url: str, *, pool_size: int = 20) -> None:
        self.url = url
        self.dialect = make_url(url).get_backend_name()
        self.engine = _make_engine(url, pool_size=pool_size)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_engine = self.engine.execution_options(sqlite_begin="IMMEDIATE") if self.is_sqlite else self.engine
        self._write_sessions = sessionmaker(self._write_engine, expire_on_commit=False)
        # Re-entrant: a nested write in the same thread behaves as before (SQLite's timeout).
        self._writer: AbstractContextManager[Any] = threading.RLock() if self.is_sqlite else nullcontext()

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A read-write transaction, committed when the block ends without error. On SQLite
        the process's writers queue on a lock first: one writer at a time per process, so
        they wait to be woken rather than polling SQLite's busy handler (sleeps of up to
        100 ms; other processes on the same file still meet it)."""
        with self._writer, self._write_sessions() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction (never commits; closing rolls it back, and the objects
        read stay usable afterwards)."""
        with self._sessions() as session:
            yield session

    def upgrade(self) -> None:
        """Apply all migrations; safe when several processes start at once."""
        if self.is_sqlite:
            sqlite_path = make_url(self.url).database
            if sqlite_path and sqlite_path != ":memory:":
                # SQLite gives its -wal and -shm files the database file's permissions.
                path = Path(sqlite_path)
                private_dir(path.parent)
                private_file(path)
                for extra in ("-wal", "-shm", "-journal"):
                    if Path(sqlite_path + extra).exists():
                        private_file(Path(sqlite_path + extra))
        with self.engine.begin() as conn:
            if not self.is_sqlite:
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            cfg = Config()
            cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def dispose(self) -> None:
        self.engine.dispose()


def _make_engine(url: str, *, pool_size: int) -> Engine:
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=pool_size,
            max_overflow=pool_size,
        )
        _configure_sqlite(engine)
        return engine
    # No pre-ping (a round trip per checkout); connections are recycled, and one that died
    # with the server fails its request once and is replaced.
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_recycle=300)


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling is turned off so that we emit BEGIN ourselves
    # (the SQLAlchemy-documented recipe), which lets write transactions be IMMEDIATE.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")
