#!/usr/bin/env python3
"""Crash test: `loopin serve` on PostgreSQL under load (starts and submits from several
clients), killed with SIGKILL at random points and restarted, several times. Afterwards:

- every acknowledged start exists;
- every acknowledged submit is in its loop's output.json;
- every Completed loop has exactly one output.json;
- every event reached the webhook receiver at least once.

    .venv/bin/python scripts/crash_test.py            # 10 kills
    .venv/bin/python scripts/crash_test.py --short    # 3 kills (what CI runs)

Exit code 0 when every check holds. Needs PostgreSQL at 127.0.0.1:5432 (trust auth).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import random
import signal
import socket
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
from loopin.errors import LoopinError

PG = "postgresql://postgres@127.0.0.1:5432/postgres"
PASSWORD = "crash-test-password"
TEMPLATE = "<crowd-form><crowd-input name='answer'></crowd-input></crowd-form>"


class Receiver:
    """Webhook receiver that outlives the server: remembers every event id it got."""

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with outer.lock:
                    outer.ids.add(json.loads(body)["id"])
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """preexec_fn: the server gets SIGTERM when this script dies, even by kill -9 (prctl's
    PR_SET_PDEATHSIG), so a killed run leaves no server behind."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


class Server:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log, self.proc = env, log, None
        self.url = env["LOOPIN_PUBLIC_URL"]

    def start(self) -> None:
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "loopin.cli", "serve", "--port", self.env["LOOPIN_PORT"]],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise SystemExit(f"the server did not start; see {self.log}")

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


class Load:
    """Clients that start loops and workers that answer them, recording what the server
    acknowledged. Errors while the server is down are expected and not recorded."""

    def __init__(self, server: Server, key: tuple[str, str], workers: list[str]) -> None:
        self.server, self.key, self.workers = server, key, workers
        self.started: set[str] = set()
        self.submitted: dict[str, dict[str, str]] = {}  # loop name -> answer acknowledged
        self.lock = threading.Lock()
        self.running = threading.Event()

    def starter(self) -> None:
        client = Client(self.server.url, access_key_id=self.key[0], secret_access_key=self.key[1], timeout=5)
        while self.running.is_set():
            name = f"crash-{uuid.uuid4().hex[:16]}"
            try:
                client.start_loop(name, flow="crash", input={"id": name})
            except LoopinError:
                time.sleep(0.05)
                continue
            with self.lock:
                self.started.add(name)

    def worker(self, email: str) -> None:
        session: WorkerClient | None = None
        while self.running.is_set():
            try:
                session = session or WorkerClient.sign_in(self.server.url, email, PASSWORD)
                task = session.next_task("crash")
                if task is None:
                    time.sleep(0.05)
                    continue
                answer = {"answer": f"{email}:{task.input['id']}"}
                session.submit(task.task_id, answer)
            except LoopinError as exc:
                if exc.code == "UnauthorizedException":
                    session = None
                time.sleep(0.05)
                continue
            with self.lock:
                self.submitted[task.input["id"]] = answer

    def run(self, seconds: float, *, starters: int = 3) -> None:
        self.running.set()
        threads = [threading.Thread(target=self.starter) for _ in range(starters)]
        threads += [threading.Thread(target=self.worker, args=(w,)) for w in self.workers]
        for t in threads:
            t.start()
        time.sleep(seconds)
        self.running.clear()
        for t in threads:
            t.join(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="3 kills instead of 10 (CI)")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    kills = 3 if args.short else 10
    rng = random.Random(args.seed)
    database = f"loopin_crash_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    work = Path(tempfile.mkdtemp(prefix="loopin-crash-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPIN_")} | {
        "LOOPIN_DATA_DIR": str(work / "data"),
        "LOOPIN_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}",
        "LOOPIN_PORT": str(port),
        "LOOPIN_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "LOOPIN_JOB_INTERVAL_SECONDS": "0.2",
    }
    server = Server(env, work / "serve.log")
    try:
        key = json.loads(
            subprocess.run(
                [sys.executable, "-m", "loopin.cli", "keys", "create", "--json"],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        key_pair = (key["access_key_id"], key["secret_access_key"])
        receiver = Receiver()
        server.start()
        admin = Client(server.url, access_key_id=key_pair[0], secret_access_key=key_pair[1])
        admin.create_team("crash-team", description="crash test")
        workers = [f"w{i}@crash.example" for i in range(4)]
        for email in workers:
            admin.create_worker(email, teams=["crash-team"], password=PASSWORD)
        admin.create_task_ui("crash-ui", template=TEMPLATE)
        admin.create_flow(
            "crash",
            team="crash-team",
            task_ui="crash-ui",
            title="Crash",
            description="Crash test",
            output_path="s3://crash-bucket/out",
            time_limit_seconds=30,
        )
        admin.create_webhook("crash-hook", url=receiver.url, allow_private_network=True)
        load = Load(server, key_pair, workers)
        for round_no in range(kills):
            killer = threading.Timer(rng.uniform(1.0, 3.5), server.kill)
            killer.start()
            load.run(4.0)
            killer.join()
            print(
                f"kill {round_no + 1}/{kills}: {len(load.started)} starts, {len(load.submitted)} submits acknowledged"
            )
            server.start()
        # Drain: the workers finish every loop; then wait for outputs and events.
        load.run(2.0, starters=0)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            loops = list(admin.iter_loops(flow="crash"))
            open_loops = [loop for loop in loops if loop.status != "Completed"]
            pending = admin.list_deliveries(status="pending", limit=1)
            if not open_loops and not pending:
                break
            load.run(1.0, starters=0)
        failures = check(admin, load, receiver, env, work, database)
    finally:
        server.stop()
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    for failure in failures:
        print("FAIL:", failure)
    print(
        f"{len(load.started)} starts and {len(load.submitted)} submits acknowledged across {kills} kills: "
        + ("all checks hold" if not failures else f"{len(failures)} checks failed")
    )
    return 1 if failures else 0


def check(admin: Client, load: Load, receiver: Receiver, env: dict[str, str], work: Path, database: str) -> list[str]:
    failures = []
    loops = {loop.name: loop for loop in admin.iter_loops(flow="crash")}
    missing = load.started - set(loops)
    if missing:
        failures.append(f"{len(missing)} acknowledged starts are missing, e.g. {sorted(missing)[:3]}")
    objects = Path(env["LOOPIN_DATA_DIR"]) / "objects" / "crash-bucket" / "out"
    outputs: dict[str, list[Path]] = {}
    for path in objects.rglob("output.json"):
        outputs.setdefault(path.parent.name, []).append(path)
    for name, loop in loops.items():
        if loop.status != "Completed":
            failures.append(f"loop {name} ended {loop.status}, not Completed")
            continue
        files = outputs.get(name, [])
        if len(files) != 1:
            failures.append(f"loop {name} has {len(files)} output.json files")
            continue
        answers = [a["answerContent"] for a in json.loads(files[0].read_text())["humanAnswers"]]
        if name in load.submitted and load.submitted[name] not in answers:
            failures.append(f"the acknowledged answer to {name} is not in its output.json")
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{database}") as conn:
        event_ids = {row[0] for row in conn.execute("SELECT event_id FROM events")}
    lost = event_ids - receiver.ids
    if lost:
        failures.append(f"{len(lost)} of {len(event_ids)} events never reached the receiver")
    return failures


if __name__ == "__main__":
    sys.exit(main())
