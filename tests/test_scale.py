"""Three `loopin serve` processes behind nginx (round robin, one PostgreSQL database, moto's
S3 server as the store), as docs/deploy.md sets them up on three hosts: the boto3
walkthrough through nginx with a worker in Chromium whose requests land on different
servers; a load of starts and claims spread over the servers (no acknowledged start lost,
no slot assigned twice); sign-in limits counted across servers; a batch job run once
whichever server's runner takes it."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import boto3
import httpx
import pytest

from loopin.client import Client, WorkerClient
from loopin.config import Settings
from loopin.errors import LoopinError
from loopin.schemas import RoutingRule, VariantSpec
from tests.conftest import _free_port, make_bucket
from tests.helpers import PASSWORD, setup_flow
from tests.servers import LOOPIN, _started, create_key, die_with_parent, loopin_env
from tests.test_aws_walkthrough import test_the_walkthrough_with_boto3_and_a_worker_in_chromium as walkthrough
from tests.test_batch import variants
from tests.test_concurrency import _run_threads

pytestmark = pytest.mark.slow

NGINX_CONF = """
{user}
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    log_format upstream '$upstream_addr $request_method $uri $status';
    access_log {tmp}/nginx-access.log upstream;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    client_max_body_size 8m;
    client_body_buffer_size 8m;
    upstream loopin {{
{servers}
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://loopin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_buffering off;
            proxy_read_timeout 300s;
        }}
    }}
}}
"""


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)


@contextmanager
def nginx(tmp: Path, upstreams: list[int], port: int) -> Iterator[tuple[str, Path]]:
    """nginx on ``port`` (unprivileged), round robin over ``upstreams``; its URL and access log."""
    binary = nginx_binary()
    if binary is None:
        pytest.skip("nginx is not installed (scripts/install-nginx.sh)")
    tmp.mkdir(parents=True, exist_ok=True)
    servers = "\n".join(f"        server 127.0.0.1:{p};" for p in upstreams)
    # Started as root (CI), nginx's workers would run as nobody, who cannot enter pytest's
    # private temporary folders: they stay root here.
    user = "user root;" if os.geteuid() == 0 else ""
    (tmp / "nginx.conf").write_text(NGINX_CONF.format(tmp=tmp, port=port, servers=servers, user=user))
    proc = subprocess.Popen(
        [binary, "-c", str(tmp / "nginx.conf"), "-p", str(tmp), "-e", str(tmp / "nginx-error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url + "/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, (tmp / "nginx-error.log").read_text()
                time.sleep(0.1)
        yield url, tmp / "nginx-access.log"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@contextmanager
def loopin_server(env: dict[str, str], data: Path, port: int) -> Iterator[None]:
    """One `loopin serve` on ``port`` with its own data directory (as on its own host)."""
    log_path = data.parent / f"serve-{port}.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [*LOOPIN, "serve", "--port", str(port)],
            env={**env, "LOOPIN_DATA_DIR": str(data)},
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
    try:
        assert _started(proc, f"http://127.0.0.1:{port}", log_path, last_attempt=True)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextmanager
def three_servers(tmp: Path, database_url: str, moto: str) -> Iterator[tuple[str, tuple[str, str], Path]]:
    """nginx's URL, an access key and nginx's access log; the three servers share the
    database, the store and the secret key, nothing else."""
    ports = [_free_port() for _ in range(3)]
    front = _free_port()
    url = f"http://127.0.0.1:{front}"
    with ExitStack() as stack:
        env = loopin_env(
            tmp / "server-0",
            database_url,
            LOOPIN_PUBLIC_URL=url,
            LOOPIN_SECRET_KEY="shared-" + uuid.uuid4().hex,
            LOOPIN_S3_ENDPOINT_URL=moto,
            LOOPIN_S3_ACCESS_KEY_ID="testing",
            LOOPIN_S3_SECRET_ACCESS_KEY="testing",
            LOOPIN_JOB_INTERVAL_SECONDS="0.5",
            LOOPIN_BATCH_WORKERS="1",
        )
        key = create_key(env)
        for i, port in enumerate(ports):
            stack.enter_context(loopin_server(env, tmp / f"server-{i}", port))
        _, access_log = stack.enter_context(nginx(tmp / "nginx", ports, front))  # after the servers answer
        yield url, key, access_log


def upstreams_of(access_log: Path, pattern: str) -> Counter[str]:
    """How many requests whose path matches ``pattern`` each server answered."""
    counts: Counter[str] = Counter()
    for line in access_log.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and re.search(pattern, parts[2]):
            counts[parts[0]] += 1
    return counts


def test_three_servers_behind_nginx(tmp_path: Path, pg_database: str, moto_endpoint: str) -> None:
    for bucket in ("review-bucket", "results", "loopin-inputs"):
        with contextlib.suppress(Exception):  # made by an earlier test of the session
            make_bucket(moto_endpoint, bucket)
    with three_servers(tmp_path, pg_database, moto_endpoint) as (url, key, access_log):
        # 1. The boto3 walkthrough through nginx, the worker in Chromium.
        settings = Settings(data_dir=tmp_path / "unused", s3_endpoint_url=moto_endpoint)
        walkthrough(url, key, settings)
        worker_pages = upstreams_of(access_log, r"^/worker/")
        assert len(worker_pages) == 3, worker_pages  # sessions and CSRF tokens held on every server
        assert len(upstreams_of(access_log, r"^/$|sagemaker|human-loops|/endpoints/")) == 3

        # 2. Starts and claims spread over the servers.
        admin = Client(url, access_key_id=key[0], secret_access_key=key[1])
        threads = 12
        emails = setup_flow(admin, team="Load", workers=threads, task_count=2, time_limit=3600)
        loops = 240
        acknowledged: Counter[int] = Counter()
        lock = threading.Lock()

        def start(t: int) -> None:
            with Client(url, access_key_id=key[0], secret_access_key=key[1]) as client:
                for i in range(t, loops, threads):
                    for index in (i, (i + 1) % loops):  # every name started twice at once
                        if client.start_loop(f"load-{index:04d}", flow="review", input={"i": index}).created:
                            with lock:
                                acknowledged[index] += 1

        _run_threads(threads, start)
        assert sorted(acknowledged) == list(range(loops)) and set(acknowledged.values()) == {1}
        assert sum(1 for loop in admin.iter_loops(flow="review")) == loops  # 0 lost acknowledged starts
        claims: list[tuple[str, int, int]] = []

        def work(t: int) -> None:
            worker = WorkerClient.sign_in(url, emails[t], PASSWORD)
            while (task := worker.next_task("review")) is not None:
                worker.submit(task.task_id, {"by": emails[t]})
                with lock:
                    claims.append((emails[t], task.task_id, task.input["i"]))

        _run_threads(threads, work)
        task_ids = Counter(task_id for _, task_id, _ in claims)
        assert len(task_ids) == 2 * loops and max(task_ids.values()) == 1  # 0 double assignments
        assert all(len({e for e, _, i in claims if i == n}) == 2 for n in range(0, loops, 7))
        assert len(upstreams_of(access_log, r"^/api/v1/worker/tasks")) == 3

        # 3. Sign-in limits: five wrong passwords, each answered by whichever server, lock the address.
        for _ in range(5):
            with pytest.raises(LoopinError):
                WorkerClient.sign_in(url, emails[0], "wrong password")
        with pytest.raises(LoopinError) as locked:
            WorkerClient.sign_in(url, emails[0], PASSWORD)
        assert locked.value.code == "ThrottlingException", locked.value.code

        # 4. A batch job created through nginx runs once, on whichever server's runner takes it.
        admin.create_endpoint_config("detector-config", variants=[VariantSpec(model="nanodet-g-416-coco")])
        admin.create_endpoint("detector", config="detector-config", routing=RoutingRule(flow="review", threshold=0.6))
        deadline = time.monotonic() + 120
        while admin.describe_endpoint("detector").status != "InService":
            assert time.monotonic() < deadline
            time.sleep(0.5)
        s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
        for name, data in variants(12):
            s3.put_object(Bucket="loopin-inputs", Key=f"scale/{name}", Body=data)
        job = admin.create_batch_job(
            endpoint="detector", source="s3://loopin-inputs/scale/", output="s3://results/scale"
        )
        job = admin.wait_for_batch_job(job.name, timeout=300, poll_interval=0.5)
        assert (job.status, job.done, job.failed) == ("Completed", 12, 0)
        lines = s3.get_object(Bucket="results", Key="scale/predictions.jsonl")["Body"].read().splitlines()
        assert len(lines) == 12 and job.routed == sum(1 for line in lines if b'"human_loop": {' in line)
        admin.close()
