#!/usr/bin/env python
"""Model endpoint benchmark: raw onnxruntime in-process versus the endpoint over HTTP.

    .venv/bin/python bench/bench_inference.py            # full run (5-10 minutes on 2 cores)
    .venv/bin/python bench/bench_inference.py --quick    # smoke check (about a minute)

The same photographs (tests/data/*.jpg), in the same run, three ways:

- ``raw``: ``loopin.inference.Detector.builtin("nanodet-g-416-coco").detect(jpeg_bytes)``
  in this process (decode + pre-processing + onnxruntime + post-processing), with the
  same onnxruntime threads as the server and the same bound on concurrent inferences as
  the endpoint's variant (``instance_count``; first come, first served).
- ``native``: ``POST /api/v1/endpoints/{name}/invoke`` on a ``loopin serve`` subprocess
  (SQLite in a temp data dir; every call also writes the prediction log row).
- ``sagemaker``: ``POST /endpoints/{name}/invocations`` (``Accept: json``, the GluonCV
  array) on the same server, signed with AWS SigV4 (botocore's signer, as boto3 does).

HTTP clients are httpx keep-alive connections, one per client thread, with the access key
as HTTP Basic on the native route and as the SigV4 key pair on the SageMaker path. Configurations (onnxruntime threads per inference = the server's
``LOOPIN_INFERENCE_THREADS``, ``instance_count`` of the variant, concurrent clients):

    A  threads 1, instances 1, 1 client        B  threads 2, instances 1, 1 client
    C  threads 1, instances 2, 2 clients       D  threads 2, instances 1, 2 clients
    E  threads 2, instances 2, 2 clients       (--quick: A and C only)

Each configuration warms up every mode, then runs ``--rounds`` short rounds; in each
round every mode serves ``--per-client`` images per client (default 4: each photo once),
the order of the modes rotating from round to round, so that raw and HTTP runs are
seconds apart and a burst of background load does not hit one mode only.
Reported per mode: throughput (images / wall time, all rounds), p50 and p90 latency; per
HTTP mode: throughput ratio HTTP / raw and p50 overhead (ms). CPU seconds per image of
the server process and of this process, and the CPU used by everything else on the
machine (``others_cores``), are read from /proc for each phase.

Before that, two phases in this process:

1. In one thread, the thread CPU time per call (not disturbed by other processes) of
   ``Detector.detect``, of ``loopin.invocations.invoke`` (the endpoint code with the
   model), and of ``invoke`` with the model's answers cached: what the endpoint code
   itself costs (endpoint lookup, prediction log, JSON), without HTTP.
2. Every configuration's raw baseline, the configurations interleaved round by round:
   the figures to compare the onnxruntime settings with each other (the main runs compare
   raw with HTTP within one configuration).

Unless ``--no-profile``: py-spy profiles of the server while one client invokes the
native route (``record --gil``: where the Python time goes; and the default sampling of
active threads), summarised by function (file:function) into the JSON.

On a shared machine, ``--quiet-below 0.2`` waits before each round until other work uses
less than a fifth of the cores (at most ``--quiet-patience`` seconds).

Results: bench/results/inference-<UTC time>.json (+ the raw py-spy stacks, gzipped).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import gzip
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RESULTS = ROOT / "bench" / "results"
IMAGES = sorted((ROOT / "tests" / "data").glob("*.jpg"))
MODEL = "nanodet-g-416-coco"
HZ = os.sysconf("SC_CLK_TCK")
MODES = ("raw", "native", "sagemaker")


@dataclass(frozen=True)
class Config:
    label: str
    threads: int
    instances: int
    clients: int


FULL = (
    Config("A", 1, 1, 1),
    Config("B", 2, 1, 1),
    Config("C", 1, 2, 2),
    Config("D", 2, 1, 2),
    Config("E", 2, 2, 2),
)
QUICK = (Config("A", 1, 1, 1), Config("C", 1, 2, 2))


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


# -- CPU accounting from /proc --------------------------------------------------------


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ  # utime + stime


def self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_busy_s() -> float:
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / HZ


class CpuMeter:
    """CPU seconds of the server, of this process and of everything else, over a phase."""

    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid

    def __enter__(self) -> CpuMeter:
        self.t0 = time.perf_counter()
        self.m0, self.s0 = machine_busy_s(), self_cpu_s()
        self.v0 = proc_cpu_s(self.server_pid) if self.server_pid else 0.0
        return self

    def __exit__(self, *_: object) -> None:
        wall = time.perf_counter() - self.t0
        machine = machine_busy_s() - self.m0
        self.self_s = self_cpu_s() - self.s0
        self.server_s = (proc_cpu_s(self.server_pid) - self.v0) if self.server_pid else 0.0
        self.others_cores = max(0.0, machine - self.self_s - self.server_s) / wall if wall > 0 else 0.0


def background_busy(seconds: float = 1.0) -> float:
    """Share of the machine's cores busy while this script sleeps (other people's work)."""
    m0 = machine_busy_s()
    time.sleep(seconds)
    return (machine_busy_s() - m0) / seconds / (os.cpu_count() or 1)


def wait_for_quiet(below: float, patience: float) -> dict[str, float]:
    """Wait (at most ``patience`` s) until other work uses less than ``below`` of the cores
    for 3 s in a row; on a shared machine this keeps a configuration out of a burst."""
    start = time.monotonic()
    busy = background_busy(3.0)
    while busy >= below and time.monotonic() - start < patience:
        busy = background_busy(3.0)
    return {"waited_s": round(time.monotonic() - start, 1), "busy_share": round(busy, 3)}


# -- the server subprocess ------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, workdir: Path, threads: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = workdir / f"data-threads{threads}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPIN_")}
        self.env |= {
            "LOOPIN_DATA_DIR": str(self.data_dir),
            "LOOPIN_PORT": str(self.port),
            "LOOPIN_INFERENCE_THREADS": str(threads),
        }
        self.log_path = workdir / f"server-threads{threads}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def create_key(self) -> tuple[str, str]:
        out = subprocess.run(
            [str(BIN / "loopin"), "keys", "create", "--description", "bench", "--json"],
            env=self.env,
            check=True,
            capture_output=True,
        )
        key = json.loads(out.stdout)
        return key["access_key_id"], key["secret_access_key"]

    def start(self) -> None:
        self.log_file = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [str(BIN / "loopin"), "serve"], env=self.env, stdout=self.log_file, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"loopin serve exited: {self.log_path.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError("loopin serve did not answer /healthz within 60 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


def deploy(server: Server, key: tuple[str, str], instances: int) -> str:
    """An endpoint with the built-in model and this instance count, through the SDK."""
    from loopin import Client
    from loopin.schemas import VariantSpec

    name = f"bench-i{instances}"
    with Client(server.url, access_key_id=key[0], secret_access_key=key[1]) as client:
        client.create_endpoint_config(f"{name}-config", variants=[VariantSpec(model=MODEL, instance_count=instances)])
        client.create_endpoint(name, config=f"{name}-config")
        endpoint = client.wait_for_endpoint(name, timeout=120, poll_interval=0.2)
    if endpoint.status != "InService":
        raise RuntimeError(f"endpoint {name} is {endpoint.status}: {endpoint.failure_reason}")
    return name


# -- clients --------------------------------------------------------------------------


def run_clients(clients: int, per_client: int, one: Callable[[int, int], None]) -> tuple[list[float], float]:
    """``clients`` threads, each calling ``one(client, i)`` ``per_client`` times; returns
    every call's latency (s) and the wall time from the common start to the last answer."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    barrier = threading.Barrier(clients + 1)
    errors: list[BaseException] = []

    def work(c: int) -> None:
        barrier.wait()
        try:
            for i in range(per_client):
                t0 = time.perf_counter()
                one(c, i)
                latencies[c].append(time.perf_counter() - t0)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if errors:
        raise errors[0]
    return [x for per in latencies for x in per], wall


