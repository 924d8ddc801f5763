"""The Ray executor: the same 300 images on the local executor and on a Ray cluster started
inside the test (``ray.init(num_cpus=2)``) give the same predictions and the same loops; a
Ray job killed midway and resumed starts no second loop; a Ray address that cannot be
reached is refused when the job is created, with nothing stored."""

from __future__ import annotations

import json
import logging
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
from sqlalchemy import select

from loopin import batch
from loopin.clock import ManualClock
from loopin.errors import ValidationError
from loopin.models import HumanLoop
from loopin.services import Services
from tests.test_batch import admin, deploy, jsonl, loop_count, prediction_count, variants, write_folder

__all__ = ["admin"]  # the fixture, shared with test_batch.py

pytestmark = pytest.mark.slow


@pytest.fixture
def database_url(tmp_path: Path, sqlite_template: Path) -> str:
    """SQLite only: the Ray executor changes where the model runs, not what is stored (the
    batch jobs' storage is tested on both databases in test_batch.py), and these runs are
    the slowest of the suite."""
    shutil.copyfile(sqlite_template, tmp_path / "loopin.db")
    return f"sqlite:///{tmp_path / 'loopin.db'}"


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    for attempt in range(2):  # Ray gives its node 30 s to start: on a loaded machine, try again
        try:
            ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
            break
        except Exception:
            ray.shutdown()
            if attempt:
                raise
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def three_hundred() -> list[tuple[str, bytes]]:
    """300 distinct files (two of the bundled photos are the same picture: their variants are
    left out the second time)."""
    seen: set[bytes] = set()
    images = [(key, data) for key, data in variants(400) if not (data in seen or seen.add(data))]
    assert len(images) >= 300
    return images[:300]


def loop_inputs(services: Services, names: list[str]) -> dict[str, str]:
    with services.db.read() as s:
        rows = s.execute(select(HumanLoop.name, HumanLoop.input_content).where(HumanLoop.name.in_(names))).all()
    return {name: content for name, content in rows}


def test_ray_gives_the_local_executors_answers_and_loops_and_resumes_without_duplicates(
    admin, services: Services, clock: ManualClock, ray_cluster: None, three_hundred
) -> None:
    deploy(admin, services, threshold=0.6)
    folder = write_folder(services.settings.data_dir / "photos", three_hundred)

    admin.create_batch_job(endpoint="detector", source=str(folder), output="s3://results/local", name="local")
    assert batch.run_next(services, owner="runner-a") == "local"
    local = admin.describe_batch_job("local")
    assert (local.status, local.done, local.executor) == ("Completed", 300, "local")

    job = admin.create_batch_job(
        endpoint="detector", source=str(folder), output="s3://results/ray", name="on-ray", executor="ray"
    )
    assert (job.executor, job.address, job.total) == ("ray", "auto", 300)
    # Runner A takes the job and is killed after 120 images (its lease is not released) ...
    assert batch.claim_job(services, "runner-a") == "on-ray"
    assert batch.run_job(services, "on-ray", owner="runner-a", max_images=120) == "Running"
    halfway = admin.describe_batch_job("on-ray")
    assert halfway.done == 120 and halfway.status == "Running"
    # ... one image between its invocation and its checkpoint (its loop may be started).
    with services.db.write() as s:
        item = s.scalar(
            select(batch.BatchItem)
            .where(batch.BatchItem.status == "done", batch.BatchItem.loop_name.is_not(None))
            .order_by(batch.BatchItem.id.desc())
            .limit(1)
        )
        assert item is not None
        item.status, item.result = "pending", None
    clock.advance(services.settings.batch_lease_seconds + 1)
    assert batch.run_next(services, owner="runner-b") == "on-ray"
    on_ray = admin.describe_batch_job("on-ray")
    assert (on_ray.status, on_ray.done, on_ray.failed) == ("Completed", 300, 0)

    # The same predictions, routing and loops, image by image.
    by_local = {line["key"]: line for line in jsonl(services, local.predictions_uri)}
    by_ray = {line["key"]: line for line in jsonl(services, on_ray.predictions_uri)}
    assert sorted(by_local) == sorted(by_ray) == sorted(key for key, _ in three_hundred)
    for key, line in by_local.items():
        other = by_ray[key]
        assert other["detections"] == line["detections"], key
        assert (other["image"], other["model"], other["routing"]) == (line["image"], line["model"], line["routing"])
        assert bool(other["human_loop"]) == bool(line["human_loop"]), key
    routed = [key for key, line in by_local.items() if line["human_loop"]]
    assert routed and len(routed) < 300 and on_ray.routed == local.routed == len(routed)
    local_inputs = loop_inputs(services, [by_local[k]["human_loop"]["name"] for k in routed])
    ray_inputs = loop_inputs(services, [by_ray[k]["human_loop"]["name"] for k in routed])
    for key in routed:  # the same pre-filled boxes on the same stored image
        assert ray_inputs[by_ray[key]["human_loop"]["name"]] == local_inputs[by_local[key]["human_loop"]["name"]]
    # No image ran twice, no loop started twice: one prediction per image and job.
    assert prediction_count(services) == 600
    assert loop_count(services) == 2 * len(routed)
    out = json.loads(services.store.get(f"s3://results/ray/{routed[0]}.out"))
    assert out["detections"] == by_local[routed[0]]["detections"]


def test_a_ray_address_that_cannot_be_reached_is_refused_with_nothing_stored(
    admin, services: Services, three_hundred
) -> None:
    deploy(admin, services)
    folder = write_folder(services.settings.data_dir / "few", three_hundred[:3])
    with socket.socket() as closed:  # a port with nothing listening
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}", "no-port-here"):
        with pytest.raises(ValidationError) as caught:
            admin.create_batch_job(
                endpoint="detector", source=str(folder), output="s3://results/x", executor="ray", address=address
            )
        assert caught.value.details["reason"] == "RayUnreachable", address
        assert address in caught.value.message
    with pytest.raises(ValidationError, match="Ray executor only"):
        admin.create_batch_job(endpoint="detector", source=str(folder), output="s3://results/x", address="auto")
    assert admin.list_batch_jobs() == []
