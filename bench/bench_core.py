#!/usr/bin/env python
"""Core API benchmark of loopin against real ``loopin serve`` subprocesses.

    .venv/bin/python bench/bench_core.py            # full run (about 15 minutes)
    .venv/bin/python bench/bench_core.py --quick    # smoke check (under a minute)

Phases, per server configuration (SQLite 1 process, PostgreSQL 1 and 2 processes):

1. starts   StartHumanLoop (POST /api/v1/loops) with 32 keep-alive connections, driven by
            ``wrk`` (Debian package) with bench/wrk/loopin.lua; the baseline is the same
            wrk against GET /healthz, measured before and after.
2. claims   64 worker accounts, each looping POST /worker/tasks/next + /submit over N
            loops with TaskCount 1 (asyncio client below); then every loop is checked to
            be Completed, every output.json to exist, and no task to be handed out twice.
3. big      1,000,000 loops inserted with bulk SQL, then Describe / List / next page
            latency at concurrency 1 and 16 (asyncio client).

Results go to bench/results/core-<UTC time>.json (and a py-spy profile summary of the
start load when py-spy is installed). Every PostgreSQL run gets its own database
``loopin_bench_<random>``, dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import gzip
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
LOOPIN = BIN / "loopin"
PYSPY = BIN / "py-spy"
WRK_SCRIPT = HERE / "wrk" / "loopin.lua"
PG_ADMIN = os.environ.get("LOOPIN_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
PASSWORD = "bench-password-123"
TEMPLATE = """<crowd-form><crowd-classifier name="label" categories="['cat','dog','bird']"
 header="What is it?"><classification-target><img src="{{ task.input.taskObject | grant_read_access }}">
</classification-target></crowd-classifier></crowd-form>"""
CLK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# -- statistics and CPU accounting -----------------------------------------------------


def pct(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, int(round(p / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def lat_summary(seconds: list[float]) -> dict[str, float]:
    s = sorted(seconds)
    return {
        "n": len(s),
        "p50_ms": round(pct(s, 50) * 1000, 2),
        "p90_ms": round(pct(s, 90) * 1000, 2),
        "p99_ms": round(pct(s, 99) * 1000, 2),
        "max_ms": round(s[-1] * 1000, 2) if s else float("nan"),
    }


def _proc_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            rest = fh.read().rpartition(")")[2].split()
        return int(rest[11]) + int(rest[12])  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                out.extend(int(c) for c in fh.read().split())
    except OSError:
        pass
    return out


def tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        todo.extend(_children(p))
    return pids


def postgres_pids() -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as fh:
                    if fh.read().strip() == "postgres":
                        pids.append(int(entry))
            except OSError:
                pass
    return pids


def _machine_ticks() -> tuple[int, int]:
    with open("/proc/stat") as fh:
        vals = [int(v) for v in fh.readline().split()[1:]]
    idle = vals[3] + vals[4]
    return sum(vals) - idle, sum(vals)


class CpuMeter:
    """CPU seconds used by the server tree, PostgreSQL and this process over an interval,
    and the machine's total busy fraction."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid

    def __enter__(self) -> CpuMeter:
        self.t0 = time.perf_counter()
        self.srv0 = {p: _proc_ticks(p) for p in tree(self.server_pid)}
        self.pg0 = {p: _proc_ticks(p) for p in postgres_pids()}
        self.self0 = os.times()
        self.m0 = _machine_ticks()
        return self

    def __exit__(self, *_: object) -> None:
        wall = time.perf_counter() - self.t0
        srv = sum(_proc_ticks(p) - self.srv0.get(p, 0) for p in tree(self.server_pid)) / CLK
        pg = sum(_proc_ticks(p) - self.pg0.get(p, 0) for p in postgres_pids()) / CLK
        t = os.times()
        me = (t.user - self.self0.user) + (t.system - self.self0.system)
        busy1, total1 = _machine_ticks()
        busy = (busy1 - self.m0[0]) / max(1, total1 - self.m0[1])
        self.result = {
            "wall_s": round(wall, 2),
            "server_cores": round(srv / wall, 2),
            "postgres_cores": round(pg / wall, 2),
            "bench_process_cores": round(me / wall, 2),
            "machine_busy_pct": round(busy * 100, 1),
        }
        self.result["other_cores"] = round(busy * (os.cpu_count() or 1) - (srv + pg + me) / wall, 2)


# -- a tiny keep-alive HTTP/1.1 client on asyncio streams (cheap per request) ------------


class Conn:
    def __init__(self, port: int, headers: dict[str, str] | None = None) -> None:
        self.port = port
        self.extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
            self.writer = None

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        if self.writer is None:
            await self._open()
        assert self.reader is not None and self.writer is not None
        data = b"" if body is None else json.dumps(body).encode()
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{self.extra}"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        )
        self.writer.write(head.encode() + data)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        status = int(raw[9:12])
        length, chunked, close = None, False, False
        for line in raw.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                close = True
        if length is not None:
            payload = await self.reader.readexactly(length)
        elif chunked:
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                parts.append(await self.reader.readexactly(size + 2))
                if size == 0:
                    break
            payload = b"".join(p[:-2] for p in parts)
        elif status in (204, 304) or status < 200:
            payload = b""
        else:
            payload = await self.reader.read()
            close = True
        if close:
            await self.close()
        return status, payload


def basic(key: dict[str, str]) -> str:
    return base64.b64encode(f"{key['access_key_id']}:{key['secret_access_key']}".encode()).decode()