class FairSlots:
    """At most ``n`` holders, handed out first come, first served. A plain semaphore lets the
    thread that just released take it again at once, so with 2 clients and 1 slot one raw
    client would run many images in a row while the other waits; the server's clients
    queue in turn (each must send its next request first), and so do these."""

    def __init__(self, n: int) -> None:
        self.free = n
        self.cond = threading.Condition()
        self.queue: collections.deque[object] = collections.deque()

    def __enter__(self) -> None:
        me = object()
        with self.cond:
            self.queue.append(me)
            while self.queue[0] is not me or self.free == 0:
                self.cond.wait()
            self.queue.popleft()
            self.free -= 1
            self.cond.notify_all()

    def __exit__(self, *_: object) -> None:
        with self.cond:
            self.free += 1
            self.cond.notify_all()


def image_for(images: list[bytes], c: int, i: int) -> bytes:
    return images[(i + 2 * c) % len(images)]  # clients start on different photos


class SigV4(httpx.Auth):
    """AWS Signature Version 4 for the ``sagemaker`` service, made with botocore's signer
    (what boto3's ``sagemaker-runtime`` client sends), over the headers httpx will send."""

    def __init__(self, key_id: str, secret: str, region: str = "us-east-1") -> None:
        from botocore.auth import SigV4Auth
        from botocore.credentials import Credentials

        self.signer = SigV4Auth(Credentials(key_id, secret), "sagemaker", region)

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        from botocore.awsrequest import AWSRequest

        signed = {k: v for k, v in request.headers.items() if k.lower() in ("content-type", "accept")}
        aws = AWSRequest(method=request.method, url=str(request.url), data=request.content, headers=signed)
        self.signer.add_auth(aws)
        request.headers["X-Amz-Date"] = aws.headers["X-Amz-Date"]
        request.headers["Authorization"] = aws.headers["Authorization"]
        yield request


