"""The worker console over HTTP, on SQLite and PostgreSQL: sign-in, invitations, sessions,
CSRF, the sign-in rate limit, who may see and submit which task, and what the pages and the
task frame send to the browser."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError as PydanticValidationError

from loopin.client import Client
from loopin.clock import ManualClock
from loopin.config import Settings
from loopin.errors import ValidationError
from loopin.services import Services
from loopin.web.server import create_app
from loopin.web.sessions import SignInLimiter
from tests.helpers import PASSWORD, admin_client, setup_flow

DATA = Path(__file__).parent / "data"
IMAGE_URI = "s3://review-bucket/images/astronaut.jpg"
INPUT = {
    "taskObject": IMAGE_URI,
    "labels": ["person", "rocket"],
    "initialValue": [{"label": "person", "left": 100, "top": 50, "width": 200, "height": 300}],
}


class Console:
    """One browser's view of the console: its own cookies, forms posted with their token."""

    def __init__(self, app: FastAPI, base_url: str = "http://testserver") -> None:
        self.http = TestClient(app, base_url=base_url, follow_redirects=False)
        self.last_page = ""

    def get(self, path: str, status: int = 200) -> str:
        response = self.http.get(path)
        assert response.status_code == status, (path, response.status_code, response.text[:500])
        self.last_page = response.text
        return response.text

    def csrf(self) -> str:
        match = re.search(r'name="csrf" value="([^"]+)"', self.last_page)
        assert match, "no form token on the page"
        return unescape(match.group(1))

    def post(self, path: str, status: int = 303, **fields: str):
        response = self.http.post(path, data=fields)
        assert response.status_code == status, (path, response.status_code, response.text[:500])
        if response.status_code != 303:
            self.last_page = response.text
        return response

    def sign_in(self, email: str, password: str = PASSWORD) -> Console:
        self.get("/worker/sign-in")
        response = self.post("/worker/sign-in", email=email, password=password, csrf=self.csrf())
        assert response.headers["location"] == "/worker/jobs"
        self.get("/worker/jobs")
        return self

    def start(self, flow: str = "review") -> int | None:
        self.get("/worker/jobs")
        location = self.post(f"/worker/jobs/{flow}/start", csrf=self.csrf()).headers["location"]
        if location.startswith("/worker/tasks/"):
            task_id = int(location.rsplit("/", 1)[1])
            self.get(location)
            return task_id
        return None


@pytest.fixture
def app(services: Services) -> FastAPI:
    return create_app(services=services, run_background=False)


@pytest.fixture
def admin(app: FastAPI, access_key: tuple[str, str]) -> Iterator[Client]:
    with TestClient(app) as http:
        yield admin_client(http, access_key)


@pytest.fixture
def teams(admin: Client, services: Services) -> dict[str, list[str]]:
    """MyTeam (3 workers) answers flow "review"; Other (1 worker) answers "other-review"."""
    services.store.put(IMAGE_URI, (DATA / "astronaut.jpg").read_bytes(), content_type="image/jpeg")
    mine = setup_flow(admin, team="MyTeam", workers=3, flow="review")
    other = setup_flow(admin, team="Other", workers=1, flow="other-review")
    return {"mine": mine, "other": other}


def start_loops(admin: Client, count: int, *, flow: str = "review", input: dict | None = None) -> list[str]:
    names = [f"loop-{flow}-{i}" for i in range(count)]
    for name in names:
        admin.start_loop(name, flow=flow, input=input or INPUT)
    return names


# -- sign-in, sessions, invitations ---------------------------------------------------------


def test_sign_in_sets_a_signed_httponly_lax_session_cookie_and_sign_out_ends_it(app, teams):
    console = Console(app)
    console.get("/worker/sign-in")
    response = console.post("/worker/sign-in", email=teams["mine"][0], password=PASSWORD, csrf=console.csrf())
    cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith("loopin_session="))
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "path", "samesite", "max-age"} <= attributes and "secure" not in attributes
    assert "samesite=lax" in cookie.lower() and "path=/worker" in cookie.lower()
    page = console.get("/worker/jobs")
    assert teams["mine"][0] in page
    console.post("/worker/sign-out", csrf=console.csrf())
    assert console.http.get("/worker/jobs").headers["location"] == "/worker/sign-in"


