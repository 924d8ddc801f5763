"""The admin console's access keys, on SQLite and PostgreSQL: a key made in the console
works on the API at once, its secret is shown only on the page that made it, and a
revoked key stops working."""

from __future__ import annotations

import re
from html import unescape

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from loopin.clock import ManualClock
from loopin.models import AccessKey
from loopin.services import Services
from tests.admin_support import AdminConsole


def test_a_key_made_in_the_console_works_on_the_api_until_it_is_revoked(
    admin_console: AdminConsole, services: Services, clock: ManualClock
):
    admin_console.get("/admin/keys")
    page = admin_console.post("/admin/keys", 200, description="labelling pipeline").text
    key_id = unescape(re.search(r'id="new-key-id">([^<]+)<', page).group(1))  # type: ignore[union-attr]
    secret = unescape(re.search(r'id="new-key-secret">([^<]+)<', page).group(1))  # type: ignore[union-attr]
    assert f"LOOPIN_ACCESS_KEY_ID={key_id} LOOPIN_SECRET_ACCESS_KEY={secret}" in unescape(page)
    api = TestClient(admin_console.http.app)
    assert api.get("/api/v1/teams", auth=(key_id, secret)).status_code == 200

    listing = admin_console.get("/admin/keys")
    assert key_id in listing and "labelling pipeline" in listing and secret not in listing
    admin_console.post(f"/admin/keys/{key_id}/revoke")
    assert "revoked" in admin_console.get("/admin/keys", notice="revoked")
    clock.advance(6)  # each process may keep a secret for 5 s
    assert api.get("/api/v1/teams", auth=(key_id, secret)).status_code == 401


def test_a_bad_key_request_says_why_and_makes_no_key(admin_console: AdminConsole, services: Services):
    admin_console.get("/admin/keys")
    page = admin_console.post("/admin/keys", 400, description="x" * 300).text
    assert "longer than 256 characters" in page
    assert "not-a-key" in admin_console.post("/admin/keys/not-a-key/revoke", 404).text
    with services.db.read() as s:
        assert s.scalar(select(func.count()).select_from(AccessKey)) == 0
