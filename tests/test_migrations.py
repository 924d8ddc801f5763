"""Migration 0011 (deadlines and priorities) on a database that already holds waiting
work, both ways, on SQLite and PostgreSQL; and the migrated schema matches the models."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text

from loopin.db import MIGRATIONS_DIR
from loopin.loops import PRIORITY_POINT_MS
from loopin.models import Base


@pytest.fixture
def empty_url(request: pytest.FixtureRequest, tmp_path: Path, database_url: str) -> str:
    """A database with no tables yet (the conftest copies are migrated already)."""
    if database_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'empty.db'}"
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return database_url


def _migrate(url: str, target: str, *, down: bool = False) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, target)
    engine.dispose()


def test_0011_ranks_waiting_tasks_and_goes_back_down(empty_url: str) -> None:
    _migrate(empty_url, "0006")
    engine = create_engine(empty_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO workteams VALUES (1, 't', 'd', 0, 0)"))
        conn.execute(text("INSERT INTO task_uis VALUES (1, 'u', 'c', 'x', 0)"))
        conn.execute(
            text(
                "INSERT INTO flow_definitions (id, name, team_id, task_ui_id, title, description, keywords, "
                "task_count, availability_lifetime_s, time_limit_s, output_path, created_at) "
                "VALUES (1, 'f', 1, 1, 't', 'd', '[]', 1, 3600, 60, 's3://b/p', 0)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO human_loops (id, name, flow_id, status, input_content, input_sha256, created_at, "
                "expires_at, output_state, output_attempts) VALUES (7, 'l', 1, 'InProgress', '{}', 'x', "
                "5000000, 9000000, 'none', 0)"
            )
        )
        conn.execute(
            text("INSERT INTO task_slots (loop_id, flow_id, slot_index, status) VALUES (7, 1, 0, 'available')")
        )
    engine.dispose()
    _migrate(empty_url, "head")
    engine = create_engine(empty_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT queue_rank FROM task_slots")).scalar_one() == 5000000 - 50 * PRIORITY_POINT_MS
        flow = conn.execute(text("SELECT default_priority, deadline_s, fallback FROM flow_definitions")).one()
        assert tuple(flow) == (50, None, "fail")
        assert conn.execute(text("SELECT priority FROM human_loops")).scalar_one() == 50
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert [d for d in diff if "ix_" not in repr(d) and "ux_" not in repr(d)] == []
    _migrate(empty_url, "0006", down=True)
    _migrate(empty_url, "head")
