"""The human-loop lifecycle through the SDK, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from loopin.background import run_once
from loopin.clock import ManualClock
from loopin.errors import (
    ConflictError,
    NotFoundError,
    TaskStateError,
    ValidationError,
)
from loopin.services import Services
from tests.helpers import admin_client, setup_flow, worker_client

INPUT = {"taskObject": "s3://images/cat.jpg", "labels": ["cat", "dog"], "initialValue": []}


@pytest.fixture
def admin(app_client: TestClient, access_key: tuple[str, str]):
    return admin_client(app_client, access_key)


def test_fifty_loops_two_reviewers_each_complete_with_output(admin, app_client, services: Services, clock: ManualClock):
    emails = setup_flow(admin, workers=3, task_count=2)
    names = [f"loop-{i:02d}" for i in range(50)]
    inputs = {}
    for i, name in enumerate(names):
        inputs[name] = {**INPUT, "index": i}
        clock.advance(1)
        assert admin.start_loop(name, flow="review", input=inputs[name]).created
    reviewers = [worker_client(app_client, e) for e in emails[:2]]
    for reviewer_no, reviewer in enumerate(reviewers):
        while (task := reviewer.next_task("review")) is not None:
            clock.advance(2)
            reviewer.submit(task.task_id, {"reviewer": reviewer_no, "index": task.input["index"]})
    for name in names:
        loop = admin.describe_loop(name)
        assert loop.status == "Completed", name
        created = loop.created_at  # 2026-01-01T00:00:07.000Z
        date_path = created[:10].replace("-", "/") + "/" + created[11:19].replace(":", "/")
        assert loop.output_uri == f"s3://review-bucket/a2i-results/review/{date_path}/{name}/output.json"
        doc = json.loads(services.store.get(loop.output_uri))
        assert doc["flowDefinitionArn"] == "arn:aws:sagemaker:us-east-1:000000000000:flow-definition/review"
        assert doc["humanLoopName"] == name
        assert doc["inputContent"] == inputs[name]
        assert sorted(a["answerContent"]["reviewer"] for a in doc["humanAnswers"]) == [0, 1]
        assert {a["answerContent"]["index"] for a in doc["humanAnswers"]} == {inputs[name]["index"]}
        assert len({a["workerId"] for a in doc["humanAnswers"]}) == 2
        for answer in doc["humanAnswers"]:
            assert set(answer) == {
                "acceptanceTime",
                "answerContent",
                "submissionTime",
                "timeSpentInSeconds",
                "workerId",
                "workerMetadata",
            }
            assert answer["timeSpentInSeconds"] == 2.0
            assert answer["submissionTime"].endswith("Z") and len(answer["submissionTime"]) == 24
    # The third worker finds nothing: every loop had its two distinct answers.
    assert worker_client(app_client, emails[2]).next_task() is None


def test_start_is_idempotent_and_conflicts_on_other_input(admin):
    setup_flow(admin)
    first = admin.start_loop("same-name", flow="review", input=INPUT)
    again = admin.start_loop("same-name", flow="review", input=INPUT)
    assert first.created and not again.created and first.arn == again.arn
    with pytest.raises(ConflictError):
        admin.start_loop("same-name", flow="review", input={**INPUT, "labels": ["other"]})
    assert len(admin.list_loops().loops) == 1


def test_loop_names_keep_case_and_follow_the_rules(admin):
    setup_flow(admin)
    assert admin.start_loop("Fraud-detector-1613589638354", flow="review", input=INPUT).created
    for bad in ["-starts-with-hyphen", "has_underscore", "a" * 64, "", "spaces here"]:
        with pytest.raises(ValidationError):
            admin.start_loop(bad, flow="review", input=INPUT)


def test_input_must_be_a_json_object_within_3_mib(admin):
    setup_flow(admin)
    for bad in ["[1, 2]", "not json", '"a string"', "x" * (3_145_728 + 1)]:
        with pytest.raises(ValidationError):
            admin.start_loop("bad-input", flow="review", input=bad)
    big = json.dumps({"blob": "x" * (3_145_728 - 20)})
    assert admin.start_loop("big-input", flow="review", input=big).created


def test_stop_while_a_worker_holds_the_task(admin, app_client, services, clock):
    emails = setup_flow(admin, task_count=2)
    admin.start_loop("held", flow="review", input=INPUT)
    worker = worker_client(app_client, emails[0])
    task = worker.next_task()
    assert task is not None
    assert admin.stop_loop("held").status == "Stopping"
    # Nobody else can pick up the other slot any more.
    assert worker_client(app_client, emails[1]).next_task() is None
    clock.advance(5)
    worker.submit(task.task_id, {"answer": "given while stopping"})
    loop = admin.describe_loop("held")
    assert loop.status == "Stopped"
    doc = json.loads(services.store.get(loop.output_uri))
    assert [a["answerContent"] for a in doc["humanAnswers"]] == [{"answer": "given while stopping"}]


def test_stop_with_nobody_working_is_immediate_and_idempotent(admin):
    setup_flow(admin)
    admin.start_loop("idle", flow="review", input=INPUT)
    assert admin.stop_loop("idle").status == "Stopped"
    assert admin.stop_loop("idle").status == "Stopped"
    assert admin.describe_loop("idle").output_uri is None


def test_stopping_loop_becomes_stopped_when_the_holder_releases(admin, app_client):
    emails = setup_flow(admin)
    admin.start_loop("rel", flow="review", input=INPUT)
    worker = worker_client(app_client, emails[0])
    task = worker.next_task()
    admin.stop_loop("rel")
    worker.release(task.task_id)
    assert admin.describe_loop("rel").status == "Stopped"


def test_delete_rules(admin, app_client):
    emails = setup_flow(admin)
    admin.start_loop("doomed", flow="review", input=INPUT)
    with pytest.raises(ValidationError, match="stop it"):
        admin.delete_loop("doomed")
    admin.stop_loop("doomed")
    admin.delete_loop("doomed")
    with pytest.raises(NotFoundError):
        admin.describe_loop("doomed")
    assert admin.list_loops().loops == []
    with pytest.raises(NotFoundError):
        admin.delete_loop("doomed")
    # The name can be used again once the loop is gone.
    assert admin.start_loop("doomed", flow="review", input={"new": True}).created
    # A completed loop can be deleted; its output stays.
    worker = worker_client(app_client, emails[0])
    worker.submit(worker.next_task().task_id, {"ok": True})
    done = admin.describe_loop("doomed")
    assert done.status == "Completed"
    admin.delete_loop("doomed")


def test_lease_expiry_returns_the_slot_and_refuses_the_late_submit(admin, app_client, services, clock):
    emails = setup_flow(admin, time_limit=60)
    admin.start_loop("slow", flow="review", input=INPUT)
    slow, fast = (worker_client(app_client, e) for e in emails[:2])
    task = slow.next_task()
    assert fast.next_task() is None
    clock.advance(61)
    with pytest.raises(TaskStateError, match="time limit"):
        slow.submit(task.task_id, {"late": True})
    assert run_once(services)["leases_expired"] == 1
    assert run_once(services)["leases_expired"] == 0  # idempotent
    with pytest.raises(NotFoundError):
        slow.submit(task.task_id, {"late": True})
    again = fast.next_task()
    assert again is not None and again.task_id == task.task_id
    fast.submit(again.task_id, {"on": "time"})
    assert admin.describe_loop("slow").status == "Completed"


def test_repeated_submit_is_refused(admin, app_client):
    emails = setup_flow(admin, task_count=2)
    admin.start_loop("twice", flow="review", input=INPUT)
    worker = worker_client(app_client, emails[0])
    task = worker.next_task()
    worker.submit(task.task_id, {"first": True})
    with pytest.raises(TaskStateError, match="already"):
        worker.submit(task.task_id, {"second": True})


def test_availability_expiry_fails_the_loop(admin, app_client, services, clock):
    emails = setup_flow(admin, availability=600, time_limit=900)
    admin.start_loop("picked", flow="review", input=INPUT)
    admin.start_loop("unpicked", flow="review", input=INPUT)
    worker = worker_client(app_client, emails[0])
    task = worker.next_task()  # takes the oldest: "picked"
    clock.advance(599)
    assert run_once(services)["loops_expired"] == 0
    clock.advance(2)
    # The loop a worker is working on waits for the lease; the other one fails.
    assert run_once(services)["loops_expired"] == 1
    worker.submit(task.task_id, {"made": "it"})
    assert admin.describe_loop("picked").status == "Completed"
    failed = admin.describe_loop("unpicked")
    assert failed.status == "Failed" and failed.failure_code == "Expired"
    assert worker_client(app_client, emails[1]).next_task() is None


def test_decline_means_never_again_and_distinct_workers(admin, app_client):
    emails = setup_flow(admin, task_count=2)
    admin.start_loop("only", flow="review", input=INPUT)
    a, b, c = (worker_client(app_client, e) for e in emails)
    task = a.next_task()
    a.decline(task.task_id)
    assert a.next_task() is None  # declined: never offered again
    b_task = b.next_task()
    b.submit(b_task.task_id, {"b": 1})
    assert b.next_task() is None  # answered: never gets the second slot
    c_task = c.next_task()
    c.submit(c_task.task_id, {"c": 1})
    assert admin.describe_loop("only").status == "Completed"


def test_release_puts_the_task_back_for_anyone(admin, app_client):
    emails = setup_flow(admin)
    admin.start_loop("back", flow="review", input=INPUT)
    a, b = (worker_client(app_client, e) for e in emails[:2])
    task = a.next_task()
    assert a.next_task().task_id == task.task_id  # the task you hold comes back
    a.release(task.task_id)
    with pytest.raises(NotFoundError):
        a.submit(task.task_id, {})
    assert b.next_task().task_id == task.task_id


def test_other_teams_workers_cannot_see_or_answer(admin, app_client):
    emails = setup_flow(admin)
    setup_flow(admin, team="Other", flow="other-flow", workers=1)
    admin.start_loop("private", flow="review", input=INPUT)
    outsider = worker_client(app_client, "worker0@other.example")
    assert [j.flow for j in outsider.jobs()] == ["other-flow"]
    assert outsider.next_task() is None
    with pytest.raises(NotFoundError):
        outsider.next_task("review")
    insider = worker_client(app_client, emails[0])
    task = insider.next_task()
    for action in (outsider.get_task, outsider.release, outsider.decline):
        with pytest.raises(NotFoundError):
            action(task.task_id)
    with pytest.raises(NotFoundError):
        outsider.submit(task.task_id, {"stolen": True})
    insider.submit(task.task_id, {"mine": True})


def test_disabled_worker_loses_access_and_held_tasks(admin, app_client):
    emails = setup_flow(admin)
    admin.start_loop("held-by-disabled", flow="review", input=INPUT)
    worker = worker_client(app_client, emails[0])
    task = worker.next_task()
    admin.set_worker_status(emails[0], "disabled")
    with pytest.raises(Exception) as info:
        worker.jobs()
    assert getattr(info.value, "code", "") == "UnauthorizedException"
    assert worker_client(app_client, emails[1]).next_task().task_id == task.task_id


def test_list_pages_with_keyset_tokens_and_filters(admin, clock):
    setup_flow(admin)
    setup_flow(admin, team="Second", flow="second", workers=1)
    for i in range(25):
        clock.advance(1)
        admin.start_loop(f"p-{i:02d}", flow="review" if i % 5 else "second", input={"i": i})
    seen = []
    token = None
    while True:
        page = admin.list_loops(flow="review", sort_order="Ascending", max_results=7, next_token=token)
        seen += [loop.name for loop in page.loops]
        token = page.next_token
        if token is None:
            break
    assert seen == [f"p-{i:02d}" for i in range(25) if i % 5]
    desc = [loop.name for loop in admin.iter_loops(max_results=4)]
    assert desc == [f"p-{i:02d}" for i in reversed(range(25))]
    middle = admin.list_loops(
        created_after="2026-01-01T00:00:05Z",
        created_before="2026-01-01T00:00:07Z",
        sort_order="Ascending",
    )
    assert [loop.name for loop in middle.loops] == ["p-04", "p-05", "p-06"]
    with pytest.raises(ValidationError, match="other filters"):
        admin.list_loops(flow="second", next_token=admin.list_loops(flow="review", max_results=2).next_token)
    with pytest.raises(ValidationError):
        admin.list_loops(next_token="garbage!")


def test_worker_only_submits_to_a_task_they_hold(admin, app_client):
    emails = setup_flow(admin)
    admin.start_loop("x", flow="review", input=INPUT)
    worker = worker_client(app_client, emails[0])
    with pytest.raises(NotFoundError):
        worker.submit(1, {"never": "claimed"})


def test_disabled_worker_cannot_sign_in(admin, app_client):
    emails = setup_flow(admin)
    admin.set_worker_status(emails[0], "disabled")
    with pytest.raises(Exception) as info:
        worker_client(app_client, emails[0])
    assert info.value.code == "UnauthorizedException"


def test_invitation_sets_the_password_once(admin, app_client):
    from loopin.client import WorkerClient

    admin.create_team("T", description="d")
    invitation = admin.create_worker("new@example.com", teams=["T"])
    assert invitation.worker.status == "invited" and invitation.invitation_url.endswith(invitation.invitation_token)
    worker = WorkerClient.accept_invitation(
        "http://testserver", invitation.invitation_token, "a-long-password", http_client=app_client
    )
    assert worker.jobs() == []
    with pytest.raises(Exception) as info:
        WorkerClient.accept_invitation(
            "http://testserver",
            invitation.invitation_token,
            "another-password",
            http_client=app_client,
        )
    assert info.value.code == "UnauthorizedException"
    assert admin.get_worker("new@example.com").status == "active"


def test_disabling_the_last_holder_settles_a_stopping_loop(admin, app_client):
    emails = setup_flow(admin)
    admin.start_loop("stop-then-disable", flow="review", input=INPUT)
    worker_client(app_client, emails[0]).next_task()
    assert admin.stop_loop("stop-then-disable").status == "Stopping"
    admin.remove_worker(emails[0])
    assert admin.describe_loop("stop-then-disable").status == "Stopped"
    admin.delete_loop("stop-then-disable")


def test_start_with_the_same_object_in_another_key_order_is_the_same_input(admin):
    setup_flow(admin)
    admin.start_loop("ordered", flow="review", input={"a": 1, "b": 2})
    assert not admin.start_loop("ordered", flow="review", input={"b": 2, "a": 1}).created


def test_a_flow_update_applies_to_loops_started_afterwards(admin):
    setup_flow(admin, workers=2, flow="review")
    admin.start_loop("before", flow="review", input={"q": 1})
    updated = admin.update_flow("review", task_count=2, title="Look again")
    assert (updated.task_count, updated.title, updated.team) == (2, "Look again", "MyTeam")
    admin.start_loop("after", flow="review", input={"q": 2})
    assert admin.describe_loop("before").task_count == 1
    assert admin.describe_loop("after").task_count == 2
    with pytest.raises(ValidationError):
        admin.update_flow("review", task_count=4)
    with pytest.raises(NotFoundError):
        admin.update_flow("missing", title="x")


def test_a_template_with_an_element_loopin_does_not_know_is_saved_with_a_warning(admin):
    template = (
        "<crowd-form><crowd-input name='a'></crowd-input><crowd-sketchpad name='drawing'></crowd-sketchpad>"
        "<!-- <crowd-entity-annotator> in a comment is no element --></crowd-form>"
    )
    created = admin.create_task_ui("sketch", template=template)
    assert len(created.warnings) == 1 and created.warnings[0].startswith("<crowd-sketchpad> is not an element")
    assert admin.get_task_ui("sketch").warnings == created.warnings
    plain = "<crowd-form><crowd-line name='l'></crowd-line></crowd-form>"
    assert admin.create_task_ui("plain", template=plain).warnings == []
