"""What the admin console's tests share: an admin account, and one browser's view of the
console over HTTP (its own cookies; forms posted with their CSRF token; page scripts'
POSTs with the token in the X-CSRF-Token header)."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient

from loopin import admins
from loopin.services import Services

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "admin-password-123"


def create_admin_account(services: Services, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> None:
    with services.db.write() as session:
        admins.create_admin(session, email=email, name="Test Admin", password=password, now_ms=services.clock.now_ms())


class AdminConsole:
    def __init__(self, app: FastAPI, base_url: str = "http://testserver") -> None:
        self.http = TestClient(app, base_url=base_url, follow_redirects=False)
        self.last_page = ""

    def get(self, path: str, status: int = 200, **params: Any) -> str:
        response = self.http.get(path, params=params or None)
        assert response.status_code == status, (path, response.status_code, response.text[:800])
        self.last_page = response.text
        return response.text

    def csrf(self) -> str:
        match = re.search(r'name="csrf" value="([^"]+)"', self.last_page) or re.search(
            r'data-csrf="([^"]+)"', self.last_page
        )
        assert match, "no CSRF token on the page"
        return unescape(match.group(1))

    def post(self, path: str, status: int = 303, fields: Any = None, **kw: str) -> httpx.Response:
        """A form POST with the token of the last page (``fields`` may be a list of pairs)."""
        data = fields if fields is not None else {}
        if isinstance(data, dict):
            data = {"csrf": self.csrf(), **data, **kw}
        response = self.http.post(path, data=data)
        assert response.status_code == status, (path, response.status_code, response.text[:800])
        if response.status_code != 303:
            self.last_page = response.text
        return response

    def fetch(
        self, path: str, body: bytes | str, status: int = 200, content_type: str = "application/json"
    ) -> httpx.Response:
        """A page script's POST: the CSRF token in the header."""
        response = self.http.post(
            path, content=body, headers={"X-CSRF-Token": self.csrf(), "Content-Type": content_type}
        )
        assert response.status_code == status, (path, response.status_code, response.text[:800])
        return response

    def sign_in(self, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> AdminConsole:
        self.get("/admin/sign-in")
        response = self.post("/admin/sign-in", email=email, password=password)
        assert response.headers["location"].startswith("/admin"), response.headers["location"]
        return self