class HttpMode:
    """``sagemaker``: signed with SigV4 as boto3 signs; native: the access key as HTTP Basic."""

    def __init__(self, server: Server, key: tuple[str, str], endpoint: str, sagemaker: bool, clients: int) -> None:
        self.path = f"/endpoints/{endpoint}/invocations" if sagemaker else f"/api/v1/endpoints/{endpoint}/invoke"
        headers = {"Content-Type": "image/jpeg"} | ({"Accept": "json"} if sagemaker else {})
        self.http = [
            httpx.Client(
                base_url=server.url,
                auth=SigV4(*key) if sagemaker else httpx.BasicAuth(*key),
                headers=headers,
                timeout=120,
            )
            for _ in range(clients)
        ]

    def call(self, c: int, image: bytes) -> httpx.Response:
        response = self.http[c].post(self.path, content=image)
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")
        return response

    def close(self) -> None:
        for h in self.http:
            h.close()


def check_same(raw: Any, native: dict[str, Any], gluon: list[dict[str, Any]]) -> bool:
    """The endpoint answers exactly what the library computes (both HTTP formats)."""
    want = [(d.label, d.score, d.left, d.top, d.right, d.bottom) for d in raw.detections]
    got = [(d["label"], d["score"], d["left"], d["top"], d["right"], d["bottom"]) for d in native["detections"]]
    via_gluon = [(d["id"], d["score"], d["left"], d["top"], d["right"], d["bottom"]) for d in gluon]
    return want == got == via_gluon


# -- one configuration ----------------------------------------------------------------


