"""The admin console's gold and workers page over HTTP (SQLite and PostgreSQL): gold
settings, adding and uploading gold items (a bad one refused, nothing written), deleting
one, the workers' table with a paused worker's reason and the un-pause button, and the
accuracy picture."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from loopin.client import Client
from tests.admin_support import AdminConsole
from tests.helpers import admin_client, setup_flow, worker_client
from tests.test_gold import BIKE, CAR, boxes, gold_input, real_input


@pytest.fixture
def api(app_client: TestClient, access_key: tuple[str, str]) -> Client:
    return admin_client(app_client, access_key)


def test_gold_items_settings_and_a_paused_worker_on_the_page(admin_console: AdminConsole, api: Client, app_client):
    emails = setup_flow(api, workers=2)
    assert 'href="/admin/flows/review/quality"' in admin_console.get("/admin/flows/review")
    admin_console.get("/admin/flows/review/quality")
    page = admin_console.post("/admin/flows/review/gold/settings", 400, rate="1.5", min_accuracy="", min_scored="3")
    assert "gold_rate must be a number from 0 to 1" in page.text
    admin_console.post("/admin/flows/review/gold/settings", rate="1", min_accuracy="0.5", min_scored="1")
    assert api.gold_settings("review").gold_min_accuracy == 0.5

    admin_console.get("/admin/flows/review/quality")
    bad = admin_console.post(
        "/admin/flows/review/gold/items", 400, input=json.dumps(gold_input(0)), answer='{"nope": 1}', note=""
    )
    assert "are not in the flow&#39;s template" in bad.text
    admin_console.post(
        "/admin/flows/review/gold/items", input=json.dumps(gold_input(0)), answer=json.dumps(boxes(CAR)), note="one"
    )
    lines = "\n".join(json.dumps({"input": gold_input(i), "answer": boxes(CAR, BIKE)}) for i in (1, 2))
    failed = admin_console.fetch("/admin/flows/review/gold/upload", lines + "\n{not json", 400, "application/x-ndjson")
    assert failed.json()["error"]["message"].startswith("Line 3 is not JSON")
    assert len(api.list_gold_items("review")) == 1  # nothing of the bad file
    assert admin_console.fetch("/admin/flows/review/gold/upload", lines, 200, "application/x-ndjson").json() == {
        "added": 2
    }
    items = api.list_gold_items("review")
    assert len(items) == 3
    page = admin_console.get("/admin/flows/review/quality")
    assert f'data-item="{items[0].id}"' in page
    admin_console.post(f"/admin/flows/review/gold/items/{items[0].id}/delete")
    assert f'data-item="{items[0].id}"' not in admin_console.get("/admin/flows/review/quality")

    api.start_loop("loop-0", flow="review", input=real_input(0))
    worker = worker_client(app_client, emails[0])
    task = worker.next_task("review")
    assert task is not None and task.input["taskObject"].startswith("s3://review-bucket/gold/")
    worker.submit(task.task_id, boxes())  # 0 of 2 boxes: paused
    page = admin_console.get("/admin/flows/review/quality")
    assert "Gold accuracy 0% over 1 gold tasks is below the flow&#39;s limit of 50%." in page
    assert 'id="accuracy-trend"' in page and f'data-worker="{emails[0]}"' in page
    admin_console.post(f"/admin/flows/review/workers/{emails[0]}/unpause")
    page = admin_console.get("/admin/flows/review/quality", notice="unpaused")
    assert "may work on this flow again" in page and "below the flow" not in page
