"""``loopin exports``, ``datasets`` and ``metrics`` against a real ``loopin serve``, whose
background runner's export thread runs the job (SQLite; the API tests cover both databases)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import httpx
import pytest

from loopin.client import Client, WorkerClient
from tests.helpers import PASSWORD, setup_flow
from tests.servers import create_key, loopin_env, run_cli, serve

pytestmark = pytest.mark.slow  # a real server process


def _json(env: dict[str, str], *args: str) -> object:
    return json.loads(run_cli(env, *args, "--json").stdout)


def _reviewed(api: Client, url: str) -> None:
    emails = setup_flow(api, workers=1)
    for i in range(3):
        api.start_loop(f"l{i}", flow="review", input={"taskObject": f"s3://review-bucket/{i}.png"})
    http = httpx.Client(base_url=url)  # WorkerClient.sign_in without one leaves its sign-in connection open
    worker = WorkerClient.sign_in(url, emails[0], PASSWORD, http_client=http)
    try:
        for i in range(3):
            task = worker.next_task()
            assert task is not None
            box = {"label": "cat", "left": i, "top": 2, "width": 10, "height": 5}
            answer = {"boundingBoxes": [box], "inputImageProperties": {"width": 40, "height": 30}}
            worker.submit(task.task_id, {"annotatedResult": answer})
    finally:
        http.close()
    api.wait_for_loop("l2", timeout=30, poll_interval=0.2)


def test_export_with_progress_then_dataset_and_metrics(tmp_path: Path) -> None:
    env = loopin_env(tmp_path / "data", f"sqlite:///{tmp_path / 'loopin.db'}")
    key_id, secret = create_key(env)
    with serve(env) as url:
        env = {**env, "LOOPIN_URL": url, "LOOPIN_ACCESS_KEY_ID": key_id, "LOOPIN_SECRET_ACCESS_KEY": secret}
        with Client(url, access_key_id=key_id, secret_access_key=secret) as api:
            _reviewed(api, url)
        dest = tmp_path / "yolo.zip"
        info = _json(env, "exports", "create", "review", "--format", "yolo", "--download", str(dest))
        assert isinstance(info, dict) and info["state"] == "succeeded" and info["items"] == 3
        with zipfile.ZipFile(dest) as archive:
            assert archive.read("labels/l1.txt").decode() == "0 0.150000 0.150000 0.250000 0.166667\n"
        export_id = info["export_id"]
        status = _json(env, "exports", "status", export_id)
        assert isinstance(status, dict) and status["progress"] == 1.0
        listed = _json(env, "exports", "list", "--flow", "review")
        assert isinstance(listed, list) and [e["export_id"] for e in listed] == [export_id]
        run_cli(env, "exports", "download", export_id, str(tmp_path / "again.zip"))
        assert (tmp_path / "again.zip").read_bytes() == dest.read_bytes()
        dataset = _json(env, "datasets", "create", "yolo-1", "--export", export_id)
        assert isinstance(dataset, dict) and dataset["content_sha256"] == info["content_sha256"]
        assert [d["name"] for d in _json(env, "datasets", "list")] == ["yolo-1"]  # type: ignore[union-attr]
        assert _json(env, "datasets", "describe", "yolo-1")["items"] == 3  # type: ignore[index]
        run_cli(env, "datasets", "download", "yolo-1", str(tmp_path / "ds.zip"))
        assert (tmp_path / "ds.zip").read_bytes() == dest.read_bytes()
        metrics = _json(env, "metrics", "show", "--flow", "review")
        assert isinstance(metrics, dict) and metrics["loops"] == 0  # no loop came from an endpoint
        assert run_cli(env, "metrics", "show", "--csv").stdout.startswith("group,key,loops")
        assert "per class" in run_cli(env, "metrics", "show").stdout
        failed = run_cli(env, "exports", "create", "nope", check=False)
        assert failed.returncode == 1 and "ResourceNotFound" in failed.stderr
        assert httpx.get(f"{url}/healthz").status_code == 200
