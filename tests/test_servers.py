"""The test harness's own promise: servers started by a test die with the test run, even
when it is killed with SIGKILL (nothing left listening, nothing left writing)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
RUN_AND_HANG = """
import sys, time
from pathlib import Path
from tests.servers import loopin_env, serve
data = Path(sys.argv[1])
with serve(loopin_env(data / "data", f"sqlite:///{data / 'loopin.db'}")) as url:
    print(url, flush=True)
    time.sleep(600)
"""

pytestmark = pytest.mark.slow


def test_a_server_dies_with_a_test_run_killed_by_sigkill(tmp_path: Path) -> None:
    run = subprocess.Popen(
        [sys.executable, "-c", RUN_AND_HANG, str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert run.stdout is not None
        url = run.stdout.readline().strip()
        assert url.startswith("http://"), url
        assert httpx.get(url + "/healthz", timeout=5).status_code == 200
        os.kill(run.pid, signal.SIGKILL)
        run.wait(timeout=10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(url + "/healthz", timeout=1)
            except httpx.TransportError:
                return  # gone
            time.sleep(0.2)
        pytest.fail(f"the server at {url} outlived the killed test run")
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        if run.stdout is not None:
            run.stdout.close()


def test_a_served_process_keeps_what_it_made_at_start_out_of_the_collectors_sight(tmp_path: Path) -> None:
    """``loopin serve``'s app factory freezes the objects of start-up and collects less
    often (the collector's pauses were a loaded server's latency tail)."""
    from tests.servers import loopin_env

    probe = (
        "import gc; from loopin.web.server import GC_THRESHOLDS, app_factory; app_factory(); "
        "print(gc.get_threshold() == GC_THRESHOLDS, gc.get_freeze_count() > 10_000)"
    )
    env = loopin_env(tmp_path / "data", f"sqlite:///{tmp_path / 'loopin.db'}")
    run = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.stdout.split() == ["True", "True"], run.stderr