def test_the_session_cookie_is_secure_when_the_console_is_served_over_https(services, teams):
    settings = services.settings.model_copy(update={"public_url": "https://loopin.example"})
    app = create_app(services=dataclasses.replace(services, settings=settings), run_background=False)
    console = Console(app, base_url="https://testserver")
    console.get("/worker/sign-in")
    response = console.post("/worker/sign-in", email=teams["mine"][0], password=PASSWORD, csrf=console.csrf())
    cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith("loopin_session="))
    assert "secure" in cookie.lower()


def test_a_wrong_password_is_refused_in_plain_words(app, teams):
    console = Console(app)
    console.get("/worker/sign-in")
    page = console.post(
        "/worker/sign-in", 401, email=teams["mine"][0], password="not-the-password", csrf=console.csrf()
    )
    assert "The e-mail address or password is wrong." in page.text
    assert console.http.get("/worker/jobs").status_code == 303


def test_sign_in_without_the_forms_token_is_refused(app, teams):
    console = Console(app)
    console.get("/worker/sign-in")
    console.post("/worker/sign-in", 403, email=teams["mine"][0], password=PASSWORD)
    console.post("/worker/sign-in", 403, email=teams["mine"][0], password=PASSWORD, csrf="forged")
    # A token from another browser's pre-session does not fit this browser's cookie.
    other = Console(app)
    other.get("/worker/sign-in")
    console.post("/worker/sign-in", 403, email=teams["mine"][0], password=PASSWORD, csrf=other.csrf())
    assert "Reload it and try again" in console.last_page


def test_sign_in_is_rate_limited_per_email_address(app, teams, clock: ManualClock):
    console = Console(app)
    email = teams["mine"][0]
    for _ in range(5):
        console.get("/worker/sign-in")
        console.post("/worker/sign-in", 401, email=email, password="wrong-password", csrf=console.csrf())
    console.get("/worker/sign-in")
    refused = console.post("/worker/sign-in", 429, email=email, password=PASSWORD, csrf=console.csrf())
    assert "Too many failed sign-ins" in refused.text and int(refused.headers["retry-after"]) > 0
    # Another worker is not held up, and the limit lifts when the window has passed.
    Console(app).sign_in(teams["mine"][1])
    clock.advance(15 * 60 + 1)
    Console(app).sign_in(email)


def test_the_limiter_counts_failures_per_client_address_too() -> None:
    limiter = SignInLimiter(per_email=5, per_client=50, window_ms=60_000)
    for i in range(50):
        assert limiter.begin_attempt(email=f"w{i}@x.example", client="10.0.0.1", now_ms=1000 + i) == 0
    assert limiter.begin_attempt(email="new@x.example", client="10.0.0.1", now_ms=2000) == 59
    assert limiter.begin_attempt(email="new@x.example", client="10.0.0.2", now_ms=2000) == 0
    assert limiter.begin_attempt(email="new@x.example", client="10.0.0.1", now_ms=61_001) == 0


def test_the_limiter_counts_an_attempt_before_the_password_is_checked() -> None:
    """Parallel guesses cannot slip past the limit while the hash runs; a success is
    not held against the client."""
    limiter = SignInLimiter(per_email=5, per_client=50, window_ms=60_000)
    allowed = [limiter.begin_attempt(email="w@x.example", client="10.0.0.1", now_ms=1000) for _ in range(8)]
    assert allowed.count(0) == 5  # no result recorded yet: still only five
    for _ in range(45):
        assert limiter.begin_attempt(email="ok@x.example", client="10.0.0.9", now_ms=1000) == 0
        limiter.record_success(email="ok@x.example", client="10.0.0.9")
    assert limiter.begin_attempt(email="ok@x.example", client="10.0.0.9", now_ms=1000) == 0


def test_the_limiter_forgets_old_entries_when_it_is_full() -> None:
    limiter = SignInLimiter(window_ms=1000, max_keys=10)
    for i in range(30):
        limiter.begin_attempt(email=f"w{i}@x.example", client=f"10.0.0.{i}", now_ms=i * 2000)
    assert len(limiter._failures) <= 12