async def timed_requests(
    port: int,
    headers: dict[str, str],
    concurrency: int,
    make: Callable[[int], tuple[str, str, Any]],
    count: int,
    on_response: Callable[[int, bytes], None] | None = None,
) -> tuple[list[float], int, float]:
    """Send ``count`` requests made by ``make(i)`` over ``concurrency`` connections.
    Returns (latencies in s, non-2xx count, wall seconds)."""
    conns = [Conn(port, headers) for _ in range(concurrency)]
    lat: list[float] = []
    errors = 0
    counter = iter(range(count))

    async def run(conn: Conn) -> None:
        nonlocal errors
        for i in counter:
            method, path, body = make(i)
            t = time.perf_counter()
            status, payload = await conn.request(method, path, body)
            lat.append(time.perf_counter() - t)
            if status >= 300:
                errors += 1
                if errors <= 3:
                    log(f"  {method} {path} -> {status} {payload[:200]!r}")
            elif on_response is not None:
                on_response(i, payload)
        await conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(run(c) for c in conns))
    return lat, errors, time.perf_counter() - t0


# -- databases ---------------------------------------------------------------------------


@dataclass
class Backend:
    label: str
    kind: str  # sqlite | postgresql
    processes: int
    url: str = ""
    pg_name: str = ""

    def connect(self) -> Any:
        if self.kind == "sqlite":
            path = urllib.parse.unquote(self.url.removeprefix("sqlite:///"))
            conn = sqlite3.connect("/" + path.lstrip("/"), timeout=60)
            conn.isolation_level = None
            return conn
        return psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{self.pg_name}", autocommit=True)

    def scalar(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        conn = self.connect()
        try:
            if self.kind == "postgresql":
                sql = sql.replace("?", "%s")
            return conn.execute(sql, params).fetchone()[0]
        finally:
            conn.close()

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = self.connect()
        try:
            if self.kind == "postgresql":
                sql = sql.replace("?", "%s")
            return list(conn.execute(sql, params).fetchall())
        finally:
            conn.close()


def create_pg_database() -> str:
    name = f"loopin_bench_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_pg_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- the server subprocess --------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SNAPSHOT_SRC: Path | None = None  # set by --rev: the server runs this exported source tree


def export_rev(rev: str, workdir: Path) -> tuple[Path, str]:
    """``git archive`` the src/ folder of ``rev`` into the work folder (the working tree may
    be mid-edit); returns the folder to put on PYTHONPATH and the full commit id."""
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", rev], check=True, capture_output=True, text=True
    ).stdout.strip()
    dest = workdir / f"src-{commit[:10]}"
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "src"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest / "src", commit


class Server:
    def __init__(self, backend: Backend, workdir: Path) -> None:
        self.backend = backend
        self.dir = workdir / backend.label
        self.dir.mkdir(parents=True)
        self.port = free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPIN_")}
        self.env.update(
            LOOPIN_DATA_DIR=str(self.dir / "data"),
            LOOPIN_DATABASE_URL=backend.url,
            LOOPIN_HOST="127.0.0.1",
            LOOPIN_PORT=str(self.port),
            LOOPIN_SECRET_KEY="bench-" + secrets.token_hex(16),
        )
        if SNAPSHOT_SRC is not None:
            self.env["PYTHONPATH"] = str(SNAPSHOT_SRC)
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{self.port}"

    def create_key(self) -> dict[str, str]:
        out = subprocess.run(
            [str(LOOPIN), "keys", "create", "--json", "--description", "bench"],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return json.loads(out)

    def start(self) -> None:
        self.log = open(self.dir / "server.log", "wb")
        self.proc = subprocess.Popen(
            [str(LOOPIN), "serve", "--workers", str(self.backend.processes)],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {(self.dir / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError("server did not come up in 60 s")
        # With --workers N give every process time to finish importing and bind.
        want = self.backend.processes + (1 if self.backend.processes > 1 else 0)
        while len(tree(self.proc.pid)) < want and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0 if self.backend.processes > 1 else 0.2)

    keep_log_as: Path | None = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()
            text = (self.dir / "server.log").read_text(errors="replace")
            if self.keep_log_as is not None and len(text.splitlines()) > 3:
                self.keep_log_as.write_text(text[-200_000:])
                log(f"server log ({len(text.splitlines())} lines) kept: {self.keep_log_as}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


# -- set-up through the API ------------------------------------------------------------


def setup_resources(srv: Server, key: dict[str, str], workers: int) -> list[str]:
    """Teams, template and flows; returns the worker e-mails (members of team 'crew')."""
    from loopin.client import Client

    with Client(srv.url, access_key_id=key["access_key_id"], secret_access_key=key["secret_access_key"]) as c:
        c.create_team("crew", description="Benchmark workers")
        c.create_team("idle", description="No members")
        c.create_task_ui("classify", template=TEMPLATE)
        common = dict(task_ui="classify", title="Classify", description="What is in the image?", task_count=1)
        c.create_flow("starts", team="idle", output_path="s3://bench-output/starts", **common)
        c.create_flow("claims", team="crew", output_path="s3://bench-output/claims", **common)
        c.create_flow("claimsp", team="crew", output_path="s3://bench-output/claimsp", **common)
        c.create_flow("bulk", team="crew", output_path="s3://bench-output/bulk", **common)
        emails = [f"w{i:03d}@bench.example" for i in range(workers)]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda e: c.create_worker(e, teams=["crew"], password=PASSWORD), emails))
    return emails


def sign_in_all(srv: Server, emails: list[str]) -> list[str]:
    def one(email: str) -> str:
        r = httpx.post(
            srv.url + "/api/v1/worker/sign-in",
            json={"email": email, "password": PASSWORD},
            timeout=60,
        )
        r.raise_for_status()
        return str(r.json()["token"])

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, emails))


# -- phase 1: starts with wrk ------------------------------------------------------------


