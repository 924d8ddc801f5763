"""Batch jobs: an endpoint's model over a folder, an S3 prefix or a manifest, the routing rule
starting loops, per-image checkpoints (resume after a runner dies starts no second loop and
runs no image twice), bad images listed, bad input refused before work starts."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageOps
from sqlalchemy import func, select

from loopin import batch, invocations
from loopin.access_keys import create_key
from loopin.background import run_once
from loopin.clock import ManualClock
from loopin.config import Settings
from loopin.endpoints import detect, get_endpoint
from loopin.errors import ConflictError, LoopinError, StoreUnavailableError, ValidationError
from loopin.models import HumanLoop, Prediction
from loopin.schemas import RoutingRule, VariantSpec
from loopin.services import Services, build_services
from loopin.store import S3Store
from loopin.web.server import create_app
from tests.conftest import make_bucket
from tests.helpers import admin_client, setup_flow

DATA = Path(__file__).parent / "data"
PHOTOS = [DATA / n for n in ("astronaut.jpg", "chelsea.jpg", "coffee.jpg", "motorcycle_left.jpg")]
DEMO = Path(__file__).parents[1] / "src" / "loopin" / "demo_data" / "astronaut.jpg"
BUILTIN = "nanodet-g-416-coco"


def variants(count: int) -> Iterator[tuple[str, bytes]]:
    """``count`` distinct images made from the bundled photos: crops, flips, sizes, JPEG and PNG."""
    made = 0
    sources = [*PHOTOS, DEMO]
    for round_ in range(100):
        for i, path in enumerate(sources):
            if made == count:
                return
            with Image.open(path) as photo:
                img = photo.convert("RGB")
            w, h = img.size
            cut = 0.04 * (round_ % 5)
            img = img.crop((int(w * cut), int(h * cut * (i % 2)), w - int(w * cut / 2), h - int(h * cut / 3)))
            if round_ % 2:
                img = ImageOps.mirror(img)
            shrink = round_ // 20  # past 100 images: the crops, flips and formats come round again
            img.thumbnail((320 - 16 * (round_ % 4) - shrink, 320 - shrink))
            buf = io.BytesIO()
            fmt = "PNG" if (round_ + i) % 4 == 0 else "JPEG"
            img.save(buf, format=fmt, **({"quality": 70 + round_ % 25} if fmt == "JPEG" else {}))
            made += 1
            yield f"set{round_ % 3}/img-{made:03d}.{'png' if fmt == 'PNG' else 'jpg'}", buf.getvalue()


@pytest.fixture(scope="module")
def image_set(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, bytes]]:
    return list(variants(60))


@pytest.fixture
def admin(app_client: TestClient, access_key: tuple[str, str]):
    return admin_client(app_client, access_key)


def deploy(admin, services: Services, *, threshold: float = 0.6, name: str = "detector") -> None:
    setup_flow(admin, workers=1)
    admin.create_endpoint_config(f"{name}-config", variants=[VariantSpec(model=BUILTIN, instance_count=2)])
    admin.create_endpoint(name, config=f"{name}-config", routing=RoutingRule(flow="review", threshold=threshold))
    run_once(services)
    assert admin.describe_endpoint(name).status == "InService"


def write_folder(root: Path, images: list[tuple[str, bytes]]) -> Path:
    for key, data in images:
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(data)
    return root


def loop_count(services: Services) -> int:
    with services.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(HumanLoop)) or 0)


def prediction_count(services: Services) -> int:
    with services.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(Prediction)) or 0)


def jsonl(services: Services, uri: str) -> list[dict]:
    return [json.loads(line) for line in services.store.get(uri).decode().splitlines()]


def test_a_folder_of_sixty_images_matches_single_invocations_and_starts_the_right_loops(
    admin, services: Services, image_set
) -> None:
    deploy(admin, services)
    folder = write_folder(services.settings.data_dir / "incoming", image_set)
    (folder / "set0" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (folder / "notes.txt").write_text("not an image")
    job = admin.create_batch_job(endpoint="detector", source=str(folder), output="s3://results/run1", name="run1")
    assert (job.status, job.total, job.pending, job.source_kind) == ("Pending", 61, 61, "folder")

    assert batch.run_next(services, owner="runner-a") == "run1"
    done = admin.describe_batch_job("run1")
    assert (done.status, done.done, done.failed, done.pending) == ("Completed", 60, 1, 0)
    [bad] = admin.batch_job_failures("run1")
    assert bad.key == "set0/broken.jpg" and bad.reason.startswith("ValidationException")

    lines = jsonl(services, done.predictions_uri)
    assert [line["key"] for line in lines] == sorted(key for key, _ in image_set)
    assert jsonl(services, "s3://results/run1/failures.jsonl")[0]["key"] == "set0/broken.jpg"
    by_key = dict(image_set)
    with services.db.read() as s:
        endpoint = get_endpoint(s, "detector")
    for line in lines[::6]:  # the same answer as a single invocation of the same image
        _, single = detect(services, endpoint, by_key[line["key"]])
        assert line["detections"] == [d.to_dict() for d in single.detections], line["key"]
        out = json.loads(services.store.get(f"s3://results/run1/{line['key']}.out"))
        assert out["detections"] == line["detections"]
    routed = [line for line in lines if line["routing"]["reason"]]
    assert routed and len(routed) < len(lines)  # some doubtful, some confident
    assert all(line["human_loop"]["name"] for line in routed)
    assert not any(line["human_loop"] for line in lines if not line["routing"]["reason"])
    assert loop_count(services) == len(routed) == done.routed
    with services.db.read() as s:
        assert int(s.scalar(select(func.count()).select_from(Prediction)) or 0) == 60
    # Confident boxes are pre-filled in the loop's input.
    for line in routed[:5]:
        loop = admin.describe_loop(line["human_loop"]["name"])
        confident = [d for d in line["detections"] if d["score"] >= 0.6]
        assert loop.input["taskObject"].startswith("s3://")
        assert len(loop.input["initialValue"]) == len(confident)

    # Running the same job again (same name, same arguments) starts nothing new.
    again = admin.create_batch_job(endpoint="detector", source=str(folder), output="s3://results/run1", name="run1")
    assert again.status == "Completed"
    assert batch.run_next(services, owner="runner-b") is None
    assert loop_count(services) == len(routed) and prediction_count(services) == 60


def test_resume_after_a_runner_dies_midway_redoes_nothing_and_starts_no_second_loop(
    admin, services: Services, clock: ManualClock, image_set
) -> None:
    deploy(admin, services, threshold=0.9)
    images = image_set[:24]
    folder = write_folder(services.settings.data_dir / "resume", images)
    admin.create_batch_job(endpoint="detector", source=folder.as_uri(), output="s3://results/resume", name="resume")

    # Runner A takes the job and dies after 10 images (kill -9: its lease is not released).
    assert batch.claim_job(services, "runner-a") == "resume"
    assert batch.run_job(services, "resume", owner="runner-a", workers=2, max_images=10) == "Running"
    assert admin.describe_batch_job("resume").done == 10
    loops_then = loop_count(services)
    # A crash between an image's invocation and its checkpoint: the image is pending again.
    with services.db.write() as s:
        item = s.scalar(select(batch.BatchItem).where(batch.BatchItem.status == "done").limit(1))
        assert item is not None
        item.status, item.result = "pending", None
    # While A's lease lasts nobody else takes the job.
    assert batch.run_next(services, owner="runner-b") is None
    clock.advance(services.settings.batch_lease_seconds + 1)
    assert batch.run_next(services, owner="runner-b") == "resume"

    job = admin.describe_batch_job("resume")
    assert (job.status, job.done, job.failed) == ("Completed", 24, 0)
    assert prediction_count(services) == 24  # no image ran twice (the replayed one was answered from the log)
    lines = jsonl(services, job.predictions_uri)
    assert len(lines) == 24 and loop_count(services) == sum(1 for x in lines if x["human_loop"]) == job.routed
    assert loop_count(services) >= loops_then
    assert len({x["human_loop"]["name"] for x in lines if x["human_loop"]}) == job.routed


def test_a_loop_that_cannot_start_fails_its_image_alone(admin, services: Services, image_set) -> None:
    """The images whose model ran are recorded several in one transaction; one that fails
    there (a loop of the name the batch derives exists with another input) is listed as
    failed and the others of its transaction are kept."""
    deploy(admin, services, threshold=0.9)
    folder = write_folder(services.settings.data_dir / "taken", image_set[:8])
    taken = {invocations.derived_loop_name("detector", f"batch:taken:{seq}") for seq in (1, 3, 5, 7)}
    for name in taken:
        admin.start_loop(name, flow="review", input={"taskObject": "s3://elsewhere/other.jpg"})
    admin.create_batch_job(endpoint="detector", source=str(folder), output="s3://results/taken", name="taken")
    assert batch.run_next(services, owner="runner-a", workers=2) == "taken"

    job = admin.describe_batch_job("taken")
    failures = admin.batch_job_failures("taken")
    assert job.status == "Completed" and job.done + job.failed == 8
    assert 1 <= job.failed <= 4 and all(f.reason.startswith("ConflictException") for f in failures)
    assert prediction_count(services) == job.done  # a failed image leaves no prediction behind
    lines = jsonl(services, job.predictions_uri)
    assert {line["human_loop"]["name"] for line in lines if line["human_loop"]}.isdisjoint(taken)
    assert loop_count(services) == len(taken) + job.routed


def test_cancel_keeps_what_was_done(admin, services: Services, image_set) -> None:
    deploy(admin, services)
    folder = write_folder(services.settings.data_dir / "cancel", image_set[:8])
    admin.create_batch_job(endpoint="detector", source=str(folder), output="s3://results/c", name="cancel-me")
    assert batch.claim_job(services, "runner-a") == "cancel-me"
    batch.run_job(services, "cancel-me", owner="runner-a", workers=1, max_images=3)
    cancelled = admin.cancel_batch_job("cancel-me")
    assert (cancelled.status, cancelled.done, cancelled.pending) == ("Cancelled", 3, 5)
    assert batch.run_job(services, "cancel-me", owner="runner-a", workers=1) == "Cancelled"
    assert len(jsonl(services, "s3://results/c/predictions.jsonl")) == 3
    with pytest.raises(ConflictError):
        admin.cancel_batch_job("cancel-me")
    assert [j.name for j in admin.list_batch_jobs(status="Cancelled")] == ["cancel-me"]


def test_bad_input_is_refused_before_any_work(admin, services: Services, tmp_path: Path, image_set) -> None:
    deploy(admin, services)
    empty = services.settings.data_dir / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    outside = write_folder(tmp_path / "outside", image_set[:2])
    services.store.put("s3://inputs/m/good.jpg", image_set[0][1], content_type="image/jpeg")
    manifest = "\n".join(
        [
            '{"source-ref": "s3://inputs/m/good.jpg"}',
            "{not json",
            '{"label": 3}',
            "s3://inputs/m/good.jpg",
            "relative/path.jpg",
            "",
        ]
    )
    services.store.put("s3://inputs/m/broken.manifest", manifest.encode())

    cases = [
        ({"source": str(empty)}, "NoImages"),
        ({"source": "s3://inputs/nothing-here/"}, "NoImages"),
        ({"source": str(outside)}, "OutsideAllowedRoots"),
        ({"source": "/etc"}, "OutsideAllowedRoots"),
        ({"manifest": "s3://inputs/m/broken.manifest"}, "BrokenManifest"),
    ]
    for kwargs, reason in cases:
        with pytest.raises(ValidationError) as caught:
            admin.create_batch_job(endpoint="detector", output="s3://results/bad", **kwargs)
        assert caught.value.details.get("reason") == reason, (kwargs, caught.value.message)
    assert [line["line"] for line in caught.value.details["lines"]] == [2, 3, 5]

    admin.create_endpoint("not-ready", config="detector-config")  # Creating: not deployed yet
    with pytest.raises(ValidationError) as caught:
        admin.create_batch_job(endpoint="not-ready", source=str(outside), output="s3://results/bad")
    assert caught.value.details["reason"] == "EndpointNotInService"
    with pytest.raises(LoopinError) as missing:
        admin.create_batch_job(endpoint="nope", source=str(empty), output="s3://results/bad")
    assert missing.value.code == "ResourceNotFound"
    assert admin.list_batch_jobs() == []

    # A good manifest (Ground Truth lines and plain URIs, duplicates once) runs.
    services.store.put(
        "s3://inputs/m/ok.manifest", b'{"source-ref": "s3://inputs/m/good.jpg"}\ns3://inputs/m/good.jpg\n'
    )
    job = admin.create_batch_job(endpoint="detector", manifest="s3://inputs/m/ok.manifest", output="s3://results/m")
    assert (job.total, job.source_kind) == (1, "manifest")


def test_endpoint_gone_midway_fails_the_job_and_keeps_what_was_done(admin, services: Services, image_set) -> None:
    deploy(admin, services)
    folder = write_folder(services.settings.data_dir / "gone", image_set[:6])
    admin.create_batch_job(endpoint="detector", source=str(folder), output="s3://results/g", name="gone")
    batch.claim_job(services, "runner-a")
    batch.run_job(services, "gone", owner="runner-a", workers=1, max_images=2)
    admin.delete_endpoint("detector")
    assert batch.run_job(services, "gone", owner="runner-a", workers=1) == "Failed"
    job = admin.describe_batch_job("gone")
    assert (job.done, job.pending) == (2, 4) and "No endpoint named" in (job.failure_reason or "")


def test_a_store_outage_stops_the_job_and_loses_nothing(admin, services: Services, image_set) -> None:
    deploy(admin, services, threshold=0.9)
    folder = write_folder(services.settings.data_dir / "outage", image_set[:4])
    admin.create_batch_job(endpoint="detector", source=str(folder), output="s3://results/o", name="outage")
    down = dataclasses.replace(services, store=S3Store(endpoint_url="http://127.0.0.1:9", region="us-east-1",
                                                       access_key_id="x", secret_access_key="x"))  # fmt: skip
    with pytest.raises(StoreUnavailableError):
        batch.run_next(down, owner="runner-a", workers=1)
    job = admin.describe_batch_job("outage")
    assert (job.status, job.done, job.failed, job.pending) == ("Running", 0, 0, 4)  # no image blamed
    assert batch.run_next(services, owner="runner-b") == "outage"  # the lease was released: at once
    job = admin.describe_batch_job("outage")
    assert (job.status, job.done, job.failed) == ("Completed", 4, 0)
    assert loop_count(services) == job.routed


@pytest.fixture
def s3_services(tmp_path: Path, database_url: str, moto_endpoint: str, clock: ManualClock) -> Iterator[Services]:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        s3_endpoint_url=moto_endpoint,
        s3_access_key_id="testing",
        s3_secret_access_key="testing",
        secret_key="s3-test-" + uuid.uuid4().hex,
    )
    services = build_services(settings, clock=clock)
    yield services
    services.db.dispose()


def test_an_s3_prefix_on_an_s3_peer(s3_services: Services, moto_endpoint: str, image_set) -> None:
    services = s3_services
    bucket = f"in-{uuid.uuid4().hex[:10]}"
    make_bucket(moto_endpoint, bucket)
    for name in ("loopin-inputs", "review-bucket", "results"):
        with contextlib.suppress(Exception):  # made by an earlier test of the session
            make_bucket(moto_endpoint, name)
    for key, data in image_set[:6]:
        services.store.put(f"s3://{bucket}/photos/{key}", data, content_type="image/jpeg")
    services.store.put(f"s3://{bucket}/photos/set0/unreadable.png", b"\x89PNG broken", content_type="image/png")
    services.store.put(f"s3://{bucket}/photos/manifest.txt", b"not an image", content_type="text/plain")
    with services.db.write() as s:
        key = create_key(s, secret_key=services.settings.secret_key, description="", now_ms=0)
    with TestClient(create_app(services=services, run_background=False)) as http:
        admin = admin_client(http, (key.access_key_id, key.secret_access_key))
        deploy(admin, services)
        out = f"s3://results/{bucket}"
        job = admin.create_batch_job(endpoint="detector", source=f"s3://{bucket}/photos/", output=out)
        assert (job.total, job.source_kind) == (7, "prefix")
        assert batch.run_next(services, owner="runner-a") == job.name
        job = admin.describe_batch_job(job.name)
        assert (job.status, job.done, job.failed) == ("Completed", 6, 1)
        assert admin.batch_job_failures(job.name)[0].key == "set0/unreadable.png"
        lines = jsonl(services, f"{out}/predictions.jsonl")
        assert [x["source"] for x in lines] == [f"s3://{bucket}/photos/{k}" for k, _ in sorted(image_set[:6])]
        for k, _ in image_set[:6]:
            assert json.loads(services.store.get(f"{out}/{k}.out"))["detections"] is not None


@pytest.mark.slow
def test_cli_against_a_server_that_is_killed_midway(tmp_path: Path, image_set) -> None:
    """`loopin batch` against real `loopin serve` processes: the first is killed with SIGKILL
    in the middle of the job; the second takes the job over when the lease runs out and
    finishes it with no image run twice and no loop started twice."""
    import signal
    import subprocess
    import time

    import httpx

    from tests.servers import LOOPIN, _free_port, create_key, die_with_parent, loopin_env, run_cli

    data = tmp_path / "data"
    env = loopin_env(data, "", LOOPIN_BATCH_LEASE_SECONDS="5", LOOPIN_BATCH_WORKERS="1")
    key_id, secret = create_key(env)
    folder = write_folder(data / "photos", image_set[:30])

    def start() -> tuple[subprocess.Popen[bytes], dict[str, str]]:
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        log = open(tmp_path / f"serve-{port}.log", "w")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [*LOOPIN, "serve", "--port", str(port)],
            env={**env, "LOOPIN_PUBLIC_URL": url},
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        cli_env = {**env, "LOOPIN_URL": url, "LOOPIN_ACCESS_KEY_ID": key_id, "LOOPIN_SECRET_ACCESS_KEY": secret}
        return proc, cli_env

    first, cli = start()
    try:
        run_cli(cli, "teams", "create", "T", "--description", "d")
        template = tmp_path / "t.html"
        template.write_text("<crowd-form><crowd-input name='a'></crowd-input></crowd-form>")
        run_cli(cli, "templates", "create", "boxes", "--file", str(template))
        run_cli(cli, "flows", "create", "review", "--team", "T", "--template", "boxes", "--title", "t",
                "--description", "d", "--output", "s3://answers/out")  # fmt: skip
        run_cli(cli, "endpoints", "create", "det", "--model", BUILTIN, "--flow", "review", "--threshold", "0.6")
        refused = run_cli(cli, "batch", "create", "--endpoint", "det", "--source", "/etc", "--output",
                          "s3://results/x", check=False)  # fmt: skip
        assert refused.returncode == 1 and "outside the folders" in refused.stderr
        job = json.loads(run_cli(cli, "batch", "create", "--endpoint", "det", "--source", str(folder),
                                 "--output", "s3://results/cli", "--name", "cli-job", "--json").stdout)  # fmt: skip
        assert job["total"] == 30
        deadline = time.monotonic() + 120
        while json.loads(run_cli(cli, "batch", "status", "cli-job", "--json").stdout)["done"] < 5:
            assert time.monotonic() < deadline
            time.sleep(0.3)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=20)
    finally:
        if first.poll() is None:
            first.kill()
    second, cli = start()
    try:
        waited = run_cli(cli, "batch", "wait", "cli-job", "--poll", "0.5", "--json")
        job = json.loads(waited.stdout)
        assert (job["status"], job["done"], job["failed"]) == ("Completed", 30, 0)
        listed = json.loads(run_cli(cli, "batch", "list", "--json").stdout)
        assert [j["name"] for j in listed] == ["cli-job"]
        loops = json.loads(run_cli(cli, "loops", "list", "--json").stdout)
        assert len(loops) == job["routed"] == len({loop["name"] for loop in loops})
        lines = (data / "objects" / "results" / "cli" / "predictions.jsonl").read_text().splitlines()
        assert len(lines) == 30
    finally:
        second.terminate()
        second.wait(timeout=20)
    import sqlite3

    with sqlite3.connect(data / "loopin.db") as db:
        assert db.execute("select count(*) from predictions").fetchone()[0] == 30
