"""The per-process flow cache of loop starts and claims (``flow_cache``): every change to a
flow or its gold settings draws a new generation in its own transaction, so a start or a
claim never uses a stale copy; a change rolled back never reaches the cache."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from loopin import flows, loops
from loopin.client import Client
from loopin.errors import NotFoundError, ValidationError
from loopin.models import Generation
from loopin.services import Services
from tests.helpers import admin_client, setup_flow, worker_client


@pytest.fixture
def admin(app_client: TestClient, access_key: tuple[str, str]) -> Client:
    return admin_client(app_client, access_key)


def _generation(services: Services) -> int:
    with services.db.read() as s:
        return int(s.scalar(select(Generation.value).where(Generation.name == "flows")) or 0)


def test_starts_see_every_flow_change_and_leave_the_generation(admin: Client, services: Services) -> None:
    setup_flow(admin, workers=1)
    admin.start_loop("one", flow="review", input={"a": 1})
    before = _generation(services)
    admin.start_loop("two", flow="review", input={"a": 2})
    assert _generation(services) == before  # starts read it, they do not move it

    admin.update_flow("review", task_count=2)
    assert _generation(services) != before
    admin.start_loop("three", flow="review", input={"a": 3})
    assert admin.describe_loop("three").task_count == 2

    # A new flow's output location is closed to inputs at once (the cached list of them too).
    admin.create_flow(
        "other", team="MyTeam", task_ui="boxes", title="t", description="d", output_path="s3://other-out/results"
    )
    with pytest.raises(ValidationError, match="may not grant"):
        admin.start_loop("four", flow="review", input={"taskObject": "s3://other-out/results/x.json"})

    admin.delete_flow("other")
    with pytest.raises(NotFoundError):
        admin.start_loop("five", flow="other", input={"a": 5})


def test_a_change_rolled_back_never_reaches_the_cache(admin: Client, services: Services) -> None:
    setup_flow(admin, workers=1)
    admin.start_loop("one", flow="review", input={"a": 1})  # the cache holds the flow now
    with pytest.raises(RuntimeError), services.db.write() as s:
        flow = flows.get_flow(s, "review")
        flow.task_count = 3
        # Started inside the changing transaction: it sees its own change, past the cache.
        loop, _ = loops.start_loop(s, name="inside", flow_name="review", input_content="{}", now_ms=1)
        assert loops.answers_wanted(s, loop) == 3
        raise RuntimeError("roll back")
    admin.start_loop("after", flow="review", input={"a": 2})
    assert admin.describe_loop("after").task_count == 1


def test_claims_see_a_gold_rate_change_at_once(admin: Client, app_client: TestClient, services: Services) -> None:
    emails = setup_flow(admin, workers=1)
    answer = {"annotatedResult": {"boundingBoxes": [], "inputImageProperties": {"height": 4, "width": 6}}}
    admin.add_gold_item("review", input={"taskObject": "s3://review-bucket/gold.jpg"}, answer=answer)
    for i in range(3):
        admin.start_loop(f"loop-{i}", flow="review", input={"taskObject": f"s3://review-bucket/{i}.jpg"})
    worker = worker_client(app_client, emails[0])
    first = worker.next_task("review")  # the cache now holds "no flow draws gold"
    assert first is not None and "gold" not in first.input["taskObject"]
    worker.submit(first.task_id, answer)

    before = _generation(services)
    admin.set_gold_settings("review", rate=1.0)
    assert _generation(services) != before
    served = worker.next_task("review")
    assert served is not None and served.input["taskObject"] == "s3://review-bucket/gold.jpg"
    worker.submit(served.task_id, answer)

    admin.set_gold_settings("review", rate=0.0)  # no item left to serve anyway; rate 0 must hold too
    after = worker.next_task("review")
    assert after is not None and "gold" not in after.input["taskObject"]