def test_an_invitation_link_sets_the_password_then_signs_in(app, admin: Client, teams):
    invitation = admin.create_worker("new@myteam.example", teams=["MyTeam"])
    assert invitation.invitation_url is not None
    path = invitation.invitation_url.removeprefix("http://testserver")
    assert path.startswith("/worker/invitation/")
    console = Console(app)
    console.get(path)
    page = console.post(path, 400, password="a-long-password", confirm="another-password", csrf=console.csrf())
    assert "not the same" in page.text
    page = console.post(path, 400, password="short", confirm="short", csrf=console.csrf())
    assert "at least 10 characters" in page.text
    response = console.post(path, password="a-long-password", confirm="a-long-password", csrf=console.csrf())
    assert response.headers["location"] == "/worker/jobs"
    assert "Check the boxes" in console.get("/worker/jobs")
    # The link works once; then the password signs in.
    again = Console(app)
    again.get(path)
    page = again.post(path, 401, password="b-long-password", confirm="b-long-password", csrf=again.csrf())
    assert "not valid or has expired" in page.text
    Console(app).sign_in("new@myteam.example", "a-long-password")


def test_a_tampered_session_cookie_or_a_disabled_worker_is_signed_out(app, admin: Client, teams):
    console = Console(app).sign_in(teams["mine"][0])
    good = console.http.cookies.get("loopin_session")
    console.http.cookies.set("loopin_session", good[:-2] + ("AA" if not good.endswith("AA") else "BB"), path="/worker")
    assert console.http.get("/worker/jobs").headers["location"] == "/worker/sign-in"
    console = Console(app).sign_in(teams["mine"][1])
    admin.set_worker_status(teams["mine"][1], "disabled")
    assert console.http.get("/worker/jobs").headers["location"] == "/worker/sign-in"


# -- jobs and tasks -----------------------------------------------------------------------------


def test_the_jobs_page_lists_the_workers_own_jobs_with_tasks_waiting(app, admin: Client, teams):
    start_loops(admin, 2)
    start_loops(admin, 1, flow="other-review")
    page = Console(app).sign_in(teams["mine"][0]).get("/worker/jobs")
    assert page.count('class="card job"') == 1
    assert "Check the boxes" in page and "Fix the boxes the detector drew" in page
    assert "<strong>2</strong> tasks waiting" in page and "Start working" in page
    assert "/worker/jobs/other-review/start" not in page


def test_empty_states_are_said_in_plain_words(app, admin: Client, teams):
    console = Console(app).sign_in(teams["mine"][0])
    assert "No tasks waiting" in console.get("/worker/jobs")
    console.post("/worker/jobs/review/start", csrf=console.csrf())
    assert "No tasks are waiting in this job right now" in console.get("/worker/jobs?notice=no-tasks")
    admin.create_team("Empty", description="Nobody's work")
    admin.create_worker("lonely@empty.example", teams=["Empty"], password=PASSWORD)
    assert "No jobs yet" in Console(app).sign_in("lonely@empty.example").get("/worker/jobs")


def test_start_working_submit_writes_the_output_and_goes_straight_to_the_next_task(app, admin, teams, services):
    names = start_loops(admin, 2)
    console = Console(app).sign_in(teams["mine"][0])
    first = console.start()
    assert first is not None
    answer = {"annotatedResult": {"boundingBoxes": [], "inputImageProperties": {"height": 512, "width": 512}}}
    response = console.post(f"/worker/tasks/{first}/submit", answer=json.dumps(answer), csrf=console.csrf())
    second = int(response.headers["location"].rsplit("/", 1)[1])
    assert second != first
    loop = admin.describe_loop(names[0])
    assert loop.status == "Completed" and loop.output_uri is not None
    output = json.loads(services.store.get(loop.output_uri))
    assert output["humanAnswers"][0]["answerContent"] == answer
    console.get(f"/worker/tasks/{second}")
    response = console.post(f"/worker/tasks/{second}/submit", answer="{}", csrf=console.csrf())
    assert response.headers["location"] == "/worker/jobs?notice=done"
    assert "Thank you! Your answer was saved." in console.get(response.headers["location"])


def test_start_working_resumes_the_task_the_worker_holds(app, admin, teams):
    start_loops(admin, 2)
    console = Console(app).sign_in(teams["mine"][0])
    first = console.start()
    page = console.get("/worker/jobs")
    assert "Continue working" in page and "You have a task open" in page
    assert console.start() == first


