"""The admin console's models and endpoints pages over HTTP (both databases): deploying
from the catalogue, status, routing rules, "Try it", deletion rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from loopin.client import Client
from loopin.endpoints import deploy_pending
from loopin.errors import ResourceInUseError
from loopin.models import HumanLoop, Prediction
from loopin.schemas import RoutingRule
from loopin.services import Services
from tests.admin_support import AdminConsole
from tests.helpers import admin_client, setup_flow

DATA = Path(__file__).parent / "data"
COFFEE = (DATA / "coffee.jpg").read_bytes()
BUILTIN = "nanodet-g-416-coco"
NO_ROUTING = {"flow": "", "threshold": "0.5", "classes": "", "sample_percent": "0"}


@pytest.fixture
def api(app_client: TestClient, access_key: tuple[str, str]) -> Client:
    return admin_client(app_client, access_key)


def deploy(console: AdminConsole, services: Services, name: str = "detector", model: str = BUILTIN, **routing: str):
    console.get(f"/admin/models/{model}")
    response = console.post("/admin/endpoints", model=model, name=name, instances="1", **(NO_ROUTING | routing))
    assert response.headers["location"] == f"/admin/endpoints/{name}?notice=created"
    deploy_pending(services)


def count(services: Services, table: type) -> int:
    with services.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(table)) or 0)


def test_catalogue_lists_the_builtin_and_registered_models(admin_console: AdminConsole, api: Client) -> None:
    api.register_model("my-detector", builtin=BUILTIN)
    page = admin_console.get("/admin/endpoints")
    assert BUILTIN in page and "Apache-2.0" in page and "my-detector" in page and "No endpoint yet" in page
    page = admin_console.get(f"/admin/models/{BUILTIN}")
    assert "80 classes" in page and "toothbrush" in page and 'value="nanodet-g-416-coco-endpoint"' in page
    assert "Delete model" not in page  # built-in models cannot be deleted
    admin_console.get("/admin/models/nope", 404)


def test_deploy_from_the_catalogue_then_status_and_try(admin_console: AdminConsole, services: Services, api) -> None:
    admin_console.get(f"/admin/models/{BUILTIN}")
    response = admin_console.post("/admin/endpoints", model=BUILTIN, name="detector", instances="2", **NO_ROUTING)
    page = admin_console.get(response.headers["location"])
    assert "badge Creating" in page and "data-refresh-seconds" in page and "can be tried once it is InService" in page
    # The notice says what the badge says, on the page that reloads itself until it is done.
    assert "The endpoint is Creating" in page and "deployed" not in page.lower()
    assert "badge Creating" in admin_console.get("/admin/endpoints")
    deploy_pending(services)
    reloaded = admin_console.get(response.headers["location"])
    assert "The endpoint is InService" in reloaded and "Creating" not in reloaded
    listing = admin_console.get("/admin/endpoints")
    assert "badge InService" in listing and "never" in listing
    page = admin_console.get("/admin/endpoints/detector")
    assert "badge InService" in page and "detector-config" in page and "AllTraffic" in page and 'id="try-form"' in page
    config = api.list_endpoint_configs()[0]
    assert (config.name, config.variants[0]["instance_count"], config.variants[0]["model"]) == (
        "detector-config",
        2,
        BUILTIN,
    )

    tried = admin_console.fetch("/admin/endpoints/detector/try", COFFEE, content_type="image/jpeg").json()
    assert count(services, Prediction) == 0  # a try is not logged
    invoked = api.invoke_endpoint("detector", COFFEE)
    assert tried["detections"] == [d.model_dump() for d in invoked.detections]
    assert tried["image"] == invoked.image.model_dump() and tried["model"] == invoked.model.model_dump()
    assert "cup" in {d["label"] for d in tried["detections"]}
    assert tried["routing"] is None and tried["human_loop"] is None and not any(tried["doubtful"])
    assert "UTC" in admin_console.get("/admin/endpoints/detector").split("Last invoked")[1][:80]


def test_a_try_routes_only_when_asked(admin_console: AdminConsole, services: Services, api: Client) -> None:
    setup_flow(api, workers=1)
    # The coffee photo's cups score 0.27 and 0.25: under the default lower bound (0.3).
    deploy(admin_console, services, flow="review", threshold="0.5", min_score="0.2", classes="cup")
    admin_console.get("/admin/endpoints/detector")
    dry = admin_console.fetch("/admin/endpoints/detector/try", COFFEE, content_type="image/jpeg").json()
    assert dry["routing"] == {
        "flow": "review",
        "threshold": 0.5,
        "min_score": 0.2,
        "classes": ["cup"],
        "reason": "low-confidence",
    }
    doubtful = [d for d, flag in zip(dry["detections"], dry["doubtful"], strict=True) if flag]
    assert doubtful and all(d["label"] == "cup" and 0.2 <= d["score"] < 0.5 for d in doubtful)
    assert count(services, HumanLoop) == 0 and count(services, Prediction) == 0
    routed = admin_console.fetch("/admin/endpoints/detector/try?route=true", COFFEE, content_type="image/jpeg").json()
    assert routed["human_loop"]["status"] == "InProgress" and routed["detections"] == dry["detections"]
    assert count(services, HumanLoop) == 1 and count(services, Prediction) == 1


def test_bad_tries_are_refused_in_words(admin_console: AdminConsole, services: Services) -> None:
    deploy(admin_console, services)
    admin_console.get("/admin/endpoints/detector")
    for body, status, code in [
        (b"", 400, "ValidationException"),
        (b"this is not an image", 400, "ValidationException"),
        (b"\xff\xd8\xff" + b"\0" * 6_291_456, 413, "ValidationException"),
    ]:
        error = admin_console.fetch("/admin/endpoints/detector/try", body, status, content_type="image/jpeg").json()
        assert error["error"]["code"] == code and error["error"]["message"], error
    error = admin_console.fetch("/admin/endpoints/nope/try", COFFEE, 404, content_type="image/jpeg").json()
    assert error["error"] == {"code": "ResourceNotFound", "message": "No endpoint named 'nope'."}
    error = admin_console.fetch("/admin/endpoints/detector/try?route=true", COFFEE, 400, "image/jpeg").json()
    assert "no routing rule" in error["error"]["message"]
    admin_console.http.headers["X-CSRF-Token"] = "forged"
    response = admin_console.http.post("/admin/endpoints/detector/try", content=COFFEE)
    assert response.status_code == 403 and response.json()["error"]["code"] == "UnauthorizedException"


def test_a_try_on_an_endpoint_not_in_service_says_so(admin_console: AdminConsole, api: Client) -> None:
    admin_console.get(f"/admin/models/{BUILTIN}")
    admin_console.post("/admin/endpoints", model=BUILTIN, name="slow", instances="1", **NO_ROUTING)
    admin_console.get("/admin/endpoints/slow")
    error = admin_console.fetch("/admin/endpoints/slow/try", COFFEE, 400, content_type="image/jpeg").json()
    assert error["error"]["message"] == "Endpoint 'slow' is Creating, not InService."


def test_bad_deploy_forms_write_nothing(admin_console: AdminConsole, api: Client) -> None:
    setup_flow(api, workers=1)
    admin_console.get(f"/admin/models/{BUILTIN}")
    for fields, message in [
        ({"name": "bad name!"}, "is not valid"),
        ({"name": "x" * 57}, "is too long"),
        ({"instances": "many"}, "The instance count must be a whole number."),
        ({"instances": "17"}, "must be 1 to 16"),
        ({"flow": "review", "threshold": "2"}, "Invalid routing: threshold"),
        ({"flow": "review", "threshold": "high"}, "The threshold must be a number"),
    ]:
        form = {"model": BUILTIN, "name": "ok", "instances": "1"} | NO_ROUTING | fields
        page = admin_console.post("/admin/endpoints", 400, **form).text
        assert message in page, (fields, page[:2000])
    assert api.list_endpoints() == [] and api.list_endpoint_configs() == []
    admin_console.post("/admin/endpoints", 404, model="nope", name="ok", instances="1", **NO_ROUTING)


def test_routing_rule_is_edited_and_cleared(admin_console: AdminConsole, services: Services, api: Client) -> None:
    setup_flow(api, workers=1)
    deploy(admin_console, services)
    admin_console.get("/admin/endpoints/detector")
    routing = {"flow": "review", "threshold": "0.35", "classes": "cup, person", "sample_percent": "5"}
    response = admin_console.post("/admin/endpoints/detector/routing", **routing)
    assert response.headers["location"] == "/admin/endpoints/detector?notice=routing"
    rule = api.describe_endpoint("detector").routing
    assert rule is not None and (rule.flow, rule.threshold, rule.classes, rule.sample_percent) == (
        "review",
        0.35,
        ("cup", "person"),
        5.0,
    )
    page = admin_console.get("/admin/endpoints/detector")
    assert "0.35" in page and 'value="cup, person"' in page and "/admin/flows/review/threshold" in page
    page = admin_console.post("/admin/endpoints/detector/routing", 400, **(routing | {"sample_percent": "101"})).text
    assert "sample_percent" in page and api.describe_endpoint("detector").routing == rule
    # What the form does not show (per-class lower bounds, the label set) survives an edit.
    api.update_endpoint(
        "detector",
        routing=RoutingRule(flow="review", threshold=0.8, class_min_scores={"cup": 0.2, "cat": 0.6}, labels=("cup",)),
    )
    admin_console.post("/admin/endpoints/detector/routing", **(routing | {"threshold": "0.5"}))
    rule = api.describe_endpoint("detector").routing
    assert rule is not None and (rule.threshold, rule.class_min_scores, rule.labels) == (0.5, {"cup": 0.2}, ("cup",))
    admin_console.post("/admin/endpoints/detector/routing", **NO_ROUTING)
    assert api.describe_endpoint("detector").routing is None


def test_delete_then_deploy_the_same_name_again(admin_console: AdminConsole, services: Services, api: Client) -> None:
    deploy(admin_console, services)
    admin_console.get("/admin/endpoints/detector")
    response = admin_console.post("/admin/endpoints/detector/delete")
    assert response.headers["location"] == "/admin/endpoints?notice=deleted"
    assert api.list_endpoints() == [] and api.list_endpoint_configs() == []
    deploy(admin_console, services)
    assert api.describe_endpoint("detector").status == "InService"
    admin_console.post("/admin/endpoints/detector/delete")
    admin_console.post("/admin/endpoints/detector/delete", 404)


def test_a_model_in_use_cannot_be_deleted(admin_console: AdminConsole, services: Services, api: Client) -> None:
    api.register_model("mine", builtin=BUILTIN)
    deploy(admin_console, services, model="mine")
    page = admin_console.get("/admin/models/mine")
    assert "Delete model" in page and "/admin/endpoints/detector" in page
    page = admin_console.post("/admin/models/mine/delete", 409).text
    assert "Model &#39;mine&#39; is used by endpoint &#39;detector&#39;" in page
    with pytest.raises(ResourceInUseError):
        api.delete_endpoint_config("detector-config")
    assert [m.name for m in api.list_models()] == ["mine"]
    admin_console.get("/admin/endpoints/detector")
    admin_console.post("/admin/endpoints/detector/delete")
    admin_console.get("/admin/models/mine")
    response = admin_console.post("/admin/models/mine/delete")
    assert response.headers["location"] == "/admin/endpoints?notice=model-deleted"
    assert api.list_models() == []


def test_the_pages_need_a_signed_in_admin(app_client: TestClient) -> None:
    for path in ("/admin/endpoints", f"/admin/models/{BUILTIN}", "/admin/endpoints/x"):
        response = app_client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/admin/sign-in")
    response = app_client.post("/admin/endpoints/x/try", content=COFFEE)
    assert response.status_code == 401 and json.loads(response.text)["error"]["code"] == "UnauthorizedException"
