"""The demo that ``loopin serve --demo`` (``make run``) sets up, idempotently: the built-in
detector as an endpoint, a team with one worker, the walkthrough's bounding-box template, a
flow, and one human loop started from a bundled photo through the routing rule."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from loopin import access_keys, endpoints, flows, task_templates, workforce
from loopin.invocations import invoke
from loopin.models import Endpoint, FlowDefinition, TaskUi, Worker, Workteam
from loopin.schemas import RoutingRule
from loopin.services import Services

TEAM, FLOW, TEMPLATE, ENDPOINT = "demo-team", "demo-review", "demo-boxes", "demo-detector"
WORKER_EMAIL = "demo-worker@loopin.example"
MODEL = "nanodet-g-416-coco"
THRESHOLD = 0.5
PHOTO = "astronaut.jpg"  # NASA photograph, public domain (see NOTICE)

DEMO_TEMPLATE = """<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>
<crowd-form>
  <crowd-bounding-box
    name="annotatedResult"
    src="{{ task.input.taskObject | grant_read_access }}"
    header="Check the boxes: fix the wrong ones, draw the missing ones"
    labels="{{ task.input.labels }}"
    initial-value="{{ task.input.initialValue }}"
  >
    <full-instructions header="Object detection review">
      <p>The detector drew the boxes it was sure about. Move or resize a box that is off,
      delete a box that is wrong, and draw a box around every object it missed.</p>
    </full-instructions>
    <short-instructions>
      <p>Draw a tight box around each object and pick its label.</p>
    </short-instructions>
  </crowd-bounding-box>
</crowd-form>
"""


@dataclass(frozen=True)
class DemoInfo:
    worker_email: str
    worker_password: str
    access_key_id: str
    secret_access_key: str
    loop_name: str | None
    console_url: str


def ensure_demo(ctx: Services) -> DemoInfo:
    credentials = _credentials(ctx)
    now = ctx.clock.now_ms()

    def setup(s: Session) -> None:
        if s.scalar(select(Workteam.id).where(Workteam.name == TEAM)) is None:
            workforce.create_team(s, name=TEAM, description="Demo reviewers", now_ms=now)
        if s.scalar(select(Worker.id).where(Worker.email == WORKER_EMAIL)) is None:
            workforce.create_worker(
                s,
                email=WORKER_EMAIL,
                name="Demo Worker",
                teams=[TEAM],
                password=credentials["worker_password"],
                now_ms=now,
            )
        if s.scalar(select(TaskUi.id).where(TaskUi.name == TEMPLATE)) is None:
            task_templates.create_task_ui(s, name=TEMPLATE, content=DEMO_TEMPLATE, now_ms=now)
        if s.scalar(select(FlowDefinition.id).where(FlowDefinition.name == FLOW)) is None:
            flows.create_flow(
                s,
                name=FLOW,
                team=TEAM,
                task_ui=TEMPLATE,
                title="Check the detector's boxes",
                description="Fix the boxes the object detector drew on a photo",
                output_path="s3://loopin-demo/output",
                keywords=["demo", "boxes"],
                now_ms=now,
            )
        if s.scalar(select(Endpoint.id).where(Endpoint.name == ENDPOINT)) is None:
            endpoints.create_config(
                s, name=f"{ENDPOINT}-config", variants=[{"variant_name": "AllTraffic", "model": MODEL}], now_ms=now
            )
            endpoints.create_endpoint(
                s,
                name=ENDPOINT,
                config_name=f"{ENDPOINT}-config",
                routing=RoutingRule(flow=FLOW, threshold=THRESHOLD),
                now_ms=now,
            )

    ctx.write(setup)
    endpoints.deploy_pending(ctx)
    photo = resources.files("loopin").joinpath("demo_data", PHOTO).read_bytes()
    result = invoke(ctx, ENDPOINT, photo, idempotency_key="loopin-demo-photo")
    loop = result.body["human_loop"]
    return DemoInfo(
        worker_email=WORKER_EMAIL,
        worker_password=credentials["worker_password"],
        access_key_id=credentials["access_key_id"],
        secret_access_key=credentials["secret_access_key"],
        loop_name=loop["name"] if loop else None,
        console_url=ctx.settings.resolved_public_url + "/worker",
    )


def _credentials(ctx: Services) -> dict[str, str]:
    """The demo's worker password and access key, made once and kept in the data directory
    (owner-only), so that every ``make run`` prints the same ones."""
    path = Path(ctx.settings.data_dir) / "demo-credentials.json"
    if path.exists():
        stored: dict[str, str] = json.loads(path.read_text())
        return stored
    with ctx.db.write() as session:
        key = access_keys.create_key(
            session, secret_key=ctx.settings.secret_key, description="demo", now_ms=ctx.clock.now_ms()
        )
    values = {
        "worker_password": secrets.token_urlsafe(12),
        "access_key_id": key.access_key_id,
        "secret_access_key": key.secret_access_key,
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(values, fh)
    return values