def run_config(
    cfg: Config,
    detector: Any,
    server: Server,
    key: tuple[str, str],
    endpoint: str,
    images: list[bytes],
    rounds: int,
    per_client: int,
    quiet: Callable[[], dict[str, float]] | None = None,
) -> dict[str, Any]:
    slots = FairSlots(cfg.instances)  # the variant's instance count

    def raw_one(c: int, i: int) -> None:
        with slots:
            detector.detect(image_for(images, c, i))

    native = HttpMode(server, key, endpoint, sagemaker=False, clients=cfg.clients)
    sagemaker = HttpMode(server, key, endpoint, sagemaker=True, clients=cfg.clients)
    calls: dict[str, Callable[[int, int], None]] = {
        "raw": raw_one,
        "native": lambda c, i: native.call(c, image_for(images, c, i)) and None,
        "sagemaker": lambda c, i: sagemaker.call(c, image_for(images, c, i)) and None,
    }
    try:
        same = all(
            check_same(detector.detect(img), native.call(0, img).json(), sagemaker.call(0, img).json())
            for img in images
        )
        for mode in MODES:  # warm-up: every connection, every photo
            run_clients(cfg.clients, len(images), calls[mode])
        busy_before = background_busy()
        acc: dict[str, dict[str, Any]] = {
            m: {"lat": [], "wall": 0.0, "images": 0, "server_s": 0.0, "self_s": 0.0, "others": [], "rounds": []}
            for m in MODES
        }
        waits = []
        for r in range(rounds):
            if quiet is not None:
                waits.append(quiet())
            order = MODES[r % 3 :] + MODES[: r % 3]
            for mode in order:
                with CpuMeter(None if mode == "raw" else server.pid) as meter:
                    lat, wall = run_clients(cfg.clients, per_client, calls[mode])
                a = acc[mode]
                a["lat"] += lat
                a["wall"] += wall
                a["images"] += len(lat)
                a["server_s"] += meter.server_s
                a["self_s"] += meter.self_s
                a["others"].append(meter.others_cores)
                a["rounds"].append((len(lat) / wall, pct(lat, 0.5)))
        health = HttpMode(server, key, endpoint, sagemaker=False, clients=1)
        hz: list[float] = []
        for _ in range(200):
            t0 = time.perf_counter()
            health.http[0].get("/healthz")
            hz.append(time.perf_counter() - t0)
        health.close()
    finally:
        native.close()
        sagemaker.close()

    out: dict[str, Any] = {
        "config": cfg.label,
        "threads": cfg.threads,
        "instances": cfg.instances,
        "clients": cfg.clients,
        "same_detections_raw_native_sagemaker": same,
        "background_busy_before": round(busy_before, 3),
        "healthz_p50_ms": round(pct(hz, 0.5) * 1000, 3),
        "quiet_waits": waits,
        "modes": {},
    }
    for mode, a in acc.items():
        out["modes"][mode] = {
            "images": a["images"],
            "throughput_ips": round(a["images"] / a["wall"], 3),
            "p50_ms": round(pct(a["lat"], 0.5) * 1000, 2),
            "p90_ms": round(pct(a["lat"], 0.9) * 1000, 2),
            "mean_ms": round(statistics.fmean(a["lat"]) * 1000, 2),
            "server_cpu_ms_per_image": round(a["server_s"] / a["images"] * 1000, 2),
            "bench_cpu_ms_per_image": round(a["self_s"] / a["images"] * 1000, 2),
            "others_cores": round(statistics.fmean(a["others"]), 2),
        }
    raw = out["modes"]["raw"]
    for mode in ("native", "sagemaker"):
        m = out["modes"][mode]
        m["throughput_ratio"] = round(m["throughput_ips"] / raw["throughput_ips"], 3)
        m["p50_overhead_ms"] = round(m["p50_ms"] - raw["p50_ms"], 2)
        # Paired by round (the raw and HTTP runs of one round are seconds apart): the
        # median of the per-round figures is less sensitive to bursts of other work.
        pairs = list(zip(acc["raw"]["rounds"], acc[mode]["rounds"], strict=True))
        m["round_ratio_median"] = round(statistics.median(h[0] / r[0] for r, h in pairs), 3)
        m["round_p50_overhead_median_ms"] = round(statistics.median((h[1] - r[1]) * 1000 for r, h in pairs), 2)
    return out


# -- onnxruntime settings, raw only, interleaved ----------------------------------------


