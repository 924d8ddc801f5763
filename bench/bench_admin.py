#!/usr/bin/env python
"""Admin console benchmark: the overview and the loop list with 1,000,000 loops stored.

    .venv/bin/python bench/bench_admin.py                 # SQLite and PostgreSQL, 1M loops
    .venv/bin/python bench/bench_admin.py --loops 100000 --only sqlite   # a quicker look

For each database: a fresh, migrated database gets 5 flows, 20 workers and an admin
through the API, then ``--loops`` loops inserted with bulk SQL (spread over 30 days, the
flows 40/30/20/9/1 %, the last day's mostly InProgress, older ones 85 % Completed with an
answer, 9 % Failed, 6 % Stopped; one task slot each), the pre-aggregated counts filled to
match (over 4 shard rows, as the server writes them) and 30 days of hourly invocation
counts. PostgreSQL then gets ``VACUUM ANALYZE`` (what autovacuum would do).

Measured: the server time of each admin page, in-process (the app called through
Starlette's TestClient, one request after another, after a warm-up); ``GET /healthz`` the
same way is the client's own share. Results go to bench/results/admin-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from html import unescape
from pathlib import Path
from typing import Any

import psycopg
from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from loopin import admins  # noqa: E402
from loopin.access_keys import create_key  # noqa: E402
from loopin.client import Client  # noqa: E402
from loopin.config import Settings  # noqa: E402
from loopin.services import build_services  # noqa: E402
from loopin.web.server import create_app  # noqa: E402

PG_ADMIN = os.environ.get("LOOPIN_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
FLOWS = ["orders", "returns", "parcels", "labels", "rare"]  # 40 / 30 / 20 / 9 / 1 %
WORKERS = 20
DAY_MS = 86_400_000
ADMIN_EMAIL, ADMIN_PASSWORD = "bench@example.com", "bench-password-123"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def pct(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    k = max(0, min(len(sorted_values) - 1, int(round(p / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


# -- filling the database ------------------------------------------------------------------


def setup(client: Client) -> None:
    client.create_team("crew", description="Reviewers")
    for i in range(WORKERS):
        client.create_worker(f"w{i}@bench.example", teams=["crew"], password=ADMIN_PASSWORD)
    client.create_task_ui("ui", template="<crowd-form><p>{{ task.input.taskObject }}</p></crowd-form>")
    for flow in FLOWS:
        client.create_flow(
            flow,
            team="crew",
            task_ui="ui",
            title="Check",
            description="Check the boxes",
            output_path="s3://bench-output/out",
            availability_lifetime_seconds=86_400,
        )


def bulk_insert(kind: str, dsn: str, n: int, now: int, chunk: int = 100_000) -> dict[str, Any]:
    sqlite = kind == "sqlite"
    conn: Any = sqlite3.connect(dsn, isolation_level=None) if sqlite else psycopg.connect(dsn, autocommit=True)
    flow_ids = [conn.execute(f"SELECT id FROM flow_definitions WHERE name = '{f}'").fetchone()[0] for f in FLOWS]
    worker_ids = [r[0] for r in conn.execute("SELECT id FROM workers ORDER BY id").fetchall()]
    start = now - 30 * DAY_MS
    step = 30 * DAY_MS // n  # ms between two loops
    if sqlite:
        series = "WITH RECURSIVE g(x) AS (SELECT ? UNION ALL SELECT x + 1 FROM g WHERE x < ?) "
        src, name, sha, mod = "g", "printf('bench-%07d', x)", "printf('%064d', x)", "%"
    else:
        series, src = "", "generate_series(%s::bigint, %s::bigint) AS g(x)"
        name, sha, mod = "'bench-' || lpad(x::text, 7, '0')", "lpad(x::text, 64, '0')", "%%"
    r = f"((x * 7919) {mod} 100)"
    created = f"({start} + x * {step})"
    flow = (
        f"CASE WHEN x {mod} 100 < 40 THEN {flow_ids[0]} WHEN x {mod} 100 < 70 THEN {flow_ids[1]} "
        f"WHEN x {mod} 100 < 90 THEN {flow_ids[2]} WHEN x {mod} 100 < 99 THEN {flow_ids[3]} ELSE {flow_ids[4]} END"
    )
    status = (
        f"CASE WHEN {created} > {now - DAY_MS} AND {r} < 60 THEN 'InProgress' "
        f"WHEN {r} < 85 THEN 'Completed' WHEN {r} < 94 THEN 'Failed' ELSE 'Stopped' END"
    )
    loops_sql = f"""{series}
        INSERT INTO human_loops (name, flow_id, status, input_content, input_sha256, created_at, expires_at,
            ended_at, failure_code, failure_reason, output_uri, output_state, output_final_status,
            output_next_attempt_at, output_attempts)
        SELECT name, flow_id, status, input, sha, created,  created + {DAY_MS},
            CASE WHEN status = 'InProgress' THEN NULL ELSE created + 90000 + (x {mod} 600) * 1000 END,
            CASE WHEN status = 'Failed' THEN 'Expired' END,
            CASE WHEN status = 'Failed' THEN 'The task availability lifetime ran out.' END,
            CASE WHEN status = 'Completed' THEN 's3://bench-output/out/' || name || '/output.json' END,
            CASE WHEN status = 'Completed' THEN 'written' ELSE 'none' END,
            CASE WHEN status = 'Completed' THEN 'Completed' END, NULL,
            CASE WHEN status = 'Completed' THEN 1 ELSE 0 END
        FROM (SELECT x, {name} AS name, {flow} AS flow_id, {status} AS status, {created} AS created, {sha} AS sha,
                '{{"taskObject":"s3://bench-input/img/' || x || '.jpg","labels":["box"]}}' AS input
              FROM {src}) AS v"""
    k = len(worker_ids)
    conn.execute("CREATE TEMP TABLE bench_w (i INTEGER PRIMARY KEY, wid BIGINT)")
    for i, w in enumerate(worker_ids):
        conn.execute(f"INSERT INTO bench_w VALUES ({i}, {w})")
    slots_sql = f"""
        INSERT INTO task_slots (loop_id, flow_id, slot_index, status, worker_id, accepted_at, lease_expires_at,
            submitted_at, answer)
        SELECT l.id, l.flow_id, 0,
            CASE l.status WHEN 'Completed' THEN 'submitted' WHEN 'InProgress' THEN 'available' ELSE 'cancelled' END,
            CASE WHEN l.status = 'Completed' THEN w.wid END,
            CASE WHEN l.status = 'Completed' THEN l.ended_at - 40000 END, NULL,
            CASE WHEN l.status = 'Completed' THEN l.ended_at END,
            CASE WHEN l.status = 'Completed' THEN '{{"ok":true}}' END
        FROM human_loops l JOIN bench_w w ON w.i = l.id {mod} {k}
        WHERE l.id > ? AND l.id <= ?"""
    if not sqlite:
        slots_sql = slots_sql.replace("?", "%s")
    t = time.perf_counter()
    for lo in range(1, n + 1, chunk):
        hi = min(n, lo + chunk - 1)
        conn.execute("BEGIN IMMEDIATE" if sqlite else "BEGIN")
        before = conn.execute("SELECT coalesce(max(id), 0) FROM human_loops").fetchone()[0]
        conn.execute(loops_sql, (lo, hi))
        after = conn.execute("SELECT coalesce(max(id), 0) FROM human_loops").fetchone()[0]
        conn.execute(slots_sql, (before, after))
        conn.execute("COMMIT")
        log(f"  {hi:,} loops")
    insert_s = time.perf_counter() - t
    # The counts as the server keeps them: per key, spread over the 4 shard rows.
    t = time.perf_counter()
    conn.execute("BEGIN")
    conn.execute(
        "INSERT INTO loop_status_counts (flow_id, status, shard, n) "
        "SELECT flow_id, status, id % 4, count(*) FROM human_loops GROUP BY flow_id, status, id % 4"
    )
    conn.execute(
        f"INSERT INTO loop_day_counts (day, flow_id, status, shard, n) "
        f"SELECT created_at / {DAY_MS}, flow_id, status, id % 4, count(*) FROM human_loops "
        f"GROUP BY created_at / {DAY_MS}, flow_id, status, id % 4"
    )
    first_hour, last_hour = start // 3_600_000, now // 3_600_000
    rows = [
        (h, e, s, 300 + (h * 31 + s) % 200, 20 + (h * 17 + s) % 30)
        for h in range(first_hour, last_hour + 1)
        for e in ("detector", "detector-2", "ocr")
        for s in range(4)
    ]
    q = "INSERT INTO invocation_hour_counts (hour, endpoint_name, shard, total, routed) VALUES "
    if sqlite:
        conn.executemany(q + "(?, ?, ?, ?, ?)", rows)
    else:
        conn.cursor().executemany(q + "(%s, %s, %s, %s, %s)", rows)
    conn.execute("COMMIT")
    counts_s = time.perf_counter() - t
    t = time.perf_counter()
    if not sqlite:
        for table in ("human_loops", "task_slots", "loop_status_counts", "loop_day_counts", "invocation_hour_counts"):
            conn.execute(f"VACUUM ANALYZE {table}")
    analyze_s = time.perf_counter() - t
    stored = conn.execute("SELECT count(*) FROM human_loops").fetchone()[0]
    conn.close()
    return {
        "loops": stored,
        "insert_s": round(insert_s, 1),
        "counts_s": round(counts_s, 1),
        "vacuum_analyze_s": round(analyze_s, 1),
    }


# -- measuring -----------------------------------------------------------------------------


def sign_in(http: TestClient) -> None:
    page = http.get("/admin/sign-in").text
    csrf = unescape(re.search(r'name="csrf" value="([^"]+)"', page).group(1))  # type: ignore[union-attr]
    response = http.post("/admin/sign-in", data={"csrf": csrf, "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert response.status_code == 303, response.text


def older(page: str) -> str:
    match = re.search(r'href="([^"]+)" rel="next"', page)
    assert match, "no next page"
    return unescape(match.group(1))


def measure(http: TestClient, path: str, requests: int, warmup: int = 10) -> dict[str, Any]:
    for _ in range(warmup):
        assert http.get(path).status_code == 200, path
    times = []
    for _ in range(requests):
        t = time.perf_counter()
        response = http.get(path)
        times.append(time.perf_counter() - t)
        assert response.status_code == 200, (path, response.status_code)
    s = sorted(times)
    return {
        "path": path,
        "n": requests,
        "p50_ms": round(pct(s, 50) * 1000, 2),
        "p99_ms": round(pct(s, 99) * 1000, 2),
        "max_ms": round(s[-1] * 1000, 2),
    }


def run(kind: str, n: int, requests: int, workdir: Path) -> dict[str, Any]:
    pg_name = None
    if kind == "sqlite":
        path = workdir / "bench.db"
        url, dsn = f"sqlite:///{path}", str(path)
    else:
        pg_name = f"loopin_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{pg_name}"')
        base = PG_ADMIN.rsplit("/", 1)[0]
        dsn = f"{base}/{pg_name}"
        url = dsn.replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        settings = Settings(
            data_dir=workdir / kind, database_url=url, public_url="http://testserver", secret_key="bench-" + kind
        )
        services = build_services(settings)
        now = services.clock.now_ms()
        with services.db.write() as s:
            key = create_key(s, secret_key=settings.secret_key, description="bench", now_ms=now)
            admins.create_admin(s, email=ADMIN_EMAIL, name="Bench", password=ADMIN_PASSWORD, now_ms=now)
        app = create_app(services=services, run_background=False)
        with TestClient(app) as http:
            setup(
                Client(
                    "http://testserver",
                    access_key_id=key.access_key_id,
                    secret_access_key=key.secret_access_key,
                    http_client=http,
                )
            )
        log(f"{kind}: inserting {n:,} loops")
        filled = bulk_insert(kind, dsn, n, now)
        log(f"  {filled}")
        results: dict[str, Any] = {"kind": kind, "fill": filled, "pages": []}
        with TestClient(app, follow_redirects=False) as http:
            sign_in(http)
            day = datetime.fromtimestamp((now - 10 * DAY_MS) / 1000, tz=UTC)
            window = f"created_from={day:%Y-%m-%dT%H:%M}&created_to={day.replace(hour=23, minute=59):%Y-%m-%dT%H:%M}"
            paths = [
                ("GET /healthz (the client's share)", "/healthz"),
                ("overview", "/admin/overview"),
                ("loops, no filter", "/admin/loops"),
                ("loops, flow (40 %)", "/admin/loops?flow=orders"),
                ("loops, flow (1 %)", "/admin/loops?flow=rare"),
                ("loops, status InProgress", "/admin/loops?status=InProgress"),
                ("loops, status Stopped", "/admin/loops?status=Stopped"),
                ("loops, flow (1 %) + status Failed", "/admin/loops?flow=rare&status=Failed"),
                ("loops, one day", f"/admin/loops?{window}"),
                ("loops, flow + status + one day", f"/admin/loops?flow=labels&status=Completed&{window}"),
                ("loops, page 2, no filter", older(http.get("/admin/loops").text)),
                ("loops, page 2, flow + status", older(http.get("/admin/loops?flow=labels&status=Failed").text)),
                ("a loop's page", f"/admin/loops/bench-{n // 2:07d}"),
            ]
            for label, path in paths:
                result = {"label": label, **measure(http, path, requests)}
                log(f"  {result}")
                results["pages"].append(result)
        services.db.dispose()
        return results
    finally:
        if pg_name:
            with psycopg.connect(PG_ADMIN, autocommit=True) as c:
                c.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loops", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--only", default="sqlite,postgresql")
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "src"], cwd=ROOT, capture_output=True, text=True)
    out: dict[str, Any] = {
        "started": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": commit.stdout.strip() + (" + working tree" if dirty.stdout.strip() else ""),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "sqlite": sqlite3.sqlite_version},
        "loops": args.loops,
        "loadavg_before": os.getloadavg(),
        "runs": [],
    }
    with tempfile.TemporaryDirectory(prefix="loopin-bench-admin-") as tmp:
        for kind in args.only.split(","):
            out["runs"].append(run(kind, args.loops, args.requests, Path(tmp)))
    out["loadavg_after"] = os.getloadavg()
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    target = results / f"admin-{out['started'].replace(':', '').replace('-', '')}.json"
    target.write_text(json.dumps(out, indent=2))
    log(f"results: {target}")
    for run_ in out["runs"]:
        print(f"\n{run_['kind']}: {run_['fill']}")
        print("| page | p50 ms | p99 ms | max ms |\n|---|---:|---:|---:|")
        for p in run_["pages"]:
            print(f"| {p['label']} | {p['p50_ms']} | {p['p99_ms']} | {p['max_ms']} |")


if __name__ == "__main__":
    main()
