"""Outputs written to an external S3 store (moto's stand-alone server over HTTP),
including an outage in the middle of a run."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from loopin.access_keys import create_key
from loopin.background import run_once
from loopin.clock import ManualClock
from loopin.config import Settings
from loopin.errors import ValidationError
from loopin.services import Services, build_services
from loopin.store import S3Store
from loopin.web.server import create_app
from tests.conftest import _free_port, make_bucket
from tests.helpers import admin_client, setup_flow, worker_client


def _s3_app(
    tmp_path: Path, database_url: str, endpoint: str, clock: ManualClock, *, input_locations: tuple[str, ...] = ()
) -> tuple[Services, TestClient, object]:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        s3_endpoint_url=endpoint,
        s3_access_key_id="testing",
        s3_secret_access_key="testing",
        secret_key="s3-test-" + uuid.uuid4().hex,
        input_locations=input_locations,
    )
    services = build_services(settings, clock=clock)
    with services.db.write() as session:
        key = create_key(session, secret_key=services.settings.secret_key, description="", now_ms=0)
    client = TestClient(create_app(services=services, run_background=False))
    return services, client, admin_client(client, (key.access_key_id, key.secret_access_key))


@pytest.fixture
def s3_app(
    tmp_path: Path, database_url: str, moto_endpoint: str, clock: ManualClock
) -> Iterator[tuple[Services, TestClient, object, str]]:
    bucket = f"out-{uuid.uuid4().hex[:10]}"
    make_bucket(moto_endpoint, bucket)
    services, client, admin = _s3_app(tmp_path, database_url, moto_endpoint, clock)
    yield services, client, admin, bucket
    services.db.dispose()


def test_fifty_loops_complete_with_outputs_on_s3(s3_app, clock: ManualClock) -> None:
    services, http, admin, bucket = s3_app
    assert isinstance(services.store, S3Store)
    emails = setup_flow(admin, task_count=2, output=f"s3://{bucket}/results/")
    for i in range(50):
        clock.advance(1)
        admin.start_loop(f"s3-loop-{i}", flow="review", input={"i": i})
    for email in emails[:2]:
        reviewer = worker_client(http, email)
        while (task := reviewer.next_task()) is not None:
            reviewer.submit(task.task_id, {"by": email, "i": task.input["i"]})
    for i in range(50):
        loop = admin.describe_loop(f"s3-loop-{i}")
        assert loop.status == "Completed"
        assert loop.output_uri.startswith(f"s3://{bucket}/results/review/2026/01/01/00/00/")
        doc = json.loads(services.store.get(loop.output_uri))
        assert doc["inputContent"] == {"i": i}
        assert sorted(a["answerContent"]["by"] for a in doc["humanAnswers"]) == sorted(emails[:2])
    assert len(services.store.list(f"s3://{bucket}/results/")) == 50


def test_on_an_s3_store_tasks_may_point_only_at_the_listed_input_locations(
    tmp_path: Path, database_url: str, moto_endpoint: str, clock: ManualClock
) -> None:
    """On S3, loopin's credentials can read more than any one flow should show its workers:
    without LOOPIN_INPUT_LOCATIONS only the flow's output bucket (outside the outputs) and
    the routed images' bucket are open to its tasks."""
    results, uploads = f"out-{uuid.uuid4().hex[:10]}", f"in-{uuid.uuid4().hex[:10]}"
    for bucket in (results, uploads):
        make_bucket(moto_endpoint, bucket)
    for listed, allowed in (((), False), ((f"s3://{uploads}/photos",), True)):
        services, http, admin = _s3_app(
            tmp_path / str(allowed), database_url, moto_endpoint, clock, input_locations=listed
        )
        try:
            flow = f"review-{allowed}".lower()
            setup_flow(admin, team=f"Team{allowed}", flow=flow, output=f"s3://{results}/a2i")
            routed = f"{services.settings.routing_image_location}/ep/abc.jpg"
            admin.start_loop(f"routed-{flow}", flow=flow, input={"taskObject": routed})
            admin.start_loop(f"beside-{flow}", flow=flow, input={"taskObject": f"s3://{results}/images/a.jpg"})
            photo = {"taskObject": f"s3://{uploads}/photos/a.jpg"}
            if allowed:
                admin.start_loop(f"photo-{flow}", flow=flow, input=photo)
            else:
                with pytest.raises(ValidationError) as refused:
                    admin.start_loop(f"photo-{flow}", flow=flow, input=photo)
                assert "LOOPIN_INPUT_LOCATIONS" in refused.value.message
            for outside in (f"s3://{uploads}/other/a.jpg", f"s3://{results}/a2i/{flow}/output.json"):
                with pytest.raises(ValidationError):
                    admin.start_loop(f"outside-{flow}", flow=flow, input={"taskObject": outside})
            names = sorted(loop.name for loop in admin.list_loops(flow=flow).loops)
            expected = [f"beside-{flow}", f"routed-{flow}"] + ([f"photo-{flow}"] if allowed else [])
            assert names == sorted(expected)
        finally:
            http.close()
            services.db.dispose()


def test_store_outage_keeps_the_answer_and_writes_after_recovery(
    tmp_path: Path, database_url: str, clock: ManualClock
) -> None:
    from moto.server import ThreadedMotoServer

    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    bucket = f"outage-{uuid.uuid4().hex[:8]}"
    make_bucket(endpoint, bucket)
    services, http, admin = _s3_app(tmp_path, database_url, endpoint, clock)
    try:
        emails = setup_flow(admin, output=f"s3://{bucket}/out")
        admin.start_loop("during-outage", flow="review", input={"x": 1})
        worker = worker_client(http, emails[0])
        task = worker.next_task()
        moto.stop()
        worker.submit(task.task_id, {"kept": True})  # acknowledged although the store is down
        loop = admin.describe_loop("during-outage")
        assert loop.status == "InProgress" and loop.output_uri is None
        clock.advance(120)
        assert run_once(services)["outputs_written"] == 0
        assert admin.describe_loop("during-outage").status == "InProgress"
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        moto.start()
        clock.advance(600)  # past the retry back-off
        assert run_once(services)["outputs_written"] == 1
        loop = admin.describe_loop("during-outage")
        assert loop.status == "Completed"
        doc = json.loads(services.store.get(loop.output_uri))
        assert doc["humanAnswers"][0]["answerContent"] == {"kept": True}
    finally:
        moto.stop()
        services.db.dispose()
