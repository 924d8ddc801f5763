"""The native API against its own OpenAPI document, with schemathesis (property-based): for
every operation, generated requests (valid and invalid) with an admin's access key or a
worker's token, as the operation needs. The bar: no server error, and every answer fits the
document. Bounded to run in about a minute; select it with ``-m schemathesis``."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from loopin.access_keys import create_key
from loopin.clock import ManualClock
from loopin.config import Settings
from loopin.services import Services, build_services
from loopin.signing import sign_token
from loopin.web.api import create_api
from loopin.web.api.auth import worker_token_key
from tests.conftest import basic_auth

pytestmark = [
    pytest.mark.schemathesis,
    # Raw image bodies (application/x-image) have no serializer: schemathesis skips them and
    # says so; the invocation paths have their own tests.
    pytest.mark.filterwarnings("ignore:Skipped test cases with unsupported payload media types:UserWarning"),
]

MAX_EXAMPLES = 12
ANONYMOUS = ("/worker/sign-in", "/worker/accept-invitation")


@pytest.fixture
def api_services(tmp_path: Path, sqlite_template: Path) -> Iterator[Services]:
    db = tmp_path / "loopin.db"
    shutil.copyfile(sqlite_template, db)
    settings_ = Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{db}",
        public_url="http://testserver",
        secret_key="test-secret-" + uuid.uuid4().hex,
    )
    ctx = build_services(settings_, clock=ManualClock())
    yield ctx
    ctx.db.dispose()


@pytest.fixture
def credentials(api_services: Services) -> dict[str, dict[str, str]]:
    from loopin import flows, loops, task_templates, workforce

    ctx = api_services
    API.state.services = ctx
    with ctx.db.write() as s:
        key = create_key(s, secret_key=ctx.settings.secret_key, description="schemathesis", now_ms=0)
        workforce.create_team(s, name="team", description="d", now_ms=0)
        worker, _ = workforce.create_worker(
            s, email="w@example.com", name="w", teams=["team"], password="a-long-password", now_ms=0
        )
        task_templates.create_task_ui(s, name="ui", content="<crowd-form></crowd-form>", now_ms=0)
        flows.create_flow(
            s,
            name="flow",
            team="team",
            task_ui="ui",
            title="t",
            description="d",
            output_path="s3://bucket/out",
            now_ms=0,
        )
        loops.start_loop(s, name="loop", flow_name="flow", input_content="{}", now_ms=0)
        payload = {"wid": worker.id, "sub": worker.sub, "gen": worker.token_generation}
    token = sign_token(worker_token_key(ctx), payload, expires_ms=ctx.clock.now_ms() + 3_600_000)
    return {
        "admin": basic_auth(key.access_key_id, key.secret_access_key),
        "worker": {"Authorization": "Bearer " + token},
    }


# One API app for the module; each test gives it fresh services (see ``credentials``).
API = create_api()
schema = schemathesis.openapi.from_asgi("/openapi.json", API)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_the_api_answers_every_generated_request_within_its_document(
    case: Any, credentials: dict[str, dict[str, str]]
) -> None:
    path = case.path
    if path in ANONYMOUS:
        headers: dict[str, str] = {}
    elif path.startswith("/worker/"):
        headers = credentials["worker"]
    else:
        headers = credentials["admin"]
    if path == "/events":
        pytest.skip("a server-sent event stream does not end")
    case.call_and_validate(headers=headers, checks=[not_a_server_error, response_schema_conformance])