def run_wrk(srv: Server, seconds: float, conns: int, args: list[str], threads: int = 1) -> dict[str, Any]:
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{conns}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(WRK_SCRIPT),
        srv.url,
        "--",
        *args,
    ]
    with CpuMeter(srv.pid) as meter:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        out = proc.stdout.read().decode() if proc.stdout else ""
        err = proc.stderr.read().decode() if proc.stderr else ""
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed: {err}\n{out}")
    line = next(ln for ln in out.splitlines() if ln.startswith("JSON "))
    r = json.loads(line[5:])
    dur = r["duration_us"] / 1e6
    ok = r["requests"] - r["err_status"]
    cpu = meter.result
    cpu["loadgen_cores"] = round((usage.ru_utime + usage.ru_stime) / dur, 2)
    cpu["other_cores"] = round(cpu["other_cores"] - cpu["loadgen_cores"], 2)
    return {
        "requests": r["requests"],
        "ok": ok,
        "errors": r["err_status"] + r["err_connect"] + r["err_read"] + r["err_write"] + r["err_timeout"],
        "error_kinds": {k[4:]: v for k, v in r.items() if k.startswith("err_") and v},
        "rps": round(ok / dur, 1),
        "p50_ms": round(r["lat_p50_us"] / 1000, 2),
        "p90_ms": round(r["lat_p90_us"] / 1000, 2),
        "p99_ms": round(r["lat_p99_us"] / 1000, 2),
        "p999_ms": round(r["lat_p999_us"] / 1000, 2),
        "max_ms": round(r["lat_max_us"] / 1000, 2),
        "cpu": cpu,
        "server_cpu_ms_per_req": round(cpu["server_cores"] * cpu["wall_s"] / max(1, ok) * 1000, 3),
        "postgres_cpu_ms_per_req": round(cpu["postgres_cores"] * cpu["wall_s"] / max(1, ok) * 1000, 3),
    }


def phase_starts(srv: Server, backend: Backend, key: dict[str, str], cfg: argparse.Namespace) -> dict[str, Any]:
    auth = basic(key)
    conns = cfg.clients
    run = secrets.token_hex(3)
    log(f"{backend.label}: warm-up")
    if not cfg.quick:
        run_wrk(srv, cfg.warmup, conns, ["get", "/healthz"])
    run_wrk(srv, cfg.warmup, conns, ["start", f"warm{run}", "starts", auth])
    log(f"{backend.label}: GET /healthz baseline, {cfg.duration:g} s x {conns} connections")
    h1 = run_wrk(srv, cfg.duration, conns, ["get", "/healthz"])
    log(f"  healthz {h1['rps']:.0f}/s p50 {h1['p50_ms']} ms p99 {h1['p99_ms']} ms")
    log(f"{backend.label}: StartHumanLoop, {cfg.duration:g} s x {conns} connections")
    st = run_wrk(srv, cfg.duration, conns, ["start", f"s{run}", "starts", auth])
    log(
        f"  starts  {st['rps']:.0f}/s p50 {st['p50_ms']} ms p99 {st['p99_ms']} ms errors {st['errors']}  cpu {st['cpu']}"
    )
    h2 = h1 if cfg.quick else run_wrk(srv, cfg.duration, conns, ["get", "/healthz"])
    log(f"  healthz {h2['rps']:.0f}/s p50 {h2['p50_ms']} ms p99 {h2['p99_ms']} ms (after)")
    created = backend.scalar("SELECT count(*) FROM human_loops WHERE name LIKE ?", (f"s{run}-%",))
    slots = backend.scalar(
        "SELECT count(*) FROM task_slots s JOIN human_loops l ON l.id = s.loop_id WHERE l.name LIKE ?",
        (f"s{run}-%",),
    )
    base_rps = (h1["rps"] + h2["rps"]) / 2
    return {
        "healthz_before": h1,
        "start": st,
        "healthz_after": h2,
        "baseline_rps": round(base_rps, 1),
        "start_cost_vs_noop": round(base_rps / st["rps"], 2) if st["rps"] else None,
        # wrk does not count the requests still in flight when it stops; the server may
        # still complete them, so up to one per connection more loops may exist.
        "loops_created_in_db": created,
        "slots_created_in_db": slots,
        "check_created_matches": st["ok"] <= created <= st["ok"] + conns and slots == created,
    }


# -- phase 2: claims ---------------------------------------------------------------------


async def start_loops_async(
    port: int, key: dict[str, str], flow: str, prefix: str, n: int, conc: int
) -> dict[str, Any]:
    def make(i: int) -> tuple[str, str, Any]:
        body = {
            "name": f"{prefix}-{i}",
            "flow": flow,
            "input": {"taskObject": f"s3://bench-input/img/{i}.jpg"},
        }
        return "POST", "/api/v1/loops", body

    lat, errors, wall = await timed_requests(port, {"Authorization": "Basic " + basic(key)}, conc, make, n)
    return {"n": n, "errors": errors, "rps": round(n / wall, 1), **lat_summary(lat)}


