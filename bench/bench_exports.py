#!/usr/bin/env python
"""Export benchmark: 100,000 completed loops exported to COCO and to YOLO (zip), on SQLite
and on PostgreSQL; time and peak memory of each export.

    .venv/bin/python bench/bench_exports.py                     # both databases, 100,000 loops
    .venv/bin/python bench/bench_exports.py --loops 10000 --only sqlite

Set-up (not measured): a fresh, migrated database gets a team, a worker, a template and a
flow through the SDK, then ``--loops`` Completed loops inserted with bulk SQL — each with an
input (image URI, two pre-filled boxes), one submitted answer (three boxes, the image's
size) and a prediction-log row — spread over 30 days.

Measured: each export runs in a child process of its own (``--run-export``), which queues
the job and runs it with ``exports.run_pending_exports``, the function the background
runner's export thread calls. The child reports the wall time of the run, its resident
memory before, the peak sampled every 20 ms during the export, and the process's peak
(``ru_maxrss``, which includes the start-up: the imported server, the migrations check).
Targets: <= 30 s and <= 300 MB peak.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from fastapi.testclient import TestClient
from sqlalchemy import insert, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from loopin.access_keys import create_key  # noqa: E402
from loopin.client import Client  # noqa: E402
from loopin.config import Settings  # noqa: E402
from loopin.models import FlowDefinition, HumanLoop, Prediction, TaskSlot, Worker  # noqa: E402
from loopin.services import build_services  # noqa: E402
from loopin.web.server import create_app  # noqa: E402

PG_ADMIN = os.environ.get("LOOPIN_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
DAY_MS = 86_400_000
START_MS = 1_764_547_200_000  # 2025-12-01
CHUNK = 5_000


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def settings_for(data_dir: Path, url: str) -> Settings:
    return Settings(data_dir=data_dir, database_url=url, secret_key="bench-exports", public_url="http://testserver")


def populate(data_dir: Path, url: str, loops: int) -> None:
    services = build_services(settings_for(data_dir, url))
    with services.db.write() as s:
        key = create_key(s, secret_key=services.settings.secret_key, description="bench", now_ms=0)
    with TestClient(create_app(services=services, run_background=False)) as http:
        api = Client(
            "http://testserver",
            access_key_id=key.access_key_id,
            secret_access_key=key.secret_access_key,
            http_client=http,
        )
        api.create_team("bench", description="bench")
        api.create_worker("w@bench.example", teams=["bench"], password="bench-password-123")
        api.create_task_ui(
            "boxes",
            template="<crowd-form><crowd-bounding-box name='annotatedResult'></crowd-bounding-box></crowd-form>",
        )
        api.create_flow(
            "parcels", team="bench", task_ui="boxes", title="t", description="d", output_path="s3://bench-out/out"
        )
    with services.db.write() as s:
        flow_id = s.scalar(select(FlowDefinition.id).where(FlowDefinition.name == "parcels"))
        worker_id = s.scalar(select(Worker.id))
    labels = ["parcel", "label", "damage"]
    t0 = time.perf_counter()
    for start in range(0, loops, CHUNK):
        loop_rows, slot_rows, prediction_rows = [], [], []
        for i in range(start, min(loops, start + CHUNK)):
            created = START_MS + (i * 30 * DAY_MS) // loops
            name = f"loop-{i:07d}"
            image = f"s3://bench-in/images/{i:07d}.jpg"
            initial = [
                {"label": labels[i % 3], "left": 10 + i % 50, "top": 20, "width": 100, "height": 80},
                {"label": labels[(i + 1) % 3], "left": 300, "top": 200 + i % 40, "width": 60, "height": 90},
            ]
            answer = initial + [{"label": "damage", "left": 500, "top": 400, "width": 33, "height": 21}]
            loop_rows.append(
                {
                    "id": i + 1,
                    "name": name,
                    "flow_id": flow_id,
                    "status": "Completed",
                    "input_content": json.dumps({"taskObject": image, "initialValue": initial, "labels": labels}),
                    "input_sha256": "0" * 64,
                    "created_at": created,
                    "expires_at": created + DAY_MS,
                    "ended_at": created + 60_000,
                    "output_uri": f"s3://bench-out/out/parcels/{name}/output.json",
                    "output_state": "written",
                    "output_final_status": "Completed",
                    "output_attempts": 1,
                }
            )
            slot_rows.append(
                {
                    "loop_id": i + 1,
                    "flow_id": flow_id,
                    "slot_index": 0,
                    "status": "submitted",
                    "worker_id": worker_id,
                    "accepted_at": created + 1000,
                    "submitted_at": created + 30_000,
                    "answer": json.dumps(
                        {
                            "annotatedResult": {
                                "boundingBoxes": answer,
                                "inputImageProperties": {"width": 1280, "height": 960},
                            }
                        }
                    ),
                }
            )
            detections = [
                {
                    "label": b["label"],
                    "score": 0.5 + (i % 40) / 100,
                    "left": b["left"],
                    "top": b["top"],
                    "right": b["left"] + b["width"],
                    "bottom": b["top"] + b["height"],
                }
                for b in initial
            ]
            prediction_rows.append(
                {
                    "endpoint_name": "detector",
                    "model_name": "builtin-detector",
                    "image_sha256": f"{i:064d}",
                    "image_width": 1280,
                    "image_height": 960,
                    "detections": json.dumps(detections),
                    "flow_name": "parcels",
                    "threshold": 0.5,
                    "routed_reason": "low-confidence",
                    "loop_name": name,
                    "image_uri": image,
                    "response": "{}",
                    "created_at": created,
                }
            )
        with services.db.write() as s:
            s.execute(insert(HumanLoop), loop_rows)
            s.execute(insert(TaskSlot), slot_rows)
            s.execute(insert(Prediction), prediction_rows)
    log(f"  {loops:,} loops inserted in {time.perf_counter() - t0:.1f} s")
    if services.db.is_sqlite:
        with services.db.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
    services.db.dispose()


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def run_export(data_dir: Path, url: str, fmt: str) -> dict[str, Any]:
    """In the child: queue the export and run it; the figures as JSON on stdout. A thread
    samples the resident memory every 20 ms while the export runs."""
    from loopin.exports import ExportSpec, request_export, run_pending_exports

    services = build_services(settings_for(data_dir, url))
    before = rss_mb()
    peak = [before]
    running = threading.Event()
    running.set()

    def sample() -> None:
        while running.is_set():
            peak[0] = max(peak[0], rss_mb())
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    job = request_export(services, ExportSpec(flow="parcels", format=fmt))
    queued = time.perf_counter() - t0
    assert run_pending_exports(services) == 1
    elapsed = time.perf_counter() - t0
    running.clear()
    sampler.join()
    with services.db.read() as s:
        from loopin.exports import get_export

        done = get_export(s, job.export_id)
        result = {
            "format": fmt,
            "state": done.state,
            "error": done.error_message,
            "items": done.items,
            "annotations": done.annotations,
            "size_mb": round((done.size_bytes or 0) / 1e6, 1),
            "seconds": round(elapsed, 2),
            "queue_seconds": round(queued, 2),
            "rss_before_mb": round(before, 1),
            "peak_rss_during_mb": round(peak[0], 1),
            "process_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
    services.db.dispose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loops", type=int, default=100_000)
    parser.add_argument("--only", default="sqlite,postgresql")
    parser.add_argument("--formats", default="coco,yolo")
    parser.add_argument("--run-export", nargs=3, metavar=("DATA_DIR", "URL", "FORMAT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_export:
        data_dir, url, fmt = args.run_export
        print(json.dumps(run_export(Path(data_dir), url, fmt)))
        return
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}",
        "loops": args.loops,
        "runs": [],
    }
    for database in args.only.split(","):
        with tempfile.TemporaryDirectory(prefix="loopin-bench-exports-") as tmp:
            data_dir = Path(tmp) / "data"
            pg_name = None
            if database == "sqlite":
                url = f"sqlite:///{data_dir / 'loopin.db'}"
                data_dir.mkdir(parents=True)
            else:
                pg_name = f"loopin_bench_{uuid.uuid4().hex[:10]}"
                with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                    conn.execute(f'CREATE DATABASE "{pg_name}"')
                url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{pg_name}"
                if database == "postgresql":
                    pass
            try:
                log(f"{database}: populating {args.loops:,} loops")
                populate(data_dir, url, args.loops)
                if pg_name:
                    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
                        conn.execute("VACUUM ANALYZE")
                for fmt in args.formats.split(","):
                    out = subprocess.run(
                        [sys.executable, __file__, "--run-export", str(data_dir), url, fmt],
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    run = {"database": database, **json.loads(out.stdout.strip().splitlines()[-1])}
                    log(f"  {run}")
                    results["runs"].append(run)
            finally:
                if pg_name:
                    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                        conn.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    path = out_dir / f"exports-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(results, indent=2))
    log(f"results: {path}")


if __name__ == "__main__":
    main()
