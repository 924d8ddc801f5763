"""The admin console's batch jobs pages over HTTP (both databases): the form starts a job,
the list and the job's page show its progress, its bad images and a cancel button; bad
forms say what is wrong; names and reasons are escaped; CSRF is required."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from loopin import batch
from loopin.services import Services
from tests.admin_support import AdminConsole
from tests.helpers import admin_client
from tests.test_batch import deploy, variants, write_folder


def test_start_follow_and_cancel_a_batch_job_from_the_console(
    admin_console: AdminConsole, services: Services, app_client: TestClient, access_key: tuple[str, str]
) -> None:
    deploy(admin_client(app_client, access_key), services)
    folder = write_folder(services.settings.data_dir / "photos", list(variants(6)))
    (folder / "bad <b>.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    page = admin_console.get("/admin/batch")
    assert 'id="no-batch-jobs"' in page and '<option value="detector"' in page
    assert 'href="/admin/batch" aria-current="page"' in page

    response = admin_console.post(
        "/admin/batch", endpoint="detector", source_kind="source", source=str(folder), output="s3://results/web",
        executor="local", address="", name="from-web",
    )  # fmt: skip
    assert response.headers["location"] == "/admin/batch/from-web"
    page = admin_console.get("/admin/batch/from-web")
    assert 'data-open="yes"' in page and "0 / 7" in page and 'id="cancel-form"' in page
    status = json.loads(admin_console.get("/admin/batch/from-web/status"))
    assert (status["status"], status["total"], status["percent"], status["open"]) == ("Pending", 7, 0, True)

    assert batch.run_next(services, owner="runner-a") == "from-web"
    status = json.loads(admin_console.get("/admin/batch/from-web/status"))
    assert (status["status"], status["done"], status["failed"], status["percent"]) == ("Completed", 6, 1, 100)
    page = admin_console.get("/admin/batch/from-web")
    assert 'data-open="no"' in page and 'id="cancel-form"' not in page
    assert "<code>bad &lt;b&gt;.jpg</code>" in page and "bad <b>" not in page  # escaped
    assert "ValidationException" in page  # a file name with a space and brackets is read (file URIs are quoted)
    listing = admin_console.get("/admin/batch")
    assert 'href="/admin/batch/from-web"' in listing and "6 / 7, 1 bad" in listing

    # A second job, cancelled from its page before it runs.
    admin_console.post("/admin/batch", endpoint="detector", source=str(folder), output="s3://results/c", name="later")
    admin_console.get("/admin/batch/later")
    response = admin_console.post("/admin/batch/later/cancel")
    assert response.headers["location"] == "/admin/batch/later"
    assert "Cancelled" in admin_console.get("/admin/batch/later")
    admin_console.post("/admin/batch/later/cancel", status=409)  # already finished: said on a page


def test_bad_batch_forms_say_what_is_wrong_and_start_nothing(
    admin_console: AdminConsole, services: Services, app_client: TestClient, access_key: tuple[str, str]
) -> None:
    deploy(admin_client(app_client, access_key), services)
    empty = services.settings.data_dir / "empty"
    empty.mkdir()
    folder = write_folder(services.settings.data_dir / "photos", list(variants(1)))
    admin_console.get("/admin/batch")
    cases = [
        ({"source": str(empty)}, "holds no images"),
        ({"source": "/etc"}, "outside the folders"),
        ({"source": str(folder), "executor": "ray", "address": "127.0.0.1:9"}, "cannot be reached"),
        ({"source": str(folder), "output": "ftp://x"}, "s3://"),
        ({"source_kind": "manifest", "source": str(empty / "none.manifest")}, "does not exist"),
        ({"source": str(folder), "endpoint": "<script>x</script>"}, "&lt;script&gt;x&lt;/script&gt;"),
    ]
    for fields, message in cases:
        form = {"endpoint": "detector", "source_kind": "source", "output": "s3://results/x", "executor": "local"}
        status = 404 if "endpoint" in fields else 400
        response = admin_console.post("/admin/batch", status=status, **(form | fields))
        assert message in response.text, (fields, response.text[:2000])
        assert 'id="batch-error"' in response.text
    assert "No batch job yet." in admin_console.get("/admin/batch")
    # Without the form's CSRF token nothing is started.
    forged = {"csrf": "forged", "endpoint": "detector", "source": str(folder), "output": "s3://results/x"}
    refused = admin_console.http.post("/admin/batch", data=forged)
    assert refused.status_code == 403
    assert admin_console.get("/admin/batch/nope", status=404)