async def run_workers(port: int, tokens: list[str], flow: str) -> dict[str, Any]:
    claimed: dict[int, list[int]] = collections.defaultdict(list)  # task id -> worker indexes
    next_lat: list[float] = []
    submit_lat: list[float] = []
    errors: list[str] = []
    empty_polls = 0

    async def worker(idx: int, token: str) -> int:
        nonlocal empty_polls
        conn = Conn(port, {"Authorization": f"Bearer {token}"})
        done = 0
        try:
            while True:
                t = time.perf_counter()
                try:
                    status, payload = await conn.request("POST", "/api/v1/worker/tasks/next", {"flow": flow})
                except (OSError, asyncio.IncompleteReadError) as exc:
                    errors.append(f"next: connection {exc!r}")
                    await conn.close()  # reconnect on the next request
                    if len(errors) > 50:
                        return done
                    continue
                next_lat.append(time.perf_counter() - t)
                if status == 204:
                    empty_polls += 1
                    return done
                if status != 200:
                    errors.append(f"next {status} {payload[:200]!r}")
                    if len(errors) > 50:
                        return done
                    continue
                task_id = json.loads(payload)["task_id"]
                claimed[task_id].append(idx)
                t = time.perf_counter()
                try:
                    status, payload = await conn.request(
                        "POST", f"/api/v1/worker/tasks/{task_id}/submit", {"answer": {"label": "cat"}}
                    )
                except (OSError, asyncio.IncompleteReadError) as exc:
                    # the worker still holds the task: its next claim returns it again
                    errors.append(f"submit: connection {exc!r}")
                    await conn.close()
                    if len(errors) > 50:
                        return done
                    continue
                submit_lat.append(time.perf_counter() - t)
                if status != 204:
                    errors.append(f"submit {status} {payload[:200]!r}")
                    continue
                done += 1
        finally:
            await conn.close()

    t0 = time.perf_counter()
    counts = await asyncio.gather(*(worker(i, tok) for i, tok in enumerate(tokens)))
    wall = time.perf_counter() - t0
    # A straggler sweep: one worker takes whatever is left (there should be nothing).
    sweep = await worker(0, tokens[0])
    return {
        "wall_s": round(wall, 2),
        "submitted": sum(counts),
        "swept_after": sweep,
        "tasks_per_s": round(sum(counts) / wall, 1),
        "workers_that_did_work": sum(1 for c in counts if c),
        "next": lat_summary(next_lat),
        "submit": lat_summary(submit_lat),
        "errors": errors[:10],
        "error_count": len(errors),
        "tasks_claimed_by_two_workers": sum(1 for w in claimed.values() if len(set(w)) > 1),
        "distinct_tasks": len(claimed),
    }


def phase_claims(
    srv: Server, backend: Backend, key: dict[str, str], tokens: list[str], cfg: argparse.Namespace
) -> dict[str, Any]:
    n = cfg.claim_loops
    log(f"{backend.label}: starting {n} loops in flow 'claims' (asyncio client, {cfg.clients} connections)")
    pre = asyncio.run(start_loops_async(srv.port, key, "claims", "c", n, cfg.clients))
    log(f"  {pre['rps']:.0f} starts/s (python client) p99 {pre['p99_ms']} ms errors {pre['errors']}")
    log(f"{backend.label}: {len(tokens)} workers claim+submit")
    with CpuMeter(srv.pid) as meter:
        res = asyncio.run(run_workers(srv.port, tokens, "claims"))
    res["cpu"] = meter.result
    log(
        f"  {res['tasks_per_s']:.0f} tasks/s, next p99 {res['next']['p99_ms']} ms, submit p99 {res['submit']['p99_ms']} ms, errors {res['error_count']}, cpu {meter.result}"
    )
    time.sleep(cfg.job_wait)  # outputs are written inline; give any retried one a job round
    flow_id = backend.scalar("SELECT id FROM flow_definitions WHERE name = 'claims'")
    statuses = dict(
        backend.rows("SELECT status, count(*) FROM human_loops WHERE flow_id = ? GROUP BY status", (flow_id,))
    )
    slot_states = dict(
        backend.rows("SELECT status, count(*) FROM task_slots WHERE flow_id = ? GROUP BY status", (flow_id,))
    )
    no_worker = backend.scalar(
        "SELECT count(*) FROM task_slots WHERE flow_id = ? AND (worker_id IS NULL OR submitted_at IS NULL)",
        (flow_id,),
    )
    outputs = sum(1 for _ in (srv.dir / "data" / "objects" / "bench-output" / "claims").rglob("output.json"))
    res["pre_start"] = pre
    res["db_loop_status"] = statuses
    res["db_slot_status"] = slot_states
    res["output_files"] = outputs
    res["verified"] = (
        statuses == {"Completed": n}
        and slot_states == {"submitted": n}
        and no_worker == 0
        and outputs == n
        and res["submitted"] == n
        and res["tasks_claimed_by_two_workers"] == 0
        and res["distinct_tasks"] == n
    )
    log(f"  verified={res['verified']} loops {statuses} slots {slot_states} outputs {outputs}")
    return res


# -- phase 3: a million loops ------------------------------------------------------------


