#!/usr/bin/env python
"""Print the Markdown tables of a bench_core.py result file (for BENCHMARKS.md).

.venv/bin/python bench/report.py bench/results/core-<time>.json
"""

from __future__ import annotations

import json
import sys
from typing import Any

LABELS = {"sqlite": "SQLite, 1 process", "pg1": "PostgreSQL, 1 process", "pg2": "PostgreSQL, 2 processes"}


def f(x: float, nd: int = 1) -> str:
    return f"{x:,.{nd}f}"


def starts(r: dict[str, Any]) -> None:
    print(
        "| server | starts/s | p50 ms | p99 ms | GET /healthz/s (same client) | start ÷ no-op (throughput) "
        "| server CPU per start | server CPU per no-op | PostgreSQL CPU per start | CPU used by others |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, run in r["runs"].items():
        s = run["starts"]
        st, h1, h2 = s["start"], s["healthz_before"], s["healthz_after"]
        noop_cpu = (h1["server_cpu_ms_per_req"] + h2["server_cpu_ms_per_req"]) / 2
        pg = f"{st['postgres_cpu_ms_per_req']:.2f} ms" if run["database"] == "postgresql" else "–"
        print(
            f"| {LABELS.get(label, label)} | **{f(st['rps'], 0)}** | {f(st['p50_ms'])} | **{f(st['p99_ms'])}** "
            f"| {f(h1['rps'], 0)} / {f(h2['rps'], 0)} | {s['start_cost_vs_noop']:.1f}× "
            f"| {st['server_cpu_ms_per_req']:.2f} ms | {noop_cpu:.2f} ms | {pg} | {st['cpu']['other_cores']:.2f} cores |"
        )


def claims(r: dict[str, Any]) -> None:
    print(
        "| server | tasks completed/s | next p50 / p99 ms | submit p50 / p99 ms | server CPU per task "
        "| all Completed, outputs written, no task twice | CPU used by others |"
    )
    print("|---|---:|---:|---:|---:|---|---:|")
    for label, run in r["runs"].items():
        c = run.get("claims")
        if not c:
            continue
        cpu = c["cpu"]
        per_task = cpu["server_cores"] * cpu["wall_s"] / max(1, c["submitted"]) * 1000
        ok = "yes" if c["verified"] else "**NO**"
        print(
            f"| {LABELS.get(label, label)} | **{f(c['tasks_per_s'])}** | {f(c['next']['p50_ms'], 0)} / {f(c['next']['p99_ms'], 0)} "
            f"| {f(c['submit']['p50_ms'], 0)} / {f(c['submit']['p99_ms'], 0)} | {per_task:.1f} ms "
            f"| {ok} ({c['submitted']:,} tasks, {c['distinct_tasks']:,} distinct, {c['error_count']} errors) | {cpu['other_cores']:.2f} cores |"
        )


def reads(r: dict[str, Any]) -> None:
    print(
        "| server | loops stored | concurrency | Describe p50 / p99 ms | List p50 / p99 ms | next page p50 / p99 ms |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for label, run in r["runs"].items():
        b = run.get("big")
        if not b:
            continue
        for key, v in b.items():
            if not key.startswith(("small_c", "big_c")):
                continue
            stored = b["loops_stored"] if key.startswith("big") else None
            conc = key.rsplit("_c", 1)[1]
            d, l1, l2 = v["describe"], v["list_first_page"], v["list_next_page"]
            print(
                f"| {LABELS.get(label, label)} | {f(stored, 0) if stored else 'few thousand'} | {conc} "
                f"| {f(d['p50_ms'])} / **{f(d['p99_ms'])}** | {f(l1['p50_ms'])} / **{f(l1['p99_ms'])}** "
                f"| {f(l2['p50_ms'])} / **{f(l2['p99_ms'])}** |"
            )


def main() -> None:
    r = json.load(open(sys.argv[1]))
    m = r["machine"]
    print(f"<!-- {sys.argv[1]}: {r['command']}; {m['date_utc']}; source {r.get('source')} -->\n")
    starts(r)
    print()
    claims(r)
    print()
    reads(r)
    for label, run in r["runs"].items():
        if "big" in run:
            print(f"\n{label} bulk insert: {run['big']['bulk']}")


if __name__ == "__main__":
    main()
