"""Real ``loopin serve`` processes for the tests that need them (CLI, concurrency)."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.conftest import _free_port

LOOPIN = [sys.executable, "-m", "loopin.cli"]
PR_SET_PDEATHSIG = 1  # prctl(2)


def loopin_env(data_dir: Path, database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPIN_")}
    env.update(LOOPIN_DATA_DIR=str(data_dir), LOOPIN_DATABASE_URL=database_url, **extra)
    return env


def run_cli(
    env: dict[str, str], *args: str, input: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*LOOPIN, *args], env=env, input=input, capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"loopin {' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result


def create_key(env: dict[str, str]) -> tuple[str, str]:
    key = json.loads(run_cli(env, "keys", "create", "--json").stdout)
    return key["access_key_id"], key["secret_access_key"]


def die_with_parent() -> None:
    """``preexec_fn`` for a server the tests start: Linux sends it SIGTERM when the test
    process dies, even by kill -9, so a killed test run leaves no server behind."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@contextmanager
def serve(env: dict[str, str], *, workers: int = 1, extra: tuple[str, ...] = ()) -> Iterator[str]:
    """Run ``loopin serve`` until the block ends; yields its URL. A free port can be taken by
    another process before the server binds it: then it starts again on another port."""
    for attempt in range(3):
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        log_path = Path(env["LOOPIN_DATA_DIR"]).parent / f"serve-{port}.log"
        with open(log_path, "w") as log:  # a file, not a pipe: a full pipe would block the server
            proc = subprocess.Popen(
                [*LOOPIN, "serve", "--port", str(port), "--workers", str(workers), *extra],
                env={**env, "LOOPIN_PUBLIC_URL": url},
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        try:
            if _started(proc, url, log_path, last_attempt=attempt == 2):
                yield url
                return
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def _started(proc: subprocess.Popen[bytes], url: str, log_path: Path, *, last_attempt: bool) -> bool:
    """True once the server answers; False if it lost its port to another process."""
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        if proc.poll() is not None and "address already in use" in log_path.read_text() and not last_attempt:
            return False
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"loopin serve did not start: {log_path.read_text()}")
        time.sleep(0.1)
