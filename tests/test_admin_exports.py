"""The admin console's exports page and model-versus-human page over HTTP (both databases)."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile

import pytest
from fastapi.testclient import TestClient

from loopin.client import Client
from loopin.clock import ManualClock
from loopin.exports import run_pending_exports
from loopin.services import Services
from tests.admin_support import AdminConsole
from tests.helpers import admin_client
from tests.test_exports import reviewed
from tests.test_model_metrics import hand_made


@pytest.fixture
def api(app_client: TestClient, access_key: tuple[str, str]) -> Client:
    return admin_client(app_client, access_key)


def test_export_from_the_flow_page_then_download_and_save_a_dataset(
    admin_console: AdminConsole, api: Client, services: Services, app_client: TestClient
) -> None:
    reviewed(api, services, app_client)
    flow_page = admin_console.get("/admin/flows/review")
    assert 'href="/admin/flows/review/exports" id="flow-export"' in flow_page
    page = admin_console.get("/admin/flows/review/exports")
    assert 'id="no-exports"' in page
    response = admin_console.post("/admin/flows/review/exports", format="yolo", target="zip", changed_only="1")
    assert response.headers["location"] == "/admin/flows/review/exports?notice=queued"
    page = admin_console.get(response.headers["location"])
    export_id = re.search(r'data-export="(exp-[0-9a-f]+)" data-state="queued"', page)
    assert export_id, page
    status = json.loads(admin_console.get(f"/admin/exports/{export_id.group(1)}/status"))
    assert (status["state"], status["percent"], status["total"]) == ("queued", 0, 3)
    run_pending_exports(services)
    status = json.loads(admin_console.get(f"/admin/exports/{export_id.group(1)}/status"))
    assert (status["state"], status["percent"], status["items"]) == ("succeeded", 100, 2)  # changed only
    page = admin_console.get("/admin/flows/review/exports")
    assert f'href="/admin/exports/{export_id.group(1)}/download"' in page
    download = admin_console.http.get(f"/admin/exports/{export_id.group(1)}/download")
    assert download.status_code == 200 and download.headers["content-type"] == "application/zip"
    assert "data.yaml" in zipfile.ZipFile(io.BytesIO(download.content)).namelist()
    response = admin_console.post(f"/admin/exports/{export_id.group(1)}/dataset", name="changed-1")
    page = admin_console.get(response.headers["location"])
    assert "The dataset was saved." in page and "<td>changed-1</td>" in page
    assert [d.name for d in api.list_datasets(flow="review")] == ["changed-1"]


def test_bad_export_forms_say_what_is_wrong(
    admin_console: AdminConsole, api: Client, services: Services, app_client: TestClient
) -> None:
    reviewed(api, services, app_client)
    admin_console.get("/admin/flows/review/exports")
    page = admin_console.post(
        "/admin/flows/review/exports", 400, format="coco", target="folder", location="../../../tmp/x"
    ).text
    assert "is not inside the data directory" in page and 'value="../../../tmp/x"' in page
    page = admin_console.post("/admin/flows/review/exports", 400, format="coco", created_after="2040-01-01").text
    assert "matches these filters" in page
    page = admin_console.post("/admin/flows/review/exports", 400, format="coco", created_after="soon").text
    assert "is not a date or time" in page
    assert api.list_exports() == []
    admin_console.get("/admin/flows/nope/exports", 404)


def test_the_metrics_page_draws_the_classes_and_the_weeks(
    admin_console: AdminConsole, api: Client, services: Services, app_client: TestClient, clock: ManualClock
) -> None:
    hand_made(api, services, app_client, clock)
    admin_console.sign_in()  # a week went by
    page = admin_console.get("/admin/flows/review/metrics")
    assert page.count('<g class="class"') == 3 and 'id="week-trend"' in page
    total = re.search(r'id="metrics-total".*?<tbody>(.*?)</tbody>', page, re.S)
    assert total
    cells = " ".join(re.sub(r"<[^>]+>", " ", total.group(1)).split())
    assert cells.startswith("all 3 4 5 1 1 (0.82) 1 1 2 50 % 40 %"), cells
    rows = list(csv.DictReader(io.StringIO(admin_console.get("/admin/flows/review/metrics.csv"))))
    assert rows[0]["group"] == "total" and rows[0]["recall"] == "0.4"
    api.create_flow(
        "other", team="MyTeam", task_ui="boxes", title="t", description="d", output_path="s3://review-bucket/o"
    )
    assert 'id="metrics-empty"' in admin_console.get("/admin/flows/other/metrics")