def compare_settings(configs: tuple[Config, ...], images: list[bytes], rounds: int) -> list[dict[str, Any]]:
    """Every configuration's raw baseline, the configurations interleaved round by round, so
    that they can be compared with each other on a machine whose load moves (the main runs
    compare raw with HTTP within a configuration, not configurations with each other)."""
    from loopin.inference import Detector

    detectors = {t: Detector.builtin(MODEL, intra_op_num_threads=t) for t in sorted({c.threads for c in configs})}
    acc: dict[str, dict[str, Any]] = {c.label: {"lat": [], "wall": 0.0, "images": 0, "cpu": 0.0} for c in configs}
    for r in range(rounds):
        for cfg in configs[r % len(configs) :] + configs[: r % len(configs)]:
            detector, slots = detectors[cfg.threads], FairSlots(cfg.instances)

            def one(c: int, i: int, detector: Any = detector, slots: FairSlots = slots) -> None:
                with slots:
                    detector.detect(image_for(images, c, i))

            cpu0 = self_cpu_s()
            lat, wall = run_clients(cfg.clients, len(images), one)
            a = acc[cfg.label]
            a["lat"] += lat
            a["wall"] += wall
            a["images"] += len(lat)
            a["cpu"] += self_cpu_s() - cpu0
    return [
        {
            "config": c.label,
            "threads": c.threads,
            "instances": c.instances,
            "clients": c.clients,
            "throughput_ips": round(acc[c.label]["images"] / acc[c.label]["wall"], 3),
            "p50_ms": round(pct(acc[c.label]["lat"], 0.5) * 1000, 2),
            "p90_ms": round(pct(acc[c.label]["lat"], 0.9) * 1000, 2),
            "cpu_ms_per_image": round(acc[c.label]["cpu"] / acc[c.label]["images"] * 1000, 2),
        }
        for c in configs
    ]


# -- where the time goes, without HTTP -------------------------------------------------


def breakdown(workdir: Path, images: list[bytes], n: int) -> dict[str, Any]:
    """Thread CPU time (immune to other processes) per call, in this process, one thread:
    ``Detector.detect`` alone; ``invocations.invoke`` (the same model through the endpoint
    code: endpoint lookup, the prediction log row, the JSON) on a SQLite data dir; and
    ``invoke`` with the model's answer cached, which leaves only the endpoint code."""
    from loopin import endpoints
    from loopin.config import Settings
    from loopin.invocations import invoke
    from loopin.services import build_services

    ctx = build_services(Settings.load(environ={}, data_dir=workdir / "data-inprocess"))
    variants = [{"variant_name": "AllTraffic", "model": MODEL}]
    ctx.write(lambda s: endpoints.create_config(s, name="inproc-config", variants=variants, now_ms=0))
    ctx.write(lambda s: endpoints.create_endpoint(s, name="inproc", config_name="inproc-config", now_ms=0))
    endpoints.deploy_pending(ctx)
    with ctx.db.read() as session:
        served = endpoints.served(ctx, endpoints.get_endpoint(session, "inproc"))
    detector = served.variants[0].detector
    answers = {img: detector.detect(img) for img in images}

    def cached(_ctx: Any, _endpoint: Any, img: bytes, *, variant: str | None = None) -> Any:
        """The model's answer without running it (nor decoding the image: raw's share)."""
        return served.variants[0].name, answers[img]

    timings: dict[str, list[float]] = {"detect": [], "invoke": [], "invoke_without_model": []}
    for i in range(n):
        img = images[i % len(images)]
        ctx.models.install("inproc", served)
        t0 = time.thread_time()
        detector.detect(img)
        t1 = time.thread_time()
        invoke(ctx, "inproc", img)
        t2 = time.thread_time()
        invoke(ctx, "inproc", img, run_model=cached)
        t3 = time.thread_time()
        timings["detect"].append(t1 - t0)
        timings["invoke"].append(t2 - t1)
        timings["invoke_without_model"].append(t3 - t2)
    ctx.db.dispose()
    return {k: round(statistics.median(v) * 1000, 2) for k, v in timings.items()} | {"calls": n}


# -- profile --------------------------------------------------------------------------


BUCKETS = (  # first match wins: (what, frame prefixes found anywhere in the stack)
    (
        "model: Detector.detect (decode, pre/post-processing, onnxruntime)",
        ("loopin/inference/detector.py:Detector.detect", "loopin/inference.py:Detector.detect"),
    ),
    ("prediction log: INSERT/UPDATE + commit + JSON", ("loopin/invocations.py:invoke.<locals>.record",)),
    ("endpoint lookup: read transaction", ("loopin/endpoints.py:get_endpoint",)),
    ("access key check: read transaction + unseal", ("loopin/api_auth.py:admin", "loopin/access_keys.py:authenticate")),
    ("rest of invocations.invoke", ("loopin/invocations.py:invoke",)),
    ("response: validation + JSON", ("fastapi/routing.py:serialize_response", "json/", "starlette/responses.py")),
    ("periodic work thread", ("loopin/background.py",)),
    (
        "HTTP: uvicorn, h11, Starlette, FastAPI, anyio, asyncio",
        ("uvicorn/", "h11/", "starlette/", "fastapi/", "anyio/", "asyncio/"),
    ),
)