def test_the_task_page_frames_the_rendered_template_in_a_sandbox(app, admin, teams):
    start_loops(admin, 1)
    console = Console(app).sign_in(teams["mine"][0])
    task_id = console.start()
    page = console.get(f"/worker/tasks/{task_id}")
    frame_tag = re.search(r"<iframe[^>]*>", page).group(0)
    assert f'src="/worker/tasks/{task_id}/frame"' in frame_tag
    assert 'sandbox="allow-scripts allow-forms allow-popups allow-popups-to-escape-sandbox"' in frame_tag
    assert "allow-same-origin" not in frame_tag
    assert 'data-seconds-left="60"' in page and "Release" in page and "Decline" in page and "Submit" in page
    frame = console.http.get(f"/worker/tasks/{task_id}/frame")
    assert frame.status_code == 200
    # loopin's library, in the frame's head and in place of AWS's in the template: one URL.
    scripts = re.findall(r'<script src="([^"]+)"', frame.text)
    assert len(scripts) == 2 and scripts[0] == scripts[1] and scripts[0].startswith("/static/crowd-html-elements.js?v=")
    assert "assets.crowd.aws" not in frame.text
    src = unescape(re.search(r'src="(http://testserver/store/[^"]+)"', frame.text).group(1))
    image = console.http.get(src.removeprefix("http://testserver"))
    assert image.status_code == 200 and image.content == (DATA / "astronaut.jpg").read_bytes()
    initial = re.search(r'initial-value="([^"]*)"', frame.text).group(1)
    assert json.loads(unescape(initial)) == INPUT["initialValue"]


def test_console_pages_and_the_frame_carry_enforced_security_headers(app, admin, teams):
    start_loops(admin, 1)
    console = Console(app).sign_in(teams["mine"][0])
    task_id = console.start()
    pages = [Console(app).http.get("/worker/sign-in")] + [
        console.http.get(path) for path in ("/worker/jobs", f"/worker/tasks/{task_id}", "/worker/tasks/999999")
    ]
    for page in pages:
        headers = page.headers
        csp = headers["content-security-policy"]
        assert "script-src 'self';" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert "content-security-policy-report-only" not in headers
        assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer" and headers["cache-control"] == "no-store"
    frame_csp = console.http.get(f"/worker/tasks/{task_id}/frame").headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in frame_csp.split(";"))
    assert directives["connect-src"] == "'none'" and directives["form-action"] == "'none'"
    assert directives["img-src"] == "'self' data: blob: http://testserver"
    assert directives["frame-ancestors"] == "'self'"
    assert directives["sandbox"] == "allow-scripts allow-forms allow-popups allow-popups-to-escape-sandbox"


def test_untrusted_input_is_escaped_in_the_frame(app, admin, teams):
    payload = '"><script>window.pwned=1</script><img src=x onerror="window.pwned=2">'
    start_loops(admin, 1, input={**INPUT, "labels": [payload], "initialValue": [{"label": payload}]})
    console = Console(app).sign_in(teams["mine"][0])
    task_id = console.start()
    frame = console.http.get(f"/worker/tasks/{task_id}/frame").text
    assert "<script>window.pwned" not in frame and "<img src=x" not in frame
    assert frame.count("<script") == 2  # loopin's library, and the template's own tag
    labels = re.search(r'labels="([^"]*)"', frame).group(1)
    assert json.loads(unescape(labels)) == [payload]


def test_every_post_needs_the_sessions_form_token(app, admin, teams):
    start_loops(admin, 1)
    console = Console(app).sign_in(teams["mine"][0])
    console.post("/worker/jobs/review/start", 403)
    task_id = console.start()
    other_session = Console(app).sign_in(teams["mine"][1])
    for action in ("submit", "release", "decline"):
        console.post(f"/worker/tasks/{task_id}/{action}", 403, answer="{}")
        console.post(f"/worker/tasks/{task_id}/{action}", 403, answer="{}", csrf=other_session.csrf())
    console.post("/worker/sign-out", 403)
    assert console.get(f"/worker/tasks/{task_id}")  # still held, nothing happened


