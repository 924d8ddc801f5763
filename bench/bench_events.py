"""Events benchmark: webhook deliveries per second, and the latency from a worker's submit
(acknowledged) to the webhook receiver getting the loop's Completed event.

    .venv/bin/python bench/bench_events.py [--quick] [--database sqlite|postgresql]

Runs a real `loopin serve` (SQLite by default) and a local receiver; prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg

from loopin.client import Client, WorkerClient

PASSWORD = "bench-password-123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Receiver:
    def __init__(self) -> None:
        self.arrivals: dict[tuple[str, str], float] = {}  # (loop, status) -> monotonic time
        self.count = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                with outer.lock:
                    outer.count += 1
                    key = (body["detail"]["humanLoopName"], body["detail"]["humanLoopStatus"])
                    outer.arrivals.setdefault(key, time.monotonic())
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    loops = 40 if args.quick else 400
    work = Path(tempfile.mkdtemp(prefix="loopin-bench-events-"))
    port = free_port()
    db_name = None
    if args.database == "postgresql":
        db_name = f"loopin_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{db_name}"')
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{db_name}"
    else:
        url = f"sqlite:///{work / 'loopin.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPIN_")} | {
        "LOOPIN_DATA_DIR": str(work / "data"),
        "LOOPIN_DATABASE_URL": url,
        "LOOPIN_PORT": str(port),
    }
    cli = [sys.executable, "-m", "loopin.cli"]
    key = json.loads(
        subprocess.run([*cli, "keys", "create", "--json"], env=env, capture_output=True, text=True, check=True).stdout
    )
    server = subprocess.Popen([*cli, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        admin = Client(base, access_key_id=key["access_key_id"], secret_access_key=key["secret_access_key"])
        receiver = Receiver()
        admin.create_team("bench", description="bench")
        admin.create_worker("w@bench.example", teams=["bench"], password=PASSWORD)
        admin.create_task_ui("ui", template="<crowd-form></crowd-form>")
        admin.create_flow("bench", team="bench", task_ui="ui", title="t", description="d", output_path="s3://bench/out")
        admin.create_webhook("hook", url=receiver.url, allow_private_network=True)
        names = [f"e-{i:05d}" for i in range(loops)]
        # Throughput: 8 clients start loops; time until every InProgress event has arrived.
        t0 = time.monotonic()

        def start(chunk: list[str]) -> None:
            client = Client(base, access_key_id=key["access_key_id"], secret_access_key=key["secret_access_key"])
            for name in chunk:
                client.start_loop(name, flow="bench", input={"name": name})

        threads = [threading.Thread(target=start, args=(names[i::8],)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        started = time.monotonic()
        while sum(1 for n in names if (n, "InProgress") in receiver.arrivals) < loops:
            time.sleep(0.01)
        done = time.monotonic()
        throughput = loops / (done - t0)
        lag_after_last_start = (done - started) * 1000
        # Latency: submit one at a time; measure from the acknowledged submit to receipt.
        worker = WorkerClient.sign_in(base, "w@bench.example", PASSWORD)
        latencies = []
        for _ in names:
            task = worker.next_task()
            assert task is not None
            worker.submit(task.task_id, {"ok": True})
            acked = time.monotonic()
            key_ = (task.input["name"], "Completed")
            while key_ not in receiver.arrivals:
                time.sleep(0.001)
            latencies.append((receiver.arrivals[key_] - acked) * 1000)
    finally:
        server.terminate()
        server.wait(timeout=30)
        if db_name:
            with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {args.database}")
    print(f"loops: {loops}")
    print(
        f"events delivered: {throughput:.0f}/s while 8 clients started loops "
        f"(last event {lag_after_last_start:.0f} ms after the last start was acknowledged)"
    )
    print(
        f"submit -> webhook receipt of Completed: p50 {statistics.median(latencies):.1f} ms, "
        f"p99 {pct(latencies, 99):.1f} ms, max {max(latencies):.1f} ms"
    )


if __name__ == "__main__":
    main()
