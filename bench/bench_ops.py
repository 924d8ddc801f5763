#!/usr/bin/env python
"""What one request costs, in-process and single-threaded: SQL statements, pool checkouts,
commits/rollbacks and CPU time per API call, on SQLite and PostgreSQL.

    .venv/bin/python bench/bench_ops.py [--n 200] [--only sqlite|pg] [--rev REV] [--instructions]

It drives the real ASGI app through FastAPI's TestClient (so the figures include the
test client's own cost: compare with the GET /healthz line) and counts what SQLAlchemy
sends. On PostgreSQL every pool checkout also costs a ``pool_pre_ping`` round trip and a
BEGIN, so round trips are about statements + 2 x checkouts + commits + rollbacks.

``--instructions`` runs it under valgrind's callgrind and reports the machine instructions
of the whole process per call instead of times (use ``--n 20``: about 50 times slower).
The CPU time of a call drifts by up to a third within minutes on a shared virtual
machine; an instruction count repeats to within about 1 %, so an A/B of a change of a few
per cent reads off it.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import event

warnings.filterwarnings("ignore")

if "--rev" in sys.argv and not os.environ.get("LOOPIN_BENCH_SNAPSHOT"):
    # Benchmark a committed revision rather than a working tree that may be mid-edit:
    # export its src/ with git archive and run this script again on it.
    rev = sys.argv[sys.argv.index("--rev") + 1]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    dest = tempfile.mkdtemp(prefix="loopin-ops-src-")
    archive = subprocess.run(["git", "-C", root, "archive", rev, "src"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)
    env = dict(os.environ, PYTHONPATH=os.path.join(dest, "src"), LOOPIN_BENCH_SNAPSHOT=rev)
    code = subprocess.run([sys.executable, *sys.argv], env=env).returncode
    shutil.rmtree(dest, ignore_errors=True)
    sys.exit(code)

CALLGRIND_DIR = os.environ.get("LOOPIN_BENCH_CALLGRIND")  # set: this process runs under callgrind
if "--instructions" in sys.argv and not CALLGRIND_DIR:
    out = tempfile.mkdtemp(prefix="loopin-ops-callgrind-")
    command = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}/cg.out"]
    env = dict(os.environ, LOOPIN_BENCH_CALLGRIND=out, PYTHONHASHSEED="0")
    code = subprocess.run([*command, sys.executable, *sys.argv], env=env, stderr=subprocess.DEVNULL).returncode
    shutil.rmtree(out, ignore_errors=True)
    sys.exit(code)

from fastapi.testclient import TestClient  # noqa: E402

from loopin.access_keys import create_key  # noqa: E402
from loopin.client import Client, WorkerClient  # noqa: E402
from loopin.config import Settings  # noqa: E402
from loopin.web.server import create_app  # noqa: E402

KEYS = {  # each measured call's key in the callgrind dumps
    "GET /healthz": "healthz",
    "POST /loops (start)": "start",
    "GET /loops/{name}": "describe",
    "GET /loops?flow (100)": "list",
}
PG_ADMIN = os.environ.get("LOOPIN_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
PASSWORD = "bench-password-123"


def callgrind(*args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(os.getpid())], check=True, capture_output=True)


@contextlib.contextmanager
def counted(key: str) -> Iterator[None]:
    """Under callgrind: the instructions of the block, dumped under ``key``."""
    if not CALLGRIND_DIR:
        yield
        return
    callgrind("-z")
    try:
        yield
    finally:
        callgrind("-d", key)


def instructions_per_call() -> dict[str, float]:
    """The dumps of ``counted`` read back: mean instructions per key, less the cost of
    counting itself (the ``empty`` key)."""
    totals: dict[str, list[int]] = collections.defaultdict(list)
    for dump in Path(CALLGRIND_DIR or ".").glob("cg.out.*"):
        text = dump.read_text(errors="replace")
        key = re.search(r"^desc: Trigger: dump (\S+)", text, re.M)
        total = re.search(r"^totals: (\d+)", text, re.M)
        if key and total:
            totals[key.group(1)].append(int(total.group(1)))
    empty = statistics.mean(totals.pop("empty", [0]))
    return {key: statistics.mean(values) - empty for key, values in totals.items()}


def run(kind: str, n: int, *, show_sql: bool = False) -> None:
    tmp = tempfile.mkdtemp(prefix="loopin-ops-")
    pg_name = ""
    if kind == "pg":
        pg_name = f"loopin_bench_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{pg_name}"')
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{pg_name}"
    else:
        url = f"sqlite:///{tmp}/loopin.db"
    settings = Settings(
        database_url=url, data_dir=tmp, secret_key="bench-" + uuid.uuid4().hex, public_url="http://testserver"
    )
    app = create_app(settings, run_background=False)
    ctx = app.state.services
    counts: collections.Counter[str] = collections.Counter()

    def counter(name: str) -> Callable[..., None]:
        def bump(*_: Any) -> None:
            counts[name] += 1

        return bump

    event.listen(ctx.db.engine, "before_cursor_execute", counter("statements"))
    sql: list[str] = []  # the statements of the last call (--sql)
    if show_sql:
        event.listen(ctx.db.engine, "before_cursor_execute", lambda *a: sql.append(" ".join(a[2].split())))
    for name in ("checkout", "commit", "rollback"):
        event.listen(ctx.db.engine, name, counter(name + "s" if name != "checkout" else "checkouts"))
    try:
        with ctx.db.write() as session:
            key = create_key(session, secret_key=settings.secret_key, description="", now_ms=int(time.time() * 1000))
        with TestClient(app) as tc:
            c = Client(
                "http://testserver",
                access_key_id=key.access_key_id,
                secret_access_key=key.secret_access_key,
                http_client=tc,
            )
            c.create_team("crew", description="Benchmark")
            c.create_worker("w@bench.example", teams=["crew"], password=PASSWORD)
            c.create_task_ui("ui", template="<crowd-form></crowd-form>")
            c.create_flow("f", team="crew", task_ui="ui", title="t", description="d", output_path="s3://bench-out/p")
            w = WorkerClient.sign_in("http://testserver", "w@bench.example", PASSWORD, http_client=tc)
            rows: list[tuple[str, float, float, dict[str, float]]] = []

            def measure(label: str, fn: Callable[[int], Any], count: int, offset: int = 0) -> None:
                counts.clear()
                t, p = time.perf_counter(), time.process_time()
                for i in range(count):
                    with counted(KEYS[label]):
                        fn(offset + i)
                wall = (time.perf_counter() - t) / count * 1000
                cpu = (time.process_time() - p) / count * 1000
                rows.append((label, wall, cpu, {k: v / count for k, v in counts.items()}))

            for i in range(20):
                tc.get("/healthz")
            if CALLGRIND_DIR:
                callgrind("-i", "on")
                for _ in range(n):
                    with counted("empty"):
                        pass
            measure("GET /healthz", lambda i: tc.get("/healthz"), n)
            for i in range(20):
                c.start_loop(f"warm{i}", flow="f", input={"i": i})
            measure(
                "POST /loops (start)",
                lambda i: c.start_loop(f"l{i}", flow="f", input={"taskObject": f"s3://b/{i}.jpg"}),
                n,
            )
            measure("GET /loops/{name}", lambda i: c.describe_loop(f"l{i}"), n)
            measure("GET /loops?flow (100)", lambda i: c.list_loops(flow="f", max_results=100), max(10, n // 4))
            held: dict[str, int] = {}

            def claim(_: int) -> None:
                task = w.next_task("f")
                assert task is not None
                held["id"] = task.task_id

            def submit(_: int) -> None:
                w.submit(held["id"], {"label": "cat"})

            for i in range(10):
                claim(i)
                submit(i)
            per: dict[str, list[tuple[float, float, collections.Counter[str]]]] = {"claim": [], "submit": []}
            for i in range(n):
                for label, fn in (("claim", claim), ("submit", submit)):
                    counts.clear()
                    sql.clear()
                    t, p = time.perf_counter(), time.process_time()
                    with counted(label):
                        fn(i)
                    if show_sql and i == n - 1:
                        print(f"\n-- the statements of one {label}:")
                        print("\n".join(f"{k + 1:3}. {text[:220]}" for k, text in enumerate(sql)))
                    per[label].append((time.perf_counter() - t, time.process_time() - p, collections.Counter(counts)))
            for label, name in (("claim", "POST /worker/tasks/next"), ("submit", "POST .../submit (+output)")):
                vals = per[label]
                total: collections.Counter[str] = collections.Counter()
                for _, _, cnt in vals:
                    total.update(cnt)
                rows.append(
                    (
                        name,
                        sum(v[0] for v in vals) / len(vals) * 1000,
                        sum(v[1] for v in vals) / len(vals) * 1000,
                        {k: v / len(vals) for k, v in total.items()},
                    )
                )
        if CALLGRIND_DIR:
            callgrind("-i", "off")
            per_call = instructions_per_call()
            print(f"\n{kind}: {n} calls each, in-process (TestClient), instructions of the whole process")
            print(f"{'call':28} {'M instr':>8} {'stmts':>6}")
            for label, _, _, c_ in rows:
                key = KEYS.get(label) or ("claim" if "next" in label else "submit")
                print(f"{label:28} {per_call.get(key, 0) / 1e6:8.2f} {c_.get('statements', 0):6.1f}")
            return
        print(f"\n{kind}: {n} calls each, one thread, in-process (TestClient)")
        print(f"{'call':28} {'wall ms':>8} {'cpu ms':>7} {'stmts':>6} {'checkouts':>9} {'commits':>8} {'rollbacks':>9}")
        for label, wall, cpu, c_ in rows:
            print(
                f"{label:28} {wall:8.2f} {cpu:7.2f} {c_.get('statements', 0):6.1f} {c_.get('checkouts', 0):9.1f} "
                f"{c_.get('commits', 0):8.1f} {c_.get('rollbacks', 0):9.1f}"
            )
    finally:
        ctx.db.dispose()
        shutil.rmtree(tmp, ignore_errors=True)
        if pg_name:
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--only", choices=["sqlite", "pg"])
    ap.add_argument("--rev", help="benchmark this git revision (e.g. HEAD) instead of the working tree")
    ap.add_argument("--sql", action="store_true", help="print the SQL statements of one claim and one submit")
    ap.add_argument("--instructions", action="store_true", help="count instructions per call under callgrind")
    args = ap.parse_args()
    for kind in ("sqlite", "pg"):
        if args.only in (None, kind):
            run(kind, args.n, show_sql=args.sql)


if __name__ == "__main__":
    main()