def bulk_insert(backend: Backend, n: int, chunk: int = 100_000) -> dict[str, Any]:
    """Insert ``n`` loops into flow 'bulk' (9 in 10 Completed with their answer, 1 in 10
    InProgress with an available slot), created one per second up to now."""
    conn = backend.connect()
    sqlite = backend.kind == "sqlite"
    q = (lambda s: s) if sqlite else (lambda s: s.replace("?", "%s"))
    cur = conn.execute(q("SELECT id FROM flow_definitions WHERE name = ?"), ("bulk",))
    flow_id = cur.fetchone()[0]
    wids = [r[0] for r in conn.execute("SELECT id FROM workers ORDER BY id").fetchall()]
    now = int(time.time() * 1000)
    t0_ms = now - n * 1000
    far = now + 30 * 86_400_000  # InProgress loops must not expire during the benchmark
    conn.execute("CREATE TEMP TABLE bench_w (i INTEGER PRIMARY KEY, wid BIGINT)")
    for i, w in enumerate(wids):
        conn.execute(q("INSERT INTO bench_w VALUES (?, ?)"), (i, w))
    k = len(wids)
    if sqlite:
        series = "WITH RECURSIVE g(x) AS (SELECT ? UNION ALL SELECT x + 1 FROM g WHERE x < ?) "
        name = "printf('bulk-%07d', x)"
        sha = "printf('%064d', x)"
        src = "g"
    else:
        series = ""
        name = "'bulk-' || lpad(x::text, 7, '0')"
        sha = "encode(sha256(convert_to(x::text, 'UTF8')), 'hex')"
        src = "generate_series(%s::bigint, %s::bigint) AS g(x)"
    done_ = "(x % 10 <> 0)" if sqlite else "(x %% 10 <> 0)"
    loops_sql = f"""{series}
        INSERT INTO human_loops (name, flow_id, status, input_content, input_sha256, content_classifiers,
            created_at, expires_at, ended_at, failure_code, failure_reason, output_uri, output_state,
            output_final_status, output_next_attempt_at, output_attempts, output_last_error)
        SELECT {name}, {flow_id},
            CASE WHEN {done_} THEN 'Completed' ELSE 'InProgress' END,
            '{{"taskObject":"s3://bench-input/img/' || x || '.jpg","labels":["cat","dog","bird"]}}',
            {sha}, NULL,
            {t0_ms} + x * 1000,
            CASE WHEN {done_} THEN {t0_ms} + x * 1000 + 864000000 ELSE {far} END,
            CASE WHEN {done_} THEN {t0_ms} + x * 1000 + 60000 END,
            NULL, NULL,
            CASE WHEN {done_} THEN 's3://bench-output/bulk/bulk/' || {name} || '/output.json' END,
            CASE WHEN {done_} THEN 'written' ELSE 'none' END,
            CASE WHEN {done_} THEN 'Completed' END,
            NULL, CASE WHEN {done_} THEN 1 ELSE 0 END, NULL
        FROM {src}"""
    slots_sql = f"""
        INSERT INTO task_slots (loop_id, flow_id, slot_index, status, worker_id, accepted_at,
            lease_expires_at, submitted_at, answer)
        SELECT l.id, l.flow_id, 0,
            CASE WHEN l.status = 'Completed' THEN 'submitted' ELSE 'available' END,
            CASE WHEN l.status = 'Completed' THEN w.wid END,
            CASE WHEN l.status = 'Completed' THEN l.created_at + 30000 END,
            NULL,
            CASE WHEN l.status = 'Completed' THEN l.created_at + 60000 END,
            CASE WHEN l.status = 'Completed' THEN '{{"label":"cat"}}' END
        FROM human_loops l JOIN bench_w w ON w.i = l.id % {k}
        WHERE l.flow_id = {flow_id} AND l.id > ? AND l.id <= ?"""
    if not sqlite:
        slots_sql = slots_sql.replace("%", "%%").replace("?", "%s")
    t = time.perf_counter()
    for lo in range(1, n + 1, chunk):
        hi = min(n, lo + chunk - 1)
        with contextlib.nullcontext() if sqlite else conn.transaction():
            if sqlite:
                conn.execute("BEGIN IMMEDIATE")
            before = conn.execute("SELECT coalesce(max(id), 0) FROM human_loops").fetchone()[0]
            conn.execute(loops_sql, (lo, hi))
            after = conn.execute("SELECT coalesce(max(id), 0) FROM human_loops").fetchone()[0]
            conn.execute(slots_sql, (before, after))
            if sqlite:
                conn.execute("COMMIT")
        log(f"  inserted {hi:,} loops")
    insert_s = time.perf_counter() - t
    t = time.perf_counter()
    # PostgreSQL's autovacuum would analyse and vacuum after such an insert; do it now.
    # SQLite: loopin never runs ANALYZE, so neither does the benchmark.
    if not sqlite:
        conn.execute("VACUUM ANALYZE human_loops")
        conn.execute("VACUUM ANALYZE task_slots")
    analyze_s = time.perf_counter() - t
    total = conn.execute("SELECT count(*) FROM human_loops").fetchone()[0]
    conn.close()
    return {
        "inserted": n,
        "insert_s": round(insert_s, 1),
        "vacuum_analyze_s": round(analyze_s, 1),
        "loops_in_db": total,
    }


async def read_latencies(
    port: int, key: dict[str, str], n_loops: int, count: int, conc: int, prefix: str, flow: str
) -> dict[str, Any]:
    auth = {"Authorization": "Basic " + basic(key)}
    rnd = secrets.SystemRandom()
    out: dict[str, Any] = {}
    names = [
        f"{prefix}{rnd.randint(1, n_loops):07d}" if prefix == "bulk-" else f"{prefix}{rnd.randrange(n_loops)}"
        for _ in range(count)
    ]

    lat, err, wall = await timed_requests(port, auth, conc, lambda i: ("GET", f"/api/v1/loops/{names[i]}", None), count)
    out["describe"] = {**lat_summary(lat), "errors": err, "rps": round(count / wall, 1)}

    first = f"/api/v1/loops?flow={flow}&max_results=100"
    tokens: list[str] = []

    def keep_token(_: int, payload: bytes) -> None:
        page = json.loads(payload)
        assert page["loops"], "an empty page"
        if page.get("next_token"):
            tokens.append(page["next_token"])

    lat, err, wall = await timed_requests(port, auth, conc, lambda i: ("GET", first, None), count, keep_token)
    out["list_first_page"] = {**lat_summary(lat), "errors": err, "rps": round(count / wall, 1)}
    token = urllib.parse.quote(tokens[0], safe="")
    nxt = f"{first}&next_token={token}"
    lat, err, wall = await timed_requests(port, auth, conc, lambda i: ("GET", nxt, None), count, keep_token)
    out["list_next_page"] = {**lat_summary(lat), "errors": err, "rps": round(count / wall, 1)}
    return out


