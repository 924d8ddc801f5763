"""The admin console's threshold picture of a flow over HTTP (both databases): the figures
replayed from the prediction log and the people's answers, and applying a threshold."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from loopin.client import Client
from loopin.endpoints import deploy_pending
from loopin.schemas import RoutingRule, VariantSpec
from loopin.services import Services
from tests.admin_support import AdminConsole
from tests.helpers import admin_client, setup_flow, worker_client


@pytest.fixture
def api(app_client: TestClient, access_key: tuple[str, str]) -> Client:
    return admin_client(app_client, access_key)


def red_square(box: tuple[int, int, int, int] | None) -> bytes:
    image = np.zeros((60, 80, 3), dtype=np.uint8)
    if box:
        left, top, right, bottom = box
        image[top:bottom, left:right] = (255, 0, 0)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "PNG")
    return buf.getvalue()


def reviewed_flow(api: Client, services: Services, app_client: TestClient) -> None:
    """Three images logged through the endpoint ``reds`` (its model gives one "red" box
    scoring 0.9) routing below 0.95 to ``review``: two go to people, who keep the first
    image's box and add a box the model missed on the second."""
    emails = setup_flow(api, workers=1)
    api.register_model("reds", callable="tests.data.callable_model:red_boxes")
    api.create_endpoint_config("reds-config", variants=[VariantSpec(model="reds")])
    api.create_endpoint("reds", config="reds-config", routing=RoutingRule(flow="review", threshold=0.95))
    deploy_pending(services)
    kept = api.invoke_endpoint("reds", red_square((10, 10, 30, 30)), content_type="image/png")
    fixed = api.invoke_endpoint("reds", red_square((40, 20, 70, 50)), content_type="image/png")
    api.invoke_endpoint("reds", red_square(None), content_type="image/png")
    assert kept.human_loop and fixed.human_loop
    answers = {
        kept.human_loop.name: [{"label": "red", "left": 10, "top": 10, "width": 20, "height": 20}],
        fixed.human_loop.name: [
            {"label": "red", "left": 40, "top": 20, "width": 30, "height": 30},
            {"label": "red", "left": 0, "top": 0, "width": 5, "height": 5},
        ],
    }
    worker = worker_client(app_client, emails[0])
    for _ in range(2):
        task = worker.next_task()
        loop_name = next(name for name in answers if api.describe_loop(name).input == task.input)
        worker.submit(task.task_id, {"annotatedResult": {"boundingBoxes": answers[loop_name]}})


def text_of(html: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"[^>]*>(.*?)</', html, re.S)
    assert match, element_id
    return " ".join(re.sub(r"<[^>]+>", "", match.group(1)).split())


def reading(html: str) -> str:
    match = re.search(r'<p class="reading" id="reading">(.*?)</p>', html, re.S)
    assert match
    return " ".join(re.sub(r"<[^>]+>", "", match.group(1)).split())


def test_the_picture_shows_the_replayed_figures(
    admin_console: AdminConsole, api: Client, services: Services, app_client: TestClient
) -> None:
    reviewed_flow(api, services, app_client)
    page = admin_console.get("/admin/flows/review/threshold")  # read out at the endpoint's threshold
    assert reading(page) == (
        "At 0.95, 2 of 3 images go to people and 0 of 2 reviewed images would skip review "
        "although people corrected them."
    )
    assert (text_of(page, "routed-at"), text_of(page, "missed-at")) == ("2", "0")
    assert 'id="threshold-plot"' in page and page.count('<circle class="routed"') == 21
    assert page.count('<circle class="missed"') == 21 and "reds now: 0.95" in page
    page = admin_console.get("/admin/flows/review/threshold", at="0.5")
    assert reading(page).startswith("At 0.50, 0 of 3 images go to people and 1 of 2 reviewed images")
    rows = re.findall(r"<tr( class=\"chosen\")?>\s*<td class=\"num\"><a href=\"\?at=([0-9.]+)\">", page)
    assert len(rows) == 21 and [t for chosen, t in rows if chosen] == ["0.5"]
    assert "<title>At 1.00: 2 of 3 images go to people</title>" in page
    page = admin_console.get("/admin/flows/review/threshold", at="0.97")  # not a step of the curve
    assert reading(page).startswith("At 0.97, 2 of 3 images go to people and 0 of 2")


def test_apply_a_threshold_to_the_endpoint(
    admin_console: AdminConsole, api: Client, services: Services, app_client: TestClient
) -> None:
    reviewed_flow(api, services, app_client)
    admin_console.get("/admin/flows/review/threshold", at="0.8")
    response = admin_console.post("/admin/flows/review/threshold", endpoint="reds", threshold="0.8")
    assert response.headers["location"] == "/admin/flows/review/threshold?at=0.8&notice=applied"
    rule = api.describe_endpoint("reds").routing
    assert rule is not None and (rule.flow, rule.threshold) == ("review", 0.8)
    page = admin_console.get(response.headers["location"])
    assert "The threshold is applied." in page and "reds now: 0.80" in page
    assert api.invoke_endpoint("reds", red_square((5, 5, 9, 9)), content_type="image/png").human_loop is None
    page = admin_console.post("/admin/flows/review/threshold", 400, endpoint="reds", threshold="1.5").text
    assert "The threshold must be a number from 0 to 1" in page
    api.create_endpoint_config("other-config", variants=[VariantSpec(model="reds")])
    api.create_endpoint("other", config="other-config")
    page = admin_console.post("/admin/flows/review/threshold", 400, endpoint="other", threshold="0.5").text
    assert "Endpoint &#39;other&#39; does not route to the flow &#39;review&#39;." in page
    assert api.describe_endpoint("reds").routing == rule


def test_an_empty_flow_explains_what_is_needed(admin_console: AdminConsole, api: Client) -> None:
    setup_flow(api, workers=1)
    page = admin_console.get("/admin/flows/review/threshold")
    assert 'id="threshold-empty"' in page and "Nothing to replay yet" in page and 'id="threshold-plot"' not in page
    assert "No endpoint routes to this flow now" in page
    admin_console.get("/admin/flows/nope/threshold", 404)
    assert "between" not in admin_console.get("/admin/flows/review/threshold", 400, at="high")
    assert "must be a number from 0 to 1" in admin_console.last_page