def test_another_teams_worker_cannot_open_or_submit_the_task(app, admin, teams):
    names = start_loops(admin, 1)
    owner = Console(app).sign_in(teams["mine"][0])
    task_id = owner.start()
    for intruder in (Console(app).sign_in(teams["other"][0]), Console(app).sign_in(teams["mine"][1])):
        page = intruder.get(f"/worker/tasks/{task_id}", 404)
        assert "This task is not yours any more" in page
        assert intruder.http.get(f"/worker/tasks/{task_id}/frame").status_code == 404
        csrf = intruder.csrf()
        for action in ("submit", "release", "decline"):
            intruder.post(f"/worker/tasks/{task_id}/{action}", 404, answer='{"x": 1}', csrf=csrf)
    assert admin.describe_loop(names[0]).status == "InProgress"
    owner.post(f"/worker/tasks/{task_id}/submit", answer='{"ok": true}', csrf=owner.csrf())
    assert admin.describe_loop(names[0]).status == "Completed"


def test_another_teams_worker_cannot_start_a_job_of_another_team(app, admin, teams):
    start_loops(admin, 1)
    intruder = Console(app).sign_in(teams["other"][0])
    page = intruder.post("/worker/jobs/review/start", 404, csrf=intruder.csrf())
    assert "You have no job named 'review'" in unescape(page.text)


def test_release_gives_the_task_to_a_teammate_and_decline_never_offers_it_again(app, admin, teams):
    start_loops(admin, 1)
    first = Console(app).sign_in(teams["mine"][0])
    task_id = first.start()
    response = first.post(f"/worker/tasks/{task_id}/release", csrf=first.csrf())
    assert response.headers["location"] == "/worker/jobs?notice=released"
    assert "It went back to the queue" in first.get(response.headers["location"])
    second = Console(app).sign_in(teams["mine"][1])
    task_id = second.start()
    assert task_id is not None
    response = second.post(f"/worker/tasks/{task_id}/decline", csrf=second.csrf())
    assert response.headers["location"] == "/worker/jobs?notice=declined"
    assert second.start() is None
    assert first.start() is not None


def test_a_submit_after_the_time_limit_is_refused_in_plain_words(app, admin, teams, clock: ManualClock):
    names = start_loops(admin, 1)
    console = Console(app).sign_in(teams["mine"][0])
    task_id = console.start()
    clock.advance(61)
    page = console.post(f"/worker/tasks/{task_id}/submit", 409, answer="{}", csrf=console.csrf())
    assert "The time limit for this task has passed" in page.text
    assert console.get(f"/worker/tasks/{task_id}", 409)
    assert admin.describe_loop(names[0]).status == "InProgress"


def test_a_submitted_task_opened_again_is_a_read_only_page(app, admin, teams):
    start_loops(admin, 1)
    console = Console(app).sign_in(teams["mine"][0])
    task_id = console.start()
    console.post(f"/worker/tasks/{task_id}/submit", answer="{}", csrf=console.csrf())
    page = console.get(f"/worker/tasks/{task_id}")
    assert "You already submitted this task" in page
    assert "<iframe" not in page and 'id="timer"' not in page and 'id="submit-button"' not in page
    assert console.http.get(f"/worker/tasks/{task_id}/frame").status_code == 409


def test_an_answer_that_is_not_json_is_refused(app, admin, teams):
    start_loops(admin, 1)
    console = Console(app).sign_in(teams["mine"][0])
    task_id = console.start()
    page = console.post(f"/worker/tasks/{task_id}/submit", 400, answer="{not json", csrf=console.csrf())
    assert "could not be read" in page.text
    page = console.post(f"/worker/tasks/{task_id}/submit", 400, answer="[1, 2]", csrf=console.csrf())
    assert "must be a JSON object" in page.text


def test_a_template_that_cannot_render_shows_a_plain_page_and_the_task_can_be_released(app, admin, teams):
    admin.create_task_ui("broken", template="<p>\n{{ task.input.taskObject | no_such_filter }}</p>")
    admin.create_flow(
        "broken-flow",
        team="MyTeam",
        task_ui="broken",
        title="Broken",
        description="A template with a mistake",
        output_path="s3://review-bucket/out",
    )
    start_loops(admin, 1, flow="broken-flow")
    console = Console(app).sign_in(teams["mine"][0])
    task_id = console.start("broken-flow")
    frame = console.http.get(f"/worker/tasks/{task_id}/frame")
    assert frame.status_code == 200
    assert "This task cannot be shown. Please tell your admin" in frame.text
    assert "line 2" in frame.text and "no_such_filter" in frame.text
    console.post(f"/worker/tasks/{task_id}/release", csrf=console.csrf())


