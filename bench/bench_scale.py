"""Starts and claims per second: one `loopin serve` process against three behind nginx
(round robin), in the same run, on one PostgreSQL server.

    scripts/test-services.sh && bash scripts/install-nginx.sh
    .venv/bin/python bench/bench_scale.py                    # 15 s per phase, 16 threads
    .venv/bin/python bench/bench_scale.py --seconds 10 --threads 8

Each setup gets a fresh database. Phases, each ``--seconds`` long with ``--threads``
client threads (the SDK over HTTP): **starts** (StartHumanLoop, distinct names), then
**claims** (workers signed in, next task + submit, until the time is up). Order: one
server, three servers, one server again (the machine is shared: the baseline is the mean
of the two one-server runs). All processes run on this machine: three servers on the same
cores measure what the load balancer and the spread cost or gain, not more hardware.
Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from loopin.client import Client, WorkerClient  # noqa: E402
from tests.conftest import _free_port  # noqa: E402
from tests.helpers import PASSWORD, setup_flow  # noqa: E402
from tests.servers import create_key, loopin_env  # noqa: E402
from tests.test_scale import loopin_server, nginx  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextmanager
def database() -> Iterator[str]:
    name = f"loopin_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def setup(tmp: Path, servers: int) -> Iterator[tuple[str, tuple[str, str]]]:
    """``servers`` processes (one: no nginx) on a fresh database; the URL and a key."""
    with ExitStack() as stack:
        db = stack.enter_context(database())
        ports = [_free_port() for _ in range(servers)]
        front = ports[0] if servers == 1 else _free_port()
        url = f"http://127.0.0.1:{front}"
        env = loopin_env(tmp / "data-0", db, LOOPIN_PUBLIC_URL=url, LOOPIN_SECRET_KEY="bench-" + uuid.uuid4().hex)
        key = create_key(env)
        for i, port in enumerate(ports):
            stack.enter_context(loopin_server(env, tmp / f"data-{i}", port))
        if servers > 1:
            stack.enter_context(nginx(tmp / "nginx", ports, front))
        yield url, key


def timed(threads: int, seconds: float, work: Callable[[int, Callable[[], bool]], int]) -> float:
    """Run ``work(thread, still_time)`` in ``threads`` threads; operations per second."""
    counts = [0] * threads
    errors: list[BaseException] = []
    deadline = time.monotonic() + seconds

    def run(t: int) -> None:
        try:
            counts[t] = work(t, lambda: time.monotonic() < deadline)
        except BaseException as exc:
            errors.append(exc)

    start = time.monotonic()
    pool = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    if errors:
        raise errors[0]
    return sum(counts) / (time.monotonic() - start)


def measure(tmp: Path, servers: int, threads: int, seconds: float) -> dict[str, float]:
    with setup(tmp, servers) as (url, key):
        admin = Client(url, access_key_id=key[0], secret_access_key=key[1])
        emails = setup_flow(admin, team="Bench", workers=threads, task_count=1, time_limit=3600)
        admin.close()

        def starts(t: int, still: Callable[[], bool]) -> int:
            done = 0
            with Client(url, access_key_id=key[0], secret_access_key=key[1]) as client:
                while still():
                    client.start_loop(f"b-{t}-{done}", flow="review", input={"t": t, "n": done})
                    done += 1
            return done

        def claims(t: int, still: Callable[[], bool]) -> int:
            done = 0
            worker = WorkerClient.sign_in(url, emails[t], PASSWORD)
            try:
                while still() and (task := worker.next_task("review")) is not None:
                    worker.submit(task.task_id, {"ok": True})
                    done += 1
            finally:
                worker.close()
            return done

        started = timed(threads, seconds, starts)
        claimed = timed(threads, seconds, claims)
    return {"starts_per_s": round(started, 1), "claims_per_s": round(claimed, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    runs = {}
    with tempfile.TemporaryDirectory(prefix="loopin-bench-scale-") as tmp:
        for label, servers in (("one_server", 1), ("three_servers_nginx", 3), ("one_server_again", 1)):
            runs[label] = measure(Path(tmp) / label, servers, args.threads, args.seconds)
    one = {k: (runs["one_server"][k] + runs["one_server_again"][k]) / 2 for k in runs["one_server"]}
    result = {
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.platform()}",
        "threads": args.threads,
        "seconds": args.seconds,
        **runs,
        "three_over_one": {k: round(runs["three_servers_nginx"][k] / one[k], 3) for k in one if one[k]},
        "loadavg_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
