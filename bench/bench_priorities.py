#!/usr/bin/env python
"""Claim latency with priorities: 100,000 waiting loops of mixed priority against the same
number all at the default priority, in the same run and the same database.

    .venv/bin/python bench/bench_priorities.py                  # SQLite and PostgreSQL
    .venv/bin/python bench/bench_priorities.py --loops 20000 --only sqlite   # a quicker look

For each database: a fresh, migrated database gets a team of workers, a template and two
flows through the domain functions, then ``--loops`` waiting loops per flow inserted with
bulk SQL (created over the last day; flow ``mixed`` with priorities drawn uniformly from
0-100 and a deadline on one loop in ten, flow ``plain`` all at priority 50; one available
task slot each, its ``queue_rank`` computed by ``loops.queue_rank`` as ``start_loop`` does).
PostgreSQL then gets ``ANALYZE``.

Measured: ``tasks.claim_next`` in its own committed write transaction (what
``POST /api/v1/worker/tasks/next`` runs), alternating between the two flows so that both
see the same machine load; each claimed task is then submitted (not timed) so the queue
moves; the claim order is checked. Then the claim's SELECT alone, three ways in turn: the
rank order on each flow, and the order before priorities (oldest loop first, on the former
index, created for the comparison). The plan of the claim query is recorded. Results go to
bench/results/priorities-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import insert, select, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from loopin import flows, task_templates, tasks, workforce  # noqa: E402
from loopin.clock import ManualClock  # noqa: E402
from loopin.config import Settings  # noqa: E402
from loopin.loops import queue_rank  # noqa: E402
from loopin.models import HumanLoop, TaskSlot, Worker  # noqa: E402
from loopin.services import Services, build_services  # noqa: E402

PG_ADMIN = os.environ.get("LOOPIN_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
DAY_MS = 86_400_000
NOW_MS = 1_800_000_000_000
TIME_LIMIT_S = 600
WORKERS = 8


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(p / 100 * len(ordered) + 0.5)) - 1))
    return ordered[k]


def setup(ctx: Services) -> None:
    with ctx.db.write() as s:
        workforce.create_team(s, name="crew", description="Reviewers", now_ms=NOW_MS)
        for i in range(WORKERS):
            workforce.create_worker(
                s, email=f"w{i}@bench.example", name=f"w{i}", teams=["crew"], password="bench-password-1", now_ms=NOW_MS
            )
        task_templates.create_task_ui(s, name="ui", content="<crowd-form><p>x</p></crowd-form>", now_ms=NOW_MS)
        for name in ("mixed", "plain"):
            flows.create_flow(
                s,
                name=name,
                team="crew",
                task_ui="ui",
                title="Check",
                description="Check it",
                output_path="s3://bench/out",
                time_limit_s=TIME_LIMIT_S,
                availability_lifetime_s=864_000,
                deadline_s=864_000 if name == "mixed" else None,
                now_ms=NOW_MS,
            )


def fill(ctx: Services, n: int, rng: random.Random) -> None:
    with ctx.db.read() as s:
        flow_ids = {f.name: f.id for f in flows.list_flows(s)}
    chunk = 5_000
    next_id = 1
    for flow in ("mixed", "plain"):
        t0 = time.perf_counter()
        for start in range(0, n, chunk):
            loops, slots = [], []
            for i in range(start, min(n, start + chunk)):
                created = NOW_MS - DAY_MS + (i * DAY_MS) // n
                if flow == "mixed":
                    priority = rng.randint(0, 100)
                    deadline = created + rng.randint(TIME_LIMIT_S, 86_400) * 1000 if rng.random() < 0.1 else None
                else:
                    priority, deadline = 50, None
                loops.append(
                    {
                        "id": next_id,
                        "name": f"{flow}-{i}",
                        "flow_id": flow_ids[flow],
                        "status": "InProgress",
                        "input_content": '{"taskObject":"s3://bench/x.jpg"}',
                        "input_sha256": "0" * 64,
                        "created_at": created,
                        "expires_at": created + 864_000_000,
                        "output_state": "none",
                        "output_attempts": 0,
                        "priority": priority,
                        "deadline_at": deadline,
                    }
                )
                rank = queue_rank(
                    created_at=created, priority=priority, deadline_at=deadline, time_limit_ms=TIME_LIMIT_S * 1000
                )
                slots.append(
                    {
                        "loop_id": next_id,
                        "flow_id": flow_ids[flow],
                        "slot_index": 0,
                        "status": "available",
                        "queue_rank": rank,
                    }
                )
                next_id += 1
            with ctx.db.write() as s:
                s.execute(insert(HumanLoop), loops)
                s.execute(insert(TaskSlot), slots)
        log(f"  {flow}: {n:,} loops in {time.perf_counter() - t0:.1f} s")
    with ctx.db.write() as s:
        if ctx.db.engine.dialect.name == "postgresql":
            s.execute(
                text("SELECT setval(pg_get_serial_sequence('human_loops', 'id'), (SELECT max(id) FROM human_loops))")
            )
    if ctx.db.engine.dialect.name == "postgresql":
        with ctx.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))


def plan(ctx: Services, flow_id: int, worker_id: int) -> list[str]:
    """The plan of the claim query as the server sends it."""
    query = (
        select(TaskSlot)
        .where(
            TaskSlot.status == "available",
            TaskSlot.flow_id.in_([flow_id]),
            ~tasks._worker_touched(TaskSlot.loop_id, worker_id),
        )
        .order_by(TaskSlot.queue_rank, TaskSlot.loop_id, TaskSlot.slot_index)
        .limit(1)
    )
    dialect = ctx.db.engine.dialect
    sql = str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    prefix = "EXPLAIN QUERY PLAN " if dialect.name == "sqlite" else "EXPLAIN "
    with ctx.db.read() as s:
        return [" | ".join(str(c) for c in row) for row in s.execute(text(prefix + sql))]


def claim_query(flow_id: int, worker_id: int, *, old: bool) -> Any:
    """The claim's SELECT as ``tasks.claim_next`` sends it; ``old``: the order before
    priorities (oldest loop first, on the former index ``ix_slots_available``)."""
    order = (
        (TaskSlot.loop_id, TaskSlot.slot_index) if old else (TaskSlot.queue_rank, TaskSlot.loop_id, TaskSlot.slot_index)
    )
    return (
        select(TaskSlot)
        .where(
            TaskSlot.status == "available",
            TaskSlot.flow_id.in_([flow_id]),
            ~tasks._worker_touched(TaskSlot.loop_id, worker_id),
        )
        .order_by(*order)
        .limit(1)
        .with_for_update(skip_locked=True)
    )


def measure_queries(ctx: Services, rounds: int) -> dict[str, Any]:
    """The claim's SELECT alone (in its own transaction, rolled back), three ways in turn:
    the rank order on the mixed and on the plain flow, and the order before priorities on
    the plain flow with the former index created for it."""
    with ctx.db.write() as s:
        s.execute(
            text(
                "CREATE INDEX ix_slots_available ON task_slots (flow_id, loop_id, slot_index) WHERE status = 'available'"
            )
        )
    if ctx.db.engine.dialect.name == "postgresql":
        with ctx.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE task_slots"))
    with ctx.db.read() as s:
        worker_id = s.scalars(select(Worker.id).order_by(Worker.id)).first()
        flow_ids = {f.name: f.id for f in flows.list_flows(s)}
    assert worker_id is not None
    variants = {
        "rank_mixed": claim_query(flow_ids["mixed"], worker_id, old=False),
        "rank_plain": claim_query(flow_ids["plain"], worker_id, old=False),
        "oldest_first_plain": claim_query(flow_ids["plain"], worker_id, old=True),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for i in range(rounds):
        names = list(variants) if i % 2 == 0 else list(reversed(variants))
        for name in names:
            with ctx.db.engine.connect() as conn:
                t0 = time.perf_counter()
                conn.execute(variants[name]).first()
                times[name].append((time.perf_counter() - t0) * 1000)
                conn.rollback()
    result: dict[str, Any] = {
        name: {"p50_ms": round(pct(v, 50), 3), "p90_ms": round(pct(v, 90), 3), "mean_ms": round(statistics.fmean(v), 3)}
        for name, v in times.items()
    }
    dialect = ctx.db.engine.dialect
    prefix = "EXPLAIN QUERY PLAN " if dialect.name == "sqlite" else "EXPLAIN "
    result["plans"] = {}
    with ctx.db.read() as s:
        for name, query in variants.items():
            sql = str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
            result["plans"][name] = [" | ".join(str(c) for c in row) for row in s.execute(text(prefix + sql))]
    result["p50_ratio_rank_mixed_over_oldest_first"] = round(
        result["rank_mixed"]["p50_ms"] / result["oldest_first_plain"]["p50_ms"], 3
    )
    with ctx.db.write() as s:
        s.execute(text("DROP INDEX ix_slots_available"))
    return result


def measure(ctx: Services, claims: int) -> dict[str, Any]:
    with ctx.db.read() as s:
        workers = list(s.scalars(select(Worker).order_by(Worker.id)))
        flow_ids = {f.name: f.id for f in flows.list_flows(s)}
    clock = ctx.clock
    assert isinstance(clock, ManualClock)
    times: dict[str, list[float]] = {"mixed": [], "plain": []}
    served_ranks: dict[str, list[int]] = {"mixed": [], "plain": []}
    for i in range(claims):
        for flow in ("mixed", "plain") if i % 2 == 0 else ("plain", "mixed"):
            worker = workers[i % len(workers)]
            t0 = time.perf_counter()
            with ctx.db.write() as s:
                held = tasks.claim_next(s, s.get_one(Worker, worker.id), flow_name=flow, now_ms=clock.now_ms())
                assert held is not None
                slot_id, rank = held.slot.id, held.slot.queue_rank
            times[flow].append((time.perf_counter() - t0) * 1000)
            served_ranks[flow].append(rank)
            with ctx.db.write() as s:
                tasks.submit(s, s.get_one(Worker, worker.id), slot_id, {"ok": True}, now_ms=clock.now_ms())
            clock.advance(0.01)
    for flow in times:
        assert served_ranks[flow] == sorted(served_ranks[flow]), f"{flow}: claims out of rank order"
    result: dict[str, Any] = {}
    for flow, values in times.items():
        result[flow] = {
            "claims": len(values),
            "mean_ms": round(statistics.fmean(values), 3),
            "p50_ms": round(pct(values, 50), 3),
            "p90_ms": round(pct(values, 90), 3),
            "p99_ms": round(pct(values, 99), 3),
        }
    result["p50_ratio_mixed_over_plain"] = round(result["mixed"]["p50_ms"] / result["plain"]["p50_ms"], 3)
    result["mean_ratio_mixed_over_plain"] = round(result["mixed"]["mean_ms"] / result["plain"]["mean_ms"], 3)
    result["plans"] = {name: plan(ctx, flow_ids[name], workers[0].id) for name in ("mixed", "plain")}
    return result


def run(kind: str, n: int, claims: int, tmp: Path) -> dict[str, Any]:
    pg_name = None
    if kind == "sqlite":
        url = f"sqlite:///{tmp / 'bench.db'}"
    else:
        pg_name = f"loopin_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{pg_name}"')
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{pg_name}"
    settings = Settings(data_dir=tmp / kind, database_url=url, secret_key="bench-" + uuid.uuid4().hex)
    ctx = build_services(settings, clock=ManualClock(start_ms=NOW_MS))
    try:
        log(f"{kind}: filling {n:,} + {n:,} waiting loops")
        setup(ctx)
        fill(ctx, n, random.Random(17))
        log(f"{kind}: {claims} claims per flow")
        result = measure(ctx, claims)
        log(f"{kind}: {json.dumps({k: v for k, v in result.items() if k != 'plans'})}")
        result["query_only"] = measure_queries(ctx, claims * 2)
        log(f"{kind}: query only: {json.dumps({k: v for k, v in result['query_only'].items() if k != 'plans'})}")
        return result
    finally:
        ctx.db.dispose()
        if pg_name:
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loops", type=int, default=100_000, help="waiting loops per flow")
    parser.add_argument("--claims", type=int, default=400, help="claims measured per flow")
    parser.add_argument("--only", default="sqlite,postgresql")
    args = parser.parse_args()
    started = datetime.now(UTC)
    results: dict[str, Any] = {
        "started": started.isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
        "loops_per_flow": args.loops,
    }
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.only.split(","):
            results[kind] = run(kind, args.loops, args.claims, Path(tmp))
    out = ROOT / "bench" / "results" / f"priorities-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    log(f"written {out}")


if __name__ == "__main__":
    main()