def test_static_files_are_served_with_etags_and_versioned_urls_are_cached_for_good(app):
    http = TestClient(app)
    bundle = http.get("/static/crowd-html-elements.js")
    assert bundle.status_code == 200 and bundle.headers["content-type"].startswith("text/javascript")
    assert "customElements" in bundle.text and bundle.headers["cache-control"] == "no-cache"
    etag = bundle.headers["etag"]
    assert http.get("/static/crowd-html-elements.js", headers={"if-none-match": etag}).status_code == 304
    versioned = http.get("/static/crowd-html-elements.js", params={"v": etag.strip('"')})
    assert versioned.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert http.get("/static/crowd-html-elements.js?v=old").headers["cache-control"] == "no-cache"
    assert http.get("/static/console.css").headers["content-type"] == "text/css; charset=utf-8"
    assert http.get("/static/../console.py").status_code == 404
    assert http.get("/static/nope.js").status_code == 404


# -- extra origins for task frames ------------------------------------------------------------


def _frame_directives(app: FastAPI, email: str, flow: str = "review") -> dict[str, str]:
    console = Console(app).sign_in(email)
    task_id = console.start(flow)
    csp = console.http.get(f"/worker/tasks/{task_id}/frame").headers["content-security-policy"]
    return dict(d.strip().split(" ", 1) for d in csp.split(";"))


def test_the_frame_is_closed_by_default_and_frames_only_loopins_signed_objects(app, admin, teams):
    start_loops(admin, 1)
    directives = _frame_directives(app, teams["mine"][0])
    assert directives["script-src"] == "'self' 'unsafe-inline'"
    assert directives["style-src"] == "'self' 'unsafe-inline'"
    assert directives["font-src"] == "'self' data:"
    # The granted image may also be shown in a frame: loopin's store path, not all of loopin.
    assert directives["frame-src"] == "http://testserver/store/"
    assert directives["default-src"] == "'none'" and directives["connect-src"] == "'none'"


def test_global_and_per_flow_origins_open_the_frame_to_exactly_those_origins(services, teams, admin):
    settings = services.settings.model_copy(update={"task_frame_origins": ("https://cdn.example.com",)})
    app = create_app(services=dataclasses.replace(services, settings=settings), run_background=False)
    admin.update_flow("review", frame_origins=["https://media.example.org:8443", "HTTPS://Media.example.org:8443"])
    assert admin.get_flow("review").frame_origins == ["https://media.example.org:8443"]
    start_loops(admin, 1)
    start_loops(admin, 1, flow="other-review")
    directives = _frame_directives(app, teams["mine"][0])
    both = "https://cdn.example.com https://media.example.org:8443"
    assert directives["script-src"] == "'self' 'unsafe-inline' " + both
    assert directives["img-src"] == "'self' data: blob: http://testserver " + both
    assert directives["media-src"] == directives["img-src"]
    assert directives["frame-src"] == "http://testserver/store/ " + both
    other = _frame_directives(app, teams["other"][0], flow="other-review")  # the global origin only
    assert other["script-src"] == "'self' 'unsafe-inline' https://cdn.example.com"


@pytest.mark.parametrize(
    "origin",
    [
        "http://cdn.example.com",
        "https://cdn.example.com/",
        "https://*.example.com",
        "https://a.example.com/x.js",
        "https://user@a.example.com",
        "'unsafe-eval'",
        "https://a.example.com:99999",
        "cdn.example.com",
        "data:",
    ],
)
def test_an_origin_that_is_not_plain_https_host_port_is_refused_and_nothing_is_written(admin, teams, origin):
    with pytest.raises(ValidationError) as caught:
        admin.update_flow("review", frame_origins=[origin], title="Changed")
    assert "is not a plain https origin" in caught.value.message
    flow = admin.get_flow("review")
    assert flow.frame_origins == [] and flow.title == "Check the boxes"
    with pytest.raises(ValidationError):
        admin.create_flow(
            "new-flow",
            team="MyTeam",
            task_ui="boxes",
            title="t",
            description="d",
            output_path="s3://b/o",
            frame_origins=[origin],
        )
    assert "new-flow" not in [f.name for f in admin.list_flows()]
    with pytest.raises(PydanticValidationError, match="is not a plain https origin"):
        Settings.load(environ={"LOOPIN_TASK_FRAME_ORIGINS": f"https://ok.example.com {origin}"})
