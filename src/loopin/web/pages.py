"""What loopin's two consoles (workers' and admins') share: the static files under
``/static`` (CSS, scripts, the ``crowd-*`` element library), Jinja pages with the security
headers they are served with, form reading, redirects and the HTTP status of a domain error.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from loopin.web.bodies import read_capped
from loopin.web.sessions import PRE_SESSION_COOKIE, ConsoleSession, SessionKeys, new_pre_session

UI_DIR = Path(__file__).parents[1] / "ui"  # loopin/ui: templates, static assets, crowd-* library
CROWD_BUNDLE = "crowd-html-elements.js"
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; frame-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

# What a task frame may do: run its scripts and submit its forms (loopin catches the
# submit); open links in new tabs, which leave the sandbox (surveys, reference pages).
FRAME_SANDBOX = "allow-scripts allow-forms allow-popups allow-popups-to-escape-sandbox"
# An admin's preview of a template (perhaps pasted from elsewhere): its windows stay sandboxed.
PREVIEW_SANDBOX = "allow-scripts allow-forms allow-popups"
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    version: str  # a hash of the content: URLs carrying it may be cached for good

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


class StaticAssets:
    """The files under ``ui/static``, plus ``crowd-html-elements.js``: the ``crowd/*.js``
    sources joined in name order (a bundle without a build step)."""

    def __init__(self, root: Path = UI_DIR / "static") -> None:
        self.files: dict[str, Asset] = {}
        for path in sorted(root.rglob("*")):
            if path.is_file():
                rel = path.relative_to(root).as_posix()
                self.files[rel] = _asset(path.read_bytes(), mimetypes.guess_type(path.name)[0] or "")
        parts = [path.read_bytes() for path in sorted((root / "crowd").glob("*.js"))]
        # The frame loads the library in its head and the template loads it again: define once.
        bundle = b"(function () {\nif (window.LoopinCrowd) return;\n" + b"\n".join(parts) + b"\n})();\n"
        self.files[CROWD_BUNDLE] = _asset(bundle, "text/javascript")

    def url(self, path: str) -> str:
        """The URL of a static file with its version, which browsers may cache for good."""
        return f"/static/{path}?v={self.files[path].version}"

    def router(self) -> APIRouter:
        router = APIRouter(include_in_schema=False)
        router.add_api_route("/static/{path:path}", self._serve, methods=["GET"])
        return router

    def _serve(self, path: str, request: Request, v: str = "") -> Response:
        asset = self.files.get(path)
        if asset is None:
            return Response("Not found", status_code=404, media_type="text/plain")
        cache = "public, max-age=31536000, immutable" if v == asset.version else "no-cache"
        headers = {"ETag": asset.etag, "Cache-Control": cache, "X-Content-Type-Options": "nosniff"}
        if request.headers.get("if-none-match") == asset.etag:
            return Response(status_code=304, headers=headers)
        return Response(asset.body, media_type=asset.media_type, headers=headers)


def page_environment(assets: StaticAssets) -> Environment:
    """Jinja for loopin's own pages (autoescaped), with ``static_url`` available."""
    env = Environment(loader=PackageLoader("loopin", "ui/templates"), autoescape=select_autoescape(default=True))
    env.globals["static_url"] = assets.url
    return env


class ConsoleCookies:
    """One console's cookies, sent only under its ``path``: the signed session cookie
    ``name``, and the pre-session cookie that forms shown before sign-in bind their CSRF
    token to. All are HttpOnly and SameSite=Lax, and Secure when the console is on https."""

    def __init__(self, keys: SessionKeys, *, name: str, path: str, secure: bool) -> None:
        self.keys = keys
        self.name = name
        self.path = path
        self.secure = secure

    def session(self, request: Request, *, now_ms: int) -> ConsoleSession | None:
        return self.keys.read(request.cookies.get(self.name), now_ms=now_ms)

    def start(self, response: Response, *, account_id: int, sub: str, gen: int, now_ms: int) -> Response:
        cookie = self.keys.issue(account_id=account_id, sub=sub, gen=gen, now_ms=now_ms)
        response.set_cookie(self.name, cookie, max_age=self.keys.ttl_seconds, **self._attributes())
        response.delete_cookie(PRE_SESSION_COOKIE, path=self.path, secure=self.secure, httponly=True)
        return response

    def end(self, response: Response) -> Response:
        response.delete_cookie(self.name, path=self.path, secure=self.secure, httponly=True)
        return response

    def pre_session(self, request: Request) -> tuple[str, str]:
        """For a form shown before sign-in: the pre-session id (set it on the page with
        ``keep_pre_session``) and the CSRF token bound to it."""
        pre = request.cookies.get(PRE_SESSION_COOKIE) or new_pre_session()
        return pre, self.keys.csrf_token("pre:" + pre)

    def keep_pre_session(self, response: Response, pre: str) -> Response:
        response.set_cookie(PRE_SESSION_COOKIE, pre, **self._attributes())
        return response

    def pre_session_ok(self, request: Request, form: Form) -> bool:
        pre = request.cookies.get(PRE_SESSION_COOKIE)
        return bool(pre) and self.keys.check_csrf("pre:" + str(pre), form.get("csrf"))

    def _attributes(self) -> dict[str, Any]:
        return {"path": self.path, "secure": self.secure, "httponly": True, "samesite": "lax"}


def page_headers(csp: str = PAGE_CSP, *, frame_options: str = "DENY") -> dict[str, str]:
    return {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": frame_options,
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


def html_page(html: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(html, status_code=status, headers=page_headers())


def task_frame_response(
    html: str,
    status: int,
    origins: set[str],
    *,
    sandbox: str = FRAME_SANDBOX,
    frames: set[str] | frozenset[str] = frozenset(),
    extra_origins: Iterable[str] = (),
) -> HTMLResponse:
    """A rendered task template for an ``<iframe sandbox>``: its own scripts may run, it may
    load images and media only from loopin and the ``origins`` of the URLs it was granted,
    show the granted objects (``frames``: sources from ``frame_source``) in frames of its
    own, and load scripts, styles, fonts, images, media and frames from the admin's
    ``extra_origins`` (plain https origins, checked when they were set); it may reach
    nothing else on the network."""
    extra = sorted(set(extra_origins))
    media = " ".join(["'self'", "data:", "blob:", *sorted(origins), *extra])
    scripts = " ".join(["'self'", "'unsafe-inline'", *extra])
    fonts = " ".join(["'self'", "data:", *extra])
    framed = " ".join(sorted(set(frames) | set(extra))) or "'none'"
    csp = (
        f"default-src 'none'; script-src {scripts}; style-src {scripts}; "
        f"img-src {media}; media-src {media}; font-src {fonts}; frame-src {framed}; connect-src 'none'; "
        f"form-action 'none'; frame-ancestors 'self'; base-uri 'none'; sandbox {sandbox}"
    )
    return HTMLResponse(html, status_code=status, headers=page_headers(csp, frame_options="SAMEORIGIN"))


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a signed URL, for a task frame's CSP."""
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") else "'self'"
    return origin if origin == "'self'" or _ORIGIN.fullmatch(origin) else "'self'"


def frame_source(url: str, public_url: str) -> str:
    """The CSP source that lets a task frame show a signed object URL in a frame: loopin's
    own store path only (``<public url>/store/``), not the rest of loopin; an external
    store's origin."""
    origin = origin_of(url)
    own = public_url.rstrip("/")
    if origin != "'self'" and origin == origin_of(own) and urlsplit(url).path.startswith("/store/"):
        return own + "/store/"
    return origin


def redirect(url: str) -> Response:
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


class Form:
    """The fields of a posted form: ``get`` gives the last value of a name, ``getlist`` all."""

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        self.pairs = list(pairs)

    def get(self, name: str, default: str = "") -> str:
        values = self.getlist(name)
        return values[-1] if values else default

    def getlist(self, name: str) -> list[str]:
        return [value for key, value in self.pairs if key == name]

    def __contains__(self, name: object) -> bool:
        return any(key == name for key, _ in self.pairs)


async def read_form(request: Request, limit: int, *, max_fields: int = 20) -> Form:
    """An URL-encoded form; empty if the body is not one, is over ``limit`` bytes or has
    more than ``max_fields`` fields (the handler then refuses it as stale or incomplete)."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        return Form()
    body = await read_capped(request, limit)
    if body is None:
        return Form()
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=max_fields)
    except (UnicodeDecodeError, ValueError):
        return Form()
    if any("\x00" in key or "\x00" in value for key, value in pairs):
        return Form()  # a NUL character is no text a database can hold: refused like a broken form
    return Form(pairs)


def _asset(body: bytes, media_type: str) -> Asset:
    media_type = media_type or "application/octet-stream"
    if media_type.startswith("text/") or media_type == "application/javascript":
        media_type = media_type.replace("application/javascript", "text/javascript") + "; charset=utf-8"
    return Asset(body, media_type, hashlib.sha256(body).hexdigest()[:20])
