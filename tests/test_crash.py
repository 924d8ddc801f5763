"""The crash test script in its short form (3 SIGKILLs of `loopin serve` under load)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import die_with_parent

pytestmark = pytest.mark.slow


SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "crash_test.py"


def test_nothing_acknowledged_is_lost_across_sigkills(pg_ok: bool) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--short", "--seed", "7"],
        capture_output=True,
        text=True,
        timeout=900,
        preexec_fn=die_with_parent,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "all checks hold" in result.stdout