def phase_big(srv: Server, backend: Backend, key: dict[str, str], cfg: argparse.Namespace) -> dict[str, Any]:
    res: dict[str, Any] = {}
    small = backend.scalar("SELECT count(*) FROM human_loops")
    # The reads before the bulk insert look up the claim phase's loops.
    log(f"{backend.label}: Describe/List with {small:,} loops stored (before the bulk insert)")
    for conc in [] if cfg.skip_claims else cfg.read_concurrency:
        r = asyncio.run(read_latencies(srv.port, key, cfg.claim_loops, cfg.read_count, conc, "c-", "claims"))
        res[f"small_c{conc}"] = r
        log(f"  c={conc}: " + ", ".join(f"{k} p50 {v['p50_ms']} p99 {v['p99_ms']} ms" for k, v in r.items()))
    log(f"{backend.label}: bulk-inserting {cfg.big:,} loops")
    res["bulk"] = bulk_insert(backend, cfg.big)
    log(f"  {res['bulk']}")
    res["loops_stored"] = res["bulk"]["loops_in_db"]
    for conc in cfg.read_concurrency:
        r = asyncio.run(read_latencies(srv.port, key, cfg.big, cfg.read_count, conc, "bulk-", "bulk"))
        # one warm pass first: the pages just written are not all in the cache yet
        if conc == cfg.read_concurrency[0] and not cfg.quick:
            r = asyncio.run(read_latencies(srv.port, key, cfg.big, cfg.read_count, conc, "bulk-", "bulk"))
        with CpuMeter(srv.pid) as meter:
            r = asyncio.run(read_latencies(srv.port, key, cfg.big, cfg.read_count, conc, "bulk-", "bulk"))
        r["cpu"] = meter.result
        res[f"big_c{conc}"] = r
        log(
            f"  c={conc}: "
            + ", ".join(f"{k} p50 {v['p50_ms']} p99 {v['p99_ms']} ms" for k, v in r.items() if k != "cpu")
        )
    return res


# -- profiling ---------------------------------------------------------------------------

FRAME = re.compile(r"^(?P<fn>.+?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _pkg(path: str) -> str:
    """py-spy prints paths relative to sys.path: the first part is the package."""
    path = re.sub(r".*site-packages/", "", path)
    head, sep, _ = path.partition("/")
    if not sep:
        return "stdlib" if path.endswith(".py") or path.startswith("<") else path
    return (
        head
        if head
        not in (
            "asyncio",
            "concurrent",
            "json",
            "http",
            "email",
            "logging",
            "importlib",
            "multiprocessing",
        )
        else "stdlib"
    )


THREAD = re.compile(r"^thread \((?:0x)?[0-9A-Fa-f]+\):?\s*(?P<name>.*)$")


def summarise_profile(raw_path: Path, top: int = 25) -> dict[str, Any]:
    """Self and inclusive sample shares per function, self share per package and sample
    share per thread kind (event loop vs. worker threads vs. jobs)."""
    self_c: collections.Counter[str] = collections.Counter()
    incl_c: collections.Counter[str] = collections.Counter()
    pkg_c: collections.Counter[str] = collections.Counter()
    thread_c: collections.Counter[str] = collections.Counter()
    total = 0
    with open(raw_path) as fh:
        for line in fh:
            stack, _, count_s = line.rstrip("\n").rpartition(" ")
            try:
                count = int(count_s)
            except ValueError:
                continue
            frames = []
            thread = "?"
            for part in stack.split(";"):
                part = part.strip()
                t = THREAD.match(part)
                if t:
                    thread = re.sub(r"[\s_-]*\d+$", "", t.group("name")) or "unnamed"
                    continue
                m = FRAME.match(part)
                if not m or part.startswith("process "):
                    continue
                path = m.group("file")
                short = re.sub(r".*(site-packages|/src|/lib/python3\.\d+)/", "", path)
                frames.append((f"{short}:{m.group('fn')}", _pkg(path)))
            total += count
            names = {f for f, _ in frames}
            if "loopin/background.py:BackgroundRunner._loop" in names:
                thread = "loopin-background"
            thread_c[thread] += count
            if not frames:
                self_c["(no Python frame)"] += count
                continue
            self_c[frames[-1][0]] += count
            pkg_c[frames[-1][1]] += count
            for name in names:
                incl_c[name] += count

    def share(c: collections.Counter[str], n: int) -> list[tuple[str, float]]:
        return [(k, round(v / max(1, total) * 100, 1)) for k, v in c.most_common(n)]

    loopin_incl = collections.Counter({k: v for k, v in incl_c.items() if k.startswith("loopin/")})
    return {
        "samples": total,
        "by_thread": share(thread_c, 10),
        "by_package_self": share(pkg_c, 20),
        "self_top": share(self_c, top),
        "loopin_inclusive_top": share(loopin_incl, top),
        "inclusive_top": share(incl_c, top + 25),
    }


@contextlib.contextmanager
def py_spy(srv: Server, raw: Path) -> Iterator[dict[str, Any]]:
    """Sample the server tree while the block runs. ``--gil``: only the thread holding
    the GIL is sampled, so the shares are shares of the Python CPU time (in this
    container py-spy cannot tell idle threads, so a wall-clock profile would be mostly
    threads waiting). ``--nonblocking`` keeps the server running at full speed."""
    out: dict[str, Any] = {}
    spy = subprocess.Popen(
        [
            str(PYSPY),
            "record",
            "--pid",
            str(srv.pid),
            "--subprocesses",
            "--nonblocking",
            "--gil",
            "--threads",
            "-r",
            "200",
            "--format",
            "raw",
            "-o",
            str(raw),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(1.5)
    try:
        yield out
    finally:
        spy.send_signal(signal.SIGINT)
        try:
            _, err = spy.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            spy.kill()
            _, err = spy.communicate()
    if not raw.exists():
        log(f"py-spy wrote nothing: {err.decode()[-500:]}")
        return
    out.update(summarise_profile(raw))
    with open(raw, "rb") as src, gzip.open(str(raw) + ".gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    raw.unlink()
    out["raw_collapsed_stacks"] = (
        str(Path(str(raw) + ".gz").relative_to(ROOT)) if raw.is_relative_to(ROOT) else str(raw) + ".gz"
    )


def profile_starts(
    srv: Server, key: dict[str, str], cfg: argparse.Namespace, outdir: Path, label: str
) -> dict[str, Any] | None:
    if not PYSPY.exists():
        log("py-spy not installed: no profile (pip install py-spy)")
        return None
    log(f"profiling the start load for {cfg.profile_seconds} s with py-spy")
    with py_spy(srv, outdir / f"profile-starts-{label}.txt") as prof:
        load = run_wrk(
            srv,
            cfg.profile_seconds,
            cfg.clients,
            ["start", f"p{secrets.token_hex(3)}", "starts", basic(key)],
        )
    prof["load_during_profile"] = {k: load[k] for k in ("rps", "p50_ms", "p99_ms")}
    log(f"  {load['rps']:.0f} starts/s while profiled; by thread {prof.get('by_thread')}")
    return prof


def profile_claims(
    srv: Server,
    key: dict[str, str],
    tokens: list[str],
    cfg: argparse.Namespace,
    outdir: Path,
    label: str,
) -> dict[str, Any] | None:
    if not PYSPY.exists():
        return None
    n = cfg.profile_claim_loops
    asyncio.run(start_loops_async(srv.port, key, "claimsp", "cp", n, cfg.clients))
    log(f"profiling claim+submit of {n} tasks with py-spy")
    with py_spy(srv, outdir / f"profile-claims-{label}.txt") as prof:
        res = asyncio.run(run_workers(srv.port, tokens, "claimsp"))
    prof["load_during_profile"] = {k: res[k] for k in ("tasks_per_s", "submitted", "error_count")}
    log(f"  {res['tasks_per_s']:.0f} tasks/s while profiled; by thread {prof.get('by_thread')}")
    return prof


# -- the machine -------------------------------------------------------------------------


def background_busy(seconds: float) -> float:
    """Machine busy % while nothing of this benchmark runs (other work on the machine)."""
    b0, t0 = _machine_ticks()
    time.sleep(seconds)
    b1, t1 = _machine_ticks()
    return round((b1 - b0) / max(1, t1 - t0) * 100, 1)


def machine_info() -> dict[str, Any]:
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")),
        "?",
    )
    mem = next((int(ln.split()[1]) for ln in open("/proc/meminfo") if ln.startswith("MemTotal")), 0)
    osname = next(
        (ln.split("=", 1)[1].strip().strip('"') for ln in open("/etc/os-release") if ln.startswith("PRETTY_NAME")),
        "?",
    )
    with psycopg.connect(PG_ADMIN) as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]
        pg_settings = dict(
            conn.execute(
                "SELECT name, setting || coalesce(unit, '') FROM pg_settings WHERE name IN "
                "('shared_buffers','synchronous_commit','max_connections','fsync')"
            ).fetchall()
        )
    wrk_v = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0]
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "ram_gib": round(mem / 1024 / 1024, 1),
        "os": osname,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": pg,
        "postgresql_settings": pg_settings,
        "sqlite": sqlite3.sqlite_version,
        "wrk": wrk_v.strip(),
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "git_commit": subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip(),
    }