def summarise_profile(path: Path, top: int = 20) -> dict[str, Any]:
    """Shares of the samples: by leaf function, inclusive by function, and by bucket."""
    leaf: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    buckets: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = [_short(f) for f in stack.split(";")]
        leaf[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n
        bucket = next((what for what, prefixes in BUCKETS if any(f.startswith(prefixes) for f in frames)), "other")
        buckets[bucket] += n

    def shares(c: collections.Counter[str], limit: int | None = top) -> list[tuple[str, float]]:
        return [(name, round(n / total, 4)) for name, n in c.most_common(limit)] if total else []

    return {
        "samples": total,
        "buckets": shares(buckets, None),
        "self": shares(leaf),
        "inclusive": shares(inclusive),
    }


def _short(frame: str) -> str:
    """``func (path/to/site-packages/pkg/mod.py:12)`` -> ``pkg/mod.py:func``."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "/src/", "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{name}" if path else name


def profile(
    server: Server, key: tuple[str, str], endpoint: str, images: list[bytes], seconds: float, stamp: str
) -> dict[str, Any] | None:
    spy_bin = BIN / "py-spy"
    if not spy_bin.exists():
        log("py-spy not installed: no profile")
        return None
    raw_path = Path(tempfile.mkdtemp()) / "profile.txt"
    results: dict[str, Any] = {}
    for kind, extra in (("gil", ["--gil"]), ("active", [])):
        cmd = [str(spy_bin), "record", "--pid", str(server.pid), "--rate", "250", "--format", "raw"]
        cmd += ["--nonblocking", "--output", str(raw_path), *extra]
        spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.0)
        mode = HttpMode(server, key, endpoint, sagemaker=False, clients=1)
        deadline = time.monotonic() + seconds
        n = 0
        t0 = time.perf_counter()
        while time.monotonic() < deadline:
            mode.call(0, images[n % len(images)])
            n += 1
        wall = time.perf_counter() - t0
        mode.close()
        spy.send_signal(2)  # SIGINT: py-spy writes the file and exits
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
        if not raw_path.exists():
            log(f"py-spy wrote nothing: {spy.stderr.read().decode()[-500:] if spy.stderr else ''}")
            return None
        summary = summarise_profile(raw_path)
        summary |= {"requests": n, "seconds": round(wall, 2), "rate_hz": 250}
        # Sampled milliseconds per request, by bucket (with --gil: while holding the GIL).
        summary["ms_per_request"] = {
            what: round(share * summary["samples"] / 250 / max(n, 1) * 1000, 2) for what, share in summary["buckets"]
        }
        results[kind] = summary
        keep = RESULTS / f"profile-inference-{kind}-{stamp}.txt.gz"
        with raw_path.open("rb") as src, gzip.open(keep, "wb") as dst:
            shutil.copyfileobj(src, dst)
        raw_path.unlink()
        results[kind]["file"] = str(keep.relative_to(ROOT))
    return results


# -- machine --------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    import onnxruntime

    import loopin

    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return {
        "loopin_source": str(Path(loopin.__file__).parent),  # PYTHONPATH may point at a snapshot
        "git_head": head,
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


@contextlib.contextmanager
def servers_for(workdir: Path, threads: int, instance_counts: set[int]) -> Iterator[tuple[Server, Any, dict[int, str]]]:
    server = Server(workdir, threads)
    key = server.create_key()
    server.start()
    try:
        endpoints = {n: deploy(server, key, n) for n in sorted(instance_counts)}
        yield server, key, endpoints
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="configurations A and C, 4 rounds")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per configuration (default 16, quick 4)")
    parser.add_argument(
        "--per-client", type=int, default=None, help="images per client per round (default 4: each photo once)"
    )
    parser.add_argument("--only", default="", help="comma-separated configuration labels, e.g. A,C")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profile")
    parser.add_argument("--keep", action="store_true", help="keep the temp data directories")
    parser.add_argument(
        "--quiet-below",
        type=float,
        default=0.0,
        help="before each round, wait until other work uses less than this share of the cores (e.g. 0.15)",
    )
    parser.add_argument(
        "--quiet-patience", type=float, default=900, help="seconds to wait for quiet at most, per round"
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the clean-up (stop the servers)
    rounds = args.rounds or (4 if args.quick else 16)
    per_client = args.per_client or 4
    configs = QUICK if args.quick else FULL
    if args.only:
        wanted = set(args.only.upper().split(","))
        configs = tuple(c for c in configs if c.label in wanted)

    from loopin.inference import Detector

    images = [p.read_bytes() for p in IMAGES]
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    RESULTS.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "machine": machine(),
        "command": " ".join([".venv/bin/python", "bench/bench_inference.py", *sys.argv[1:]]),
        "images": [p.name for p in IMAGES],
        "rounds": rounds,
        "per_client": per_client,
        "results": [],
    }
    workdir = Path(tempfile.mkdtemp(prefix="loopin-bench-inference-"))
    log(f"data in {workdir}; {len(configs)} configurations, {rounds} rounds x {per_client} images per client")
    try:
        report["cpu_ms_per_call_in_process"] = breakdown(workdir, images, 8 if args.quick else 24)
        log(f"thread CPU ms per call, in process: {report['cpu_ms_per_call_in_process']}")
        report["raw_settings_interleaved"] = compare_settings(configs, images, 2 if args.quick else 8)
        for row in report["raw_settings_interleaved"]:
            log(f"raw, settings interleaved: {row}")
        for threads in sorted({c.threads for c in configs}):
            group = [c for c in configs if c.threads == threads]
            detector = Detector.builtin(MODEL, intra_op_num_threads=threads)
            with servers_for(workdir, threads, {c.instances for c in group}) as (server, key, endpoints):
                for cfg in group:
                    log(f"config {cfg}")
                    endpoint = endpoints[cfg.instances]
                    quiet = (
                        (lambda: wait_for_quiet(args.quiet_below, args.quiet_patience)) if args.quiet_below else None
                    )
                    result = run_config(cfg, detector, server, key, endpoint, images, rounds, per_client, quiet)
                    report["results"].append(result)
                    for mode, m in result["modes"].items():
                        extra = (
                            f"  ratio {m['throughput_ratio']:.3f} (rounds {m['round_ratio_median']:.3f})"
                            f"  p50 {m['p50_overhead_ms']:+.1f} ms (rounds {m['round_p50_overhead_median_ms']:+.1f})"
                            if mode != "raw"
                            else ""
                        )
                        log(f"  {mode:9} {m['throughput_ips']:6.2f} img/s  p50 {m['p50_ms']:7.1f} ms{extra}")
                if threads == 1 and not args.no_profile and any(c.label == "A" for c in group):
                    log("profiling the server (py-spy) under one native client")
                    report["profile"] = profile(server, key, endpoints[1], images, 8 if args.quick else 20, stamp)
            del detector
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    out = RESULTS / f"inference-{stamp}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    log(f"results in {out.relative_to(ROOT)}")
    print(table(report))


def table(report: dict[str, Any]) -> str:
    lines = [
        "| Config | ORT threads | instances | clients | mode | images/s | p50 ms | p90 ms "
        "| HTTP/raw (median of rounds) | p50 overhead ms (median of rounds) | server CPU ms/img |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in report["results"]:
        for mode, m in r["modes"].items():
            http = mode != "raw"
            ratio = f"{m['throughput_ratio']:.3f} ({m['round_ratio_median']:.3f})" if http else "–"
            over = f"{m['p50_overhead_ms']:+.1f} ({m['round_p50_overhead_median_ms']:+.1f})" if http else "–"
            cpu = m["server_cpu_ms_per_image"] if http else m["bench_cpu_ms_per_image"]
            lines.append(
                f"| {r['config']} | {r['threads']} | {r['instances']} | {r['clients']} | {mode} | "
                f"{m['throughput_ips']:.2f} | {m['p50_ms']:.1f} | {m['p90_ms']:.1f} | {ratio} | {over} | {cpu:.1f} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
