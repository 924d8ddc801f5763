"""The admin console's human-loop pages and overview, and the pre-aggregated counts behind
them, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from html import unescape
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from loopin import loop_stats, loops, tasks
from loopin.background import run_once
from loopin.clock import ManualClock
from loopin.models import FlowDefinition, HumanLoop, Prediction, TaskSlot, Worker
from loopin.services import Services
from tests.admin_support import AdminConsole
from tests.helpers import admin_client, setup_flow, worker_client
from tests.servers import loopin_env, run_cli

IMAGE = "s3://review-bucket/images/cat.jpg"
INPUT = {
    "taskObject": IMAGE,
    "labels": ["cat", "dog"],
    "initialValue": [{"label": "cat", "left": 10, "top": 20, "width": 100, "height": 80}],
    "predictions": [
        {"label": "cat", "score": 0.91, "left": 10, "top": 20, "right": 110, "bottom": 100},
        {"label": "dog", "score": 0.31, "left": 200, "top": 40, "right": 260, "bottom": 120},
    ],
}
ANSWER = {
    "annotatedResult": {
        "boundingBoxes": [
            {"label": "cat", "left": 12, "top": 20, "width": 98, "height": 80},
            {"label": "dog", "left": 198, "top": 42, "width": 64, "height": 80},
            {"label": "dog", "left": 300, "top": 10, "width": 40, "height": 40},
        ],
        "inputImageProperties": {"width": 400, "height": 300},
    }
}


@pytest.fixture
def admin(app_client: TestClient, access_key: tuple[str, str]):
    return admin_client(app_client, access_key)


def start(services: Services, name: str, flow: str = "review", task_input: dict | None = None) -> None:
    services.write(
        lambda s: loops.start_loop(
            s, name=name, flow_name=flow, input_content=json.dumps(task_input or INPUT), now_ms=services.clock.now_ms()
        )
    )


def names_on(page: str) -> list[str]:
    return [unescape(n) for n in re.findall(r'<a href="/admin/loops/[^"]+"><code>([^<]+)</code>', page)]


def older_link(page: str) -> str | None:
    match = re.search(r'<a class="button secondary" href="([^"]+)" rel="next">', page)
    return unescape(match.group(1)) if match else None


def real_counts(session: Session) -> tuple[dict, dict, dict]:
    by_status = dict(session.execute(select(HumanLoop.status, func.count()).group_by(HumanLoop.status)).all())
    by_flow = {
        (f, s): n
        for f, s, n in session.execute(
            select(HumanLoop.flow_id, HumanLoop.status, func.count()).group_by(HumanLoop.flow_id, HumanLoop.status)
        )
    }
    by_day: dict = {}
    for created, status in session.execute(select(HumanLoop.created_at, HumanLoop.status)):
        key = (created // loop_stats.DAY_MS, status)
        by_day[key] = by_day.get(key, 0) + 1
    return by_status, by_flow, by_day


def assert_counters_exact(services: Services) -> None:
    with services.db.read() as s:
        by_status, by_flow, by_day = real_counts(s)
        assert loop_stats.status_counts(s) == by_status
        for flow_id in s.scalars(select(FlowDefinition.id)):
            expected = {st: n for (f, st), n in by_flow.items() if f == flow_id}
            assert loop_stats.status_counts(s, flow_id=flow_id) == expected
        days = {d for d, _ in by_day} or {0}
        counted = loop_stats.loops_per_day(s, first_day=min(days), last_day=max(days))
        assert {(d, st): n for d, per in counted.items() for st, n in per.items()} == by_day


# -- the list ----------------------------------------------------------------------------------


def test_list_filters_by_flow_status_and_time_and_pages_exactly(
    admin, admin_console: AdminConsole, services: Services, clock: ManualClock
):
    setup_flow(admin, workers=1)
    setup_flow(admin, team="Other", flow="other", workers=1)
    t0 = clock.now_ms()
    for i in range(70):
        clock.advance(60)
        start(services, f"r-{i:02d}", "review")
        if i % 7 == 0:
            start(services, f"o-{i:02d}", "other")
    for i in range(0, 70, 5):
        services.write(lambda s, i=i: loops.stop_loop(s, f"r-{i:02d}", now_ms=clock.now_ms()))

    def expected(flow: str | None = None, status: str | None = None, lo: int | None = None, hi: int | None = None):
        with services.db.read() as s:
            q = select(HumanLoop.name).join(FlowDefinition, FlowDefinition.id == HumanLoop.flow_id)
            if flow:
                q = q.where(FlowDefinition.name == flow)
            if status:
                q = q.where(HumanLoop.status == status)
            if lo is not None:
                q = q.where(HumanLoop.created_at >= lo)
            if hi is not None:
                q = q.where(HumanLoop.created_at <= hi)
            return list(s.scalars(q.order_by(HumanLoop.created_at.desc(), HumanLoop.id.desc())))

    def listed(**params: str) -> list[str]:
        page = admin_console.get("/admin/loops?" + urlencode(params))
        shown = names_on(page)
        while (link := older_link(page)) is not None:
            assert len(shown) % 50 == 0
            page = admin_console.get(link)
            shown += names_on(page)
        return shown

    def local(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M")

    everything = listed()
    assert len(everything) == 80 and everything == expected()
    assert listed(flow="review") == expected("review")
    assert listed(status="Stopped") == expected(status="Stopped") and len(expected(status="Stopped")) == 14
    assert listed(flow="other", status="InProgress") == expected("other", "InProgress")
    lo, hi = t0 + 10 * 60_000, t0 + 40 * 60_000
    assert listed(created_from=local(lo), created_to=local(hi)) == expected(lo=lo, hi=hi)
    got = listed(flow="review", status="InProgress", created_from=local(lo), created_to=local(hi))
    assert got == expected("review", "InProgress", lo, hi) and len(got) == 25
    # The status choices carry the pre-aggregated counts of the flow.
    page = admin_console.get("/admin/loops", flow="review")
    assert "Stopped (14)" in page and "InProgress (56)" in page and "70 loops in review" in page
    # Bad input is a page that says so, not a server error.
    assert "not a date" in admin_console.get("/admin/loops", 400, created_from="yesterday")
    assert "Status must be one of" in admin_console.get("/admin/loops?status=Nope", 400)
    assert "NextToken" in admin_console.get("/admin/loops", 400, after="garbage")
    link = older_link(admin_console.get("/admin/loops"))
    assert link is not None
    assert "other filters" in admin_console.get(link.replace("/admin/loops?", "/admin/loops?flow=other&"), 400)


def test_pages_need_an_admin(services: Services):
    from loopin.web.server import create_app

    anonymous = AdminConsole(create_app(services=services, run_background=False))
    for path in ("/admin/loops", "/admin/loops/x", "/admin/overview"):
        response = anonymous.http.get(path)
        assert response.status_code == 303 and response.headers["location"].startswith("/admin/sign-in?next=")


# -- a loop's page -----------------------------------------------------------------------------


def test_loop_page_shows_answers_boxes_output_and_escapes_the_input(
    admin, app_client: TestClient, admin_console: AdminConsole, services: Services, clock: ManualClock
):
    emails = setup_flow(admin, workers=2, task_count=2)
    services.store.put(IMAGE, b"\xff\xd8\xff fake jpeg", content_type="image/jpeg")
    hostile = {**INPUT, "note": "</pre><script>alert(1)</script>"}
    admin.start_loop("boxed", flow="review", input=hostile)
    for email, answer in zip(emails, [ANSWER, {"free": "text"}], strict=True):
        worker = worker_client(app_client, email)
        task = worker.next_task()
        assert task is not None
        clock.advance(2.5)
        worker.submit(task.task_id, answer)
    page = admin_console.get("/admin/loops/boxed")
    assert "<script>alert(1)" not in page and "&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Completed" in page and "review" in page
    for email in emails:
        assert email in page
    assert page.count("2.5 s") == 2
    output = re.search(r'<a href="([^"]+)" class="output-link">', page)
    assert output is not None
    doc = json.loads(admin_console.http.get(unescape(output.group(1))).content)
    assert doc["humanLoopName"] == "boxed" and len(doc["humanAnswers"]) == 2
    image = re.search(r'<img src="([^"]+)"', page)
    assert image is not None and admin_console.http.get(unescape(image.group(1))).content.startswith(b"\xff\xd8\xff")
    # One figure per answer with boxes: the model's two predictions and the worker's three.
    (figure,) = re.findall(r'data-boxes="([^"]+)"', page)
    boxes = json.loads(unescape(figure))
    assert [b["kind"] for b in boxes] == ["model", "model", "human", "human", "human"]
    assert boxes[1] == {
        "left": 200,
        "top": 40,
        "width": 60,
        "height": 80,
        "label": "dog",
        "score": 0.31,
        "kind": "model",
    }
    assert "Stop</button>" not in page and "Delete</button>" in page


def test_stop_then_delete_with_confirmation_and_csrf(admin, admin_console: AdminConsole, services: Services):
    setup_flow(admin)
    admin.start_loop("to-stop", flow="review", input={"text": "hello"})
    page = admin_console.get("/admin/loops/to-stop")
    assert 'data-confirm="Stop this human loop?' in page and "Delete</button>" not in page
    # A loop in progress cannot be deleted; a stale form changes nothing.
    assert "stop it before deleting it" in admin_console.post("/admin/loops/to-stop/delete", 400).text
    admin_console.post("/admin/loops/to-stop/stop", 403, fields={"csrf": "forged"})
    assert admin.describe_loop("to-stop").status == "InProgress"
    response = admin_console.post("/admin/loops/to-stop/stop")
    assert response.headers["location"] == "/admin/loops/to-stop?notice=stopped"
    page = admin_console.get(response.headers["location"])
    assert "The human loop was stopped." in page and admin.describe_loop("to-stop").status == "Stopped"
    assert 'data-confirm="Delete this human loop?' in page
    admin_console.post("/admin/loops/to-stop/delete", 403, fields={"csrf": ""})
    response = admin_console.post("/admin/loops/to-stop/delete")
    assert response.headers["location"] == "/admin/loops?notice=deleted"
    assert "The human loop was deleted." in admin_console.get(response.headers["location"])
    admin_console.get("/admin/loops/to-stop", 404)
    assert_counters_exact(services)


# -- the counts --------------------------------------------------------------------------------


def test_counters_stay_exact_through_every_status_change(
    admin, app_client: TestClient, admin_console: AdminConsole, services: Services, clock: ManualClock
):
    emails = setup_flow(admin, workers=2, availability=600)
    setup_flow(admin, team="Other", flow="other", workers=1)
    for i in range(12):
        start(services, f"loop-{i}", "review" if i % 3 else "other")
        clock.advance(3600 * 5)  # loops spread over days
    assert_counters_exact(services)
    worker = worker_client(app_client, emails[0])
    for _ in range(3):  # completed
        task = worker.next_task("review")
        assert task is not None
        worker.submit(task.task_id, ANSWER)
    assert_counters_exact(services)
    other = worker_client(app_client, emails[1])
    held = other.next_task("review")  # held while stopping: Stopping, then Stopped with the answer
    assert held is not None
    admin.stop_loop(_loop_of(services, held.task_id))
    assert_counters_exact(services)
    other.submit(held.task_id, ANSWER)
    admin.stop_loop("loop-0")
    assert_counters_exact(services)
    clock.advance(3600)  # the rest expire: Failed
    run_once(services)
    assert_counters_exact(services)
    with services.db.read() as s:
        assert set(loop_stats.status_counts(s)) == {"Completed", "Stopped", "Failed"}
    admin.delete_loop("loop-0")
    for name in [loop.name for loop in admin.iter_loops()][:4]:
        admin.delete_loop(name)
    assert_counters_exact(services)
    # Invocations: counted as predictions are logged, routed or not.
    with services.db.write() as s:
        for i in range(5):
            s.add(_prediction(services, f"p{i}", routed=i < 2))
    clock.advance(7200)
    with services.db.write() as s:
        s.add(_prediction(services, "late", routed=True))
    with services.db.read() as s:
        assert loop_stats.invocations_since(s, clock.now_ms() - 3 * 3600_000) == loop_stats.Invocations(6, 3)
        assert loop_stats.invocations_since(s, clock.now_ms()) == loop_stats.Invocations(1, 1)
    # A rolled-back transaction counts nothing.
    with pytest.raises(RuntimeError), services.db.write() as s:
        loops.start_loop(s, name="never", flow_name="review", input_content="{}", now_ms=clock.now_ms())
        s.flush()
        raise RuntimeError
    assert_counters_exact(services)

    page = admin_console.sign_in().get("/admin/overview")  # days later: a new session
    with services.db.read() as s:
        by_status = real_counts(s)[0]
    assert re.search(r'data-stat="completed">([\d,]+)<', page).group(1) == str(by_status["Completed"])
    assert re.search(r'data-stat="failed">([\d,]+)<', page).group(1) == str(by_status["Failed"])
    assert re.search(r'data-stat="routed">([^<]+)<', page).group(1) == "50.0 %"
    assert re.search(r'data-stat="active-workers">(\d+)<', page).group(1) == "0"  # 2 h after the last answer


def test_concurrent_starts_and_stops_keep_the_counters_exact(admin, services: Services, clock: ManualClock):
    setup_flow(admin)

    def work(n: int) -> None:
        for i in range(15):
            start(services, f"c-{n}-{i}", "review")
            if i % 2:
                services.write(lambda s, i=i: loops.stop_loop(s, f"c-{n}-{i}", now_ms=clock.now_ms()))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(8)))
    assert_counters_exact(services)
    with services.db.read() as s:
        assert loop_stats.status_counts(s) == {"InProgress": 64, "Stopped": 56}


def test_overview_shows_answer_times_active_workers_and_the_chart(
    admin, app_client: TestClient, admin_console: AdminConsole, services: Services, clock: ManualClock
):
    emails = setup_flow(admin, workers=1)
    for i in range(3):
        admin.start_loop(f"loop-{i}", flow="review", input={"text": "hi"})
    clock.advance(60)
    worker = worker_client(app_client, emails[0])
    for spent in (10, 20, 40):
        task = worker.next_task()
        assert task is not None
        clock.advance(spent)
        worker.submit(task.task_id, {"ok": True})
    page = admin_console.get("/admin/overview")
    # Waits since the loops started: 70, 90 and 130 s; work: 10, 20 and 40 s.
    assert re.search(r'data-stat="median-answer">([^<]+)<', page).group(1) == "1.5 min"
    assert "20.0 s of work" in page
    assert re.search(r'data-stat="active-workers">(\d+)<', page).group(1) == "1"
    today = datetime.fromtimestamp(clock.now_ms() / 1000, tz=UTC).strftime("%Y-%m-%d")
    assert f'data-date="{today}" data-total="3"' in page
    assert page.count('<g class="bar"') == 14 and '<rect class="Completed"' in page
    with services.db.read() as s:
        seen = s.scalar(select(Worker.last_seen_at).where(Worker.email == emails[0]))
    assert seen is not None and clock.now_ms() - seen <= tasks.SEEN_EVERY_MS + 90_000


def _loop_of(services: Services, task_id: int) -> str:
    with services.db.read() as s:
        return s.scalar(
            select(HumanLoop.name).join(TaskSlot, TaskSlot.loop_id == HumanLoop.id).where(TaskSlot.id == task_id)
        )


def _prediction(services: Services, key: str, *, routed: bool) -> Prediction:
    return Prediction(
        endpoint_name="detector",
        model_name="m",
        image_sha256="0" * 64,
        image_width=1,
        image_height=1,
        detections="[]",
        routed_reason="low-confidence" if routed else None,
        idempotency_key=key,
        response="{}",
        created_at=services.clock.now_ms(),
    )


def test_db_recount_rebuilds_counts_that_went_wrong(admin, services: Services, tmp_path, database_url: str):
    setup_flow(admin, workers=1)
    for i in range(5):
        start(services, f"loop-{i}")
    admin.stop_loop("loop-1")
    with services.db.write() as s:
        s.add(_prediction(services, "a", routed=True))
        s.add(_prediction(services, "b", routed=False))
    with services.db.write() as s:  # someone edited the database by hand
        s.execute(text("UPDATE loop_status_counts SET n = n + 7"))
        s.execute(text("DELETE FROM loop_day_counts"))
        s.execute(text("UPDATE invocation_hour_counts SET routed = 0"))
    run_cli(loopin_env(tmp_path / "cli", database_url), "db", "recount")
    assert_counters_exact(services)
    with services.db.read() as s:
        assert loop_stats.invocations_since(s, 0) == loop_stats.Invocations(total=2, routed=1)