# -- main --------------------------------------------------------------------------------


@contextlib.contextmanager
def running(backend: Backend, workdir: Path) -> Iterator[tuple[Server, dict[str, str]]]:
    if backend.kind == "postgresql":
        backend.pg_name = create_pg_database()
        backend.url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{backend.pg_name}"
    else:
        backend.url = f"sqlite:///{workdir / backend.label / 'data' / 'loopin.db'}"
    srv = Server(backend, workdir)
    try:
        key = srv.create_key()
        srv.start()
        yield srv, key
    finally:
        srv.stop()
        if backend.pg_name:
            drop_pg_database(backend.pg_name)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a tiny version of everything (smoke check)")
    ap.add_argument("--only", default="", help="comma list of configurations: sqlite,pg1,pg2")
    ap.add_argument("--skip-big", action="store_true", help="skip the 1M-loop phase")
    ap.add_argument("--skip-claims", action="store_true", help="skip the claim+submit phase")
    ap.add_argument("--claim-loops", type=int, default=0, help="loops for the claim+submit phase (default 5,000)")
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--profile-on", default="pg2", help="comma list of configurations to profile (default pg2)")
    ap.add_argument("--out", type=Path, default=HERE / "results", help="folder for the JSON results")
    ap.add_argument("--keep", action="store_true", help="keep the temporary data directories")
    ap.add_argument(
        "--rev",
        default="",
        help="benchmark this git revision (exported with git archive) instead of the working tree, e.g. --rev HEAD;"
        " a comma list (--rev A,B) runs each configuration on each revision in turn, an A/B in one run",
    )
    cfg = ap.parse_args()
    # A plain SIGTERM would skip the clean-up (servers, databases, temp folders).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if shutil.which("wrk") is None:
        print("wrk is needed: apt-get install wrk", file=sys.stderr)
        return 2
    q = cfg.quick
    cfg.clients = 32
    cfg.warmup = 1 if q else 3
    cfg.duration = 1 if q else 15
    cfg.workers = 4 if q else 64
    cfg.claim_loops = cfg.claim_loops or (110 if q else 5000)
    cfg.big = 20_000 if q else 1_000_000
    cfg.read_count = 20 if q else 1000
    cfg.read_concurrency = [1, 16]
    cfg.profile_seconds = 1 if q else 15
    cfg.profile_claim_loops = 20 if q else 1500
    cfg.job_wait = 0.3 if q else 2
    only = set(filter(None, cfg.only.split(",")))
    configs = [
        (Backend("sqlite", "sqlite", 1), True, True),
        (Backend("pg1", "postgresql", 1), False, False),
        (Backend("pg2", "postgresql", 2), True, True),
    ]
    results: dict[str, Any] = {
        "command": " ".join([".venv/bin/python", "bench/bench_core.py", *sys.argv[1:]]),
        "machine": machine_info(),
        "params": {k: v for k, v in vars(cfg).items() if k not in ("out",)},
        "runs": {},
    }
    results["params"]["out"] = str(cfg.out)
    cfg.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    workdir = Path(tempfile.mkdtemp(prefix="loopin-bench-"))
    global SNAPSHOT_SRC
    revs = [r for r in cfg.rev.split(",") if r]
    snapshots: dict[str, Path | None] = {"": None}
    if len(revs) > 1:  # A/B: every configuration runs on each revision, back to back
        snapshots = {}
        for rev in dict.fromkeys(revs):
            snapshots[rev], commit = export_rev(rev, workdir)
            results.setdefault("sources", {})[rev] = commit
        sys.path.insert(0, str(snapshots[revs[0]]))  # the SDK used for the set-ups
        results["source"] = {"rev": cfg.rev, "commits": results.pop("sources"), "tree": "exported with git archive"}
    elif cfg.rev:
        SNAPSHOT_SRC, commit = export_rev(cfg.rev, workdir)
        sys.path.insert(0, str(SNAPSHOT_SRC))  # the SDK used for the set-up, too
        results["source"] = {"rev": cfg.rev, "commit": commit, "tree": "exported with git archive"}
    else:
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "src"], capture_output=True, text=True
        ).stdout
        results["source"] = {
            "rev": "working tree",
            "commit": results["machine"]["git_commit"],
            "src_dirty": bool(dirty.strip()),
        }
    log(f"source: {results['source']}")
    t_start = time.perf_counter()
    try:
        order = revs if len(revs) > 1 else [""]  # e.g. A,B,A: a repeated revision runs again
        for config, with_claims, with_big, rev in [(*c, r) for c in configs for r in order]:
            if only and config.label not in only:
                continue
            if rev:
                SNAPSHOT_SRC = snapshots[rev]
            label = f"{config.label}@{rev}" if rev else config.label
            earlier = sum(1 for k in results["runs"] if k.split("#")[0] == label)
            label += f"#{earlier + 1}" if earlier else ""
            backend = Backend(label, config.kind, config.processes)
            run: dict[str, Any] = {"database": backend.kind, "server_processes": backend.processes}
            if rev:
                run["rev"] = rev
            run["background_busy_pct_before"] = background_busy(0.5 if q else 3)
            log(f"{backend.label}: machine busy {run['background_busy_pct_before']}% before starting (other work)")
            with running(backend, workdir) as (srv, key):
                srv.keep_log_as = cfg.out / f"server-{backend.label}-{stamp}.log"
                emails = setup_resources(srv, key, cfg.workers if with_claims else 0)
                run["starts"] = phase_starts(srv, backend, key, cfg)
                if config.label in cfg.profile_on.split(",") and not cfg.no_profile:
                    run["profile_starts"] = profile_starts(srv, key, cfg, cfg.out, f"{backend.label}-{stamp}")
                if with_claims and not cfg.skip_claims:
                    tokens = sign_in_all(srv, emails)
                    run["claims"] = phase_claims(srv, backend, key, tokens, cfg)
                    if config.label in cfg.profile_on.split(",") and not cfg.no_profile:
                        run["profile_claims"] = profile_claims(
                            srv, key, tokens, cfg, cfg.out, f"{backend.label}-{stamp}"
                        )
                if with_big and not cfg.skip_big:
                    run["big"] = phase_big(srv, backend, key, cfg)
            results["runs"][backend.label] = run
    finally:
        if not cfg.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    results["total_s"] = round(time.perf_counter() - t_start, 1)
    path = cfg.out / f"core-{'quick-' if q else ''}{stamp}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print_summary(results)
    log(f"results: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} ({results['total_s']} s)")
    ok = all(
        r.get("claims", {}).get("verified", True) and r["starts"]["start"]["errors"] == 0
        for r in results["runs"].values()
    )
    return 0 if ok else 1


def print_summary(results: dict[str, Any]) -> None:
    print()
    print(
        f"{'config':22} {'starts/s':>9} {'p50':>7} {'p99':>7} {'healthz/s':>10} {'ratio':>6} {'tasks/s':>8} {'verified':>9}"
    )
    for label, r in results["runs"].items():
        s = r["starts"]
        c = r.get("claims", {})
        print(
            f"{label:22} {s['start']['rps']:9.0f} {s['start']['p50_ms']:7.1f} {s['start']['p99_ms']:7.1f} "
            f"{s['baseline_rps']:10.0f} {s['start_cost_vs_noop']:6.1f} "
            f"{c.get('tasks_per_s', float('nan')):8.0f} {str(c.get('verified', '-')):>9}"
        )
    for label, r in results["runs"].items():
        for k, v in r.get("big", {}).items():
            if k.startswith(("big_", "small_")):
                print(
                    f"{label:8} {k:10} "
                    + "  ".join(
                        f"{name} p50 {x['p50_ms']:.1f} p99 {x['p99_ms']:.1f} ms"
                        for name, x in v.items()
                        if name != "cpu"
                    )
                )


if __name__ == "__main__":
    sys.exit(main())
