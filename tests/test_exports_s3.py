"""Exports to an S3 prefix, against moto's S3 server (both databases): the files land under
the prefix with ``loopin-export.json`` written last; a bucket that cannot be written is a 400
before any job exists."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loopin.clock import ManualClock
from loopin.errors import ValidationError
from loopin.exports import run_pending_exports
from loopin.services import Services
from tests.conftest import make_bucket
from tests.helpers import setup_flow, worker_client
from tests.test_exports import png
from tests.test_output_s3 import _s3_app


@pytest.fixture
def s3(tmp_path: Path, database_url: str, moto_endpoint: str, clock: ManualClock) -> Iterator[tuple[Any, ...]]:
    bucket = f"exp-{uuid.uuid4().hex[:10]}"
    make_bucket(moto_endpoint, bucket)
    services, http, admin = _s3_app(
        tmp_path, database_url, moto_endpoint, clock, input_locations=(f"s3://{bucket}/images",)
    )
    yield services, http, admin, bucket
    http.close()
    services.db.dispose()


def test_a_manifest_export_to_an_s3_prefix(s3: tuple[Any, ...]) -> None:
    services, http, admin, bucket = s3
    assert isinstance(services, Services)
    emails = setup_flow(admin, workers=1, output=f"s3://{bucket}/a2i")
    for i in range(2):
        uri = f"s3://{bucket}/images/{i}.png"
        services.store.put(uri, png(40 + i, 30), content_type="image/png")
        admin.start_loop(f"s3-{i}", flow="review", input={"taskObject": uri})
    worker = worker_client(http, emails[0])
    for i in range(2):
        task = worker.next_task()
        assert task is not None
        box = {"label": "cat", "left": i, "top": 1, "width": 5, "height": 6}
        worker.submit(task.task_id, {"annotatedResult": {"boundingBoxes": [box]}})  # sizes read from the images
    info = admin.create_export("review", format="manifest", target="s3", location=f"s3://{bucket}/training/run-1/")
    assert run_pending_exports(services) == 1
    done = admin.get_export(info.export_id)
    assert done.state == "succeeded" and done.location == f"s3://{bucket}/training/run-1"
    keys = [o.uri.rsplit("/run-1/", 1)[1] for o in services.store.list(f"s3://{bucket}/training/run-1/")]
    assert sorted(keys) == ["loopin-export.json", "loops.txt", "output.manifest"]
    lines = services.store.get(f"s3://{bucket}/training/run-1/output.manifest").decode().splitlines()
    sizes = [json.loads(line)["label"]["image_size"][0]["width"] for line in lines]
    assert sizes == [40, 41]
    meta = json.loads(services.store.get(f"s3://{bucket}/training/run-1/loopin-export.json"))
    assert meta["content_sha256"] == done.content_sha256 and meta["items"] == 2
    assert not [p for p in (services.settings.data_dir / "exports").iterdir()]  # the staging folder is gone


def test_an_unwritable_s3_target_is_refused_at_once(s3: tuple[Any, ...]) -> None:
    services, http, admin, bucket = s3
    emails = setup_flow(admin, workers=1, output=f"s3://{bucket}/a2i")
    services.store.put(f"s3://{bucket}/images/x.png", png(10, 10), content_type="image/png")
    admin.start_loop("only", flow="review", input={"taskObject": f"s3://{bucket}/images/x.png"})
    worker = worker_client(http, emails[0])
    task = worker.next_task()
    assert task is not None
    worker.submit(task.task_id, {"category": {"label": "cat"}})
    with pytest.raises(ValidationError) as refused:
        admin.create_export("review", format="csv", target="s3", location="s3://no-such-bucket-for-loopin/x")
    assert refused.value.details == {"reason": "TargetNotWritable"}
    assert admin.list_exports() == []
