"""The `loopin` command against a real `loopin serve`, as an operator and a reviewer use it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.servers import create_key, loopin_env, run_cli, serve

pytestmark = pytest.mark.slow  # every test runs `loopin` processes


TEMPLATE = "<crowd-form><p>{{ task.input.question }}</p><crowd-input name='answer'></crowd-input></crowd-form>"


@pytest.fixture
def cli(tmp_path: Path, database_url: str):
    env = loopin_env(tmp_path / "data", database_url)
    key_id, secret = create_key(env)
    with serve(env) as url:
        env = {**env, "LOOPIN_URL": url, "LOOPIN_ACCESS_KEY_ID": key_id, "LOOPIN_SECRET_ACCESS_KEY": secret}
        yield env


def _json(env, *args):
    return json.loads(run_cli(env, *args, "--json").stdout)


def test_operator_and_reviewer_round_trip(cli, tmp_path: Path) -> None:
    env = cli
    assert _json(env, "teams", "create", "MyTeam", "--description", "Reviewers")["name"] == "MyTeam"
    invited = _json(env, "workers", "invite", "ann@example.com,bob@example.com", "--team", "MyTeam")
    assert [w["status"] for w in invited] == ["invited", "invited"]
    assert all("/worker/invitation/" in w["invitation_url"] for w in invited)
    run_cli(
        env, "workers", "invite", "rev@example.com", "--team", "MyTeam", "--password-stdin", input="a-long-password\n"
    )
    template = tmp_path / "t.html"
    template.write_text(TEMPLATE)
    run_cli(env, "templates", "create", "questions", "--file", str(template))
    assert run_cli(env, "templates", "show", "questions").stdout.strip() == TEMPLATE
    flow = _json(
        env,
        "flows",
        "create",
        "ask",
        "--team",
        "MyTeam",
        "--template",
        "questions",
        "--title",
        "Answer",
        "--description",
        "Answer the question",
        "--output",
        "s3://answers/out",
        "--keyword",
        "text",
    )
    assert flow["task_count"] == 1 and flow["keywords"] == ["text"]
    updated = _json(env, "flows", "update", "ask", "--time-limit", "600", "--keyword", "text")
    assert (updated["time_limit_seconds"], updated["keywords"], updated["title"]) == (600, ["text"], "Answer")
    refused = run_cli(env, "flows", "update", "ask", "--task-count", "9", check=False)
    assert refused.returncode == 1 and "ValidationException" in refused.stderr
    assert _json(env, "flows", "describe", "ask")["task_count"] == 1
    consolidating = _json(env, "flows", "update", "ask", "--task-count", "3", "--consolidation-quorum", "3")
    assert (consolidating["consolidation"], consolidating["consolidation_quorum"]) == (True, 3)
    kept = _json(env, "flows", "update", "ask", "--title", "Answer")  # options not given stay (not null)
    assert kept["consolidation_quorum"] == 3
    refused = run_cli(env, "flows", "update", "ask", "--consolidation-quorum", "4", check=False)
    assert refused.returncode == 1 and "Consolidation quorum" in refused.stderr
    off = _json(env, "flows", "update", "ask", "--task-count", "1", "--consolidation-quorum", "1", "--no-consolidation")
    assert (off["task_count"], off["consolidation"], off["consolidation_quorum"]) == (1, False, 1)
    origins = ["--frame-origin", "https://cdn.example.com", "--frame-origin", "https://media.example.com:8443"]
    updated = _json(env, "flows", "update", "ask", *origins)
    assert updated["frame_origins"] == ["https://cdn.example.com", "https://media.example.com:8443"]
    assert updated["time_limit_seconds"] == 600  # the rest stays
    run_cli(env, "teams", "create", "Experts", "--description", "Second opinion")
    deadline = ["--deadline", "900", "--fallback", "model", "--escalation-team", "Experts", "--escalation-time", "1200"]
    escalating = _json(env, "flows", "update", "ask", *deadline)
    assert (escalating["deadline_seconds"], escalating["fallback"]) == (900, "model")
    assert (escalating["escalation_team"], escalating["escalation_seconds"]) == ("Experts", 1200)
    refused = run_cli(env, "flows", "update", "ask", "--fallback", "guess", check=False)
    assert refused.returncode == 2 and "Invalid value for '--fallback'" in refused.stderr and "guess" in refused.stderr
    refused = run_cli(env, "flows", "update", "ask", "--escalation-team", "MyTeam", check=False)
    assert refused.returncode == 1 and "another team" in refused.stderr
    removed = _json(env, "flows", "update", "ask", "--escalation-team", "", "--deadline", "0")
    assert (removed["escalation_team"], removed["escalation_seconds"]) == (None, None)
    assert removed["deadline_seconds"] is None

    started = _json(env, "loops", "start", "q-1", "--flow", "ask", "--input", '{"question": "Cat or dog?"}')
    assert started["created"] is True
    batch = tmp_path / "inputs.jsonl"
    batch.write_text('{"question": "one"}\n{"question": "two"}\n{"loopName": "named", "question": "three"}\n')
    assert "started 3 loops" in run_cli(env, "loops", "start-batch", str(batch), "--flow", "ask").stdout
    assert "started 0 loops" in run_cli(env, "loops", "start-batch", str(batch), "--flow", "ask").stdout
    listed = _json(env, "loops", "list", "--flow", "ask", "--sort", "Ascending")
    assert [loop["name"] for loop in listed][0] == "q-1" and len(listed) == 4
    assert len(_json(env, "loops", "list", "--status", "InProgress")) == 4
    assert _json(env, "loops", "list", "--status", "Completed") == []
    refused = run_cli(env, "loops", "list", "--status", "Done", check=False)
    assert refused.returncode == 1 and "ValidationException" in refused.stderr

    reviewer = {**env, "LOOPIN_WORKER_EMAIL": "rev@example.com", "LOOPIN_WORKER_PASSWORD": "a-long-password"}
    jobs = _json(reviewer, "tasks", "jobs")
    assert jobs == [
        {
            "flow": "ask",
            "title": "Answer",
            "description": "Answer the question",
            "keywords": ["text"],
            "tasks_waiting": 4,
            "escalated": False,
        }
    ]
    answered = 0
    while True:
        result = run_cli(reviewer, "tasks", "next", "--flow", "ask", "--json", check=False)
        if result.returncode == 3:
            break
        task = json.loads(result.stdout)
        run_cli(
            reviewer,
            "tasks",
            "submit",
            str(task["task_id"]),
            "--answer",
            json.dumps({"answer": task["input"]["question"].upper()}),
        )
        answered += 1
    assert answered == 4

    done = _json(env, "loops", "wait", "q-1", "--timeout", "30")
    assert done["status"] == "Completed"
    stored = tmp_path / "data" / "objects" / done["output_uri"].removeprefix("s3://")
    output = json.loads(stored.read_text())
    assert output["humanAnswers"][0]["answerContent"] == {"answer": "CAT OR DOG?"}

    failed = run_cli(env, "loops", "start", "q-1", "--flow", "ask", "--input", '{"question": "changed"}', check=False)
    assert failed.returncode == 1 and "ConflictException" in failed.stderr
    run_cli(env, "loops", "delete", "q-1")
    assert run_cli(env, "loops", "describe", "q-1", check=False).returncode == 1


def test_keys_can_be_listed_and_revoked(cli) -> None:
    env = cli
    keys = _json(env, "keys", "list")
    assert len(keys) == 1 and keys[0]["revoked_at"] is None and "secret_access_key" not in keys[0]
    assert run_cli(env, "teams", "list").returncode == 0
    run_cli(env, "keys", "revoke", env["LOOPIN_ACCESS_KEY_ID"])
    time.sleep(5.5)  # each server process caches a key's secret for 5 s
    refused = run_cli(env, "teams", "list", check=False)
    assert refused.returncode == 1 and "UnauthorizedException" in refused.stderr


def test_stop_and_wait_and_worker_management(cli) -> None:
    env = cli
    run_cli(env, "teams", "create", "T", "--description", "d")
    run_cli(env, "teams", "update", "T", "--description", "new description")
    assert _json(env, "teams", "describe", "T")["description"] == "new description"
    run_cli(env, "workers", "invite", "w@example.com", "--team", "T")
    assert _json(env, "workers", "disable", "w@example.com")["status"] == "disabled"
    assert _json(env, "workers", "list", "--team", "T")[0]["email"] == "w@example.com"
    run_cli(env, "workers", "remove", "w@example.com")
    assert _json(env, "teams", "describe", "T")["members"] == []
    timeout = run_cli(env, "loops", "wait", "nope", check=False)
    assert timeout.returncode == 1 and "ResourceNotFound" in timeout.stderr


def test_bad_settings_give_one_line(tmp_path: Path) -> None:
    env = loopin_env(tmp_path / "data", "sqlite:///" + str(tmp_path / "x.db"), LOOPIN_ACCOUNT_ID="123")
    result = run_cli(env, "keys", "create", check=False)
    assert result.returncode == 1
    assert "account_id" in result.stderr and "Traceback" not in result.stderr


DATA = Path(__file__).parent / "data"


def test_endpoints_from_the_cli_agree_with_the_library(cli, tmp_path: Path) -> None:
    from loopin.inference import Detector

    env = cli
    assert _json(env, "models", "catalog")[0]["name"] == "nanodet-g-416-coco"
    run_cli(env, "teams", "create", "T", "--description", "d")
    template = tmp_path / "t.html"
    template.write_text(TEMPLATE)
    run_cli(env, "templates", "create", "boxes", "--file", str(template))
    run_cli(env, "flows", "create", "ask", "--team", "T", "--template", "boxes", "--title", "t",
            "--description", "d", "--output", "s3://answers/out")  # fmt: skip
    endpoint = _json(env, "endpoints", "create", "det", "--model", "nanodet-g-416-coco", "--flow", "ask",
                     "--threshold", "0.5")  # fmt: skip
    assert endpoint["status"] == "InService" and endpoint["routing"]["threshold"] == 0.5
    images = [str(DATA / "astronaut.jpg"), str(DATA / "coffee.jpg")]
    first = _json(env, "endpoints", "invoke", "det", *images)
    library = Detector.builtin("nanodet-g-416-coco")
    for item in first:
        expected = library.detect(Path(item["file"]).read_bytes()).detections
        assert [d["label"] for d in item["detections"]] == [d.label for d in expected]
        for got, want in zip(item["detections"], expected, strict=True):
            assert abs(got["score"] - want.score) <= 0.01
            assert abs(got["left"] - want.left) <= 1 and abs(got["bottom"] - want.bottom) <= 1
    routed = [item["human_loop"]["name"] for item in first if item["human_loop"]]
    assert routed  # both photos have detections under 0.5
    summary = run_cli(env, "endpoints", "invoke", "det", *images).stdout
    assert f"{len(routed)} of 2 images went to people" in summary
    assert len(_json(env, "loops", "list")) == len(routed)  # the rerun started nothing new
    # The key covers the routing options (docs/endpoints.md, idempotency keys): other options, a new request.
    other = _json(env, "endpoints", "invoke", "det", images[0], "--flow", "ask", "--threshold", "0.95")
    assert other[0]["routing"]["threshold"] == 0.95 and other[0]["prediction_id"] not in {
        item["prediction_id"] for item in first
    }
    assert _json(env, "endpoints", "update", "det", "--no-routing")["routing"] is None
    run_cli(env, "endpoints", "delete", "det")
    assert _json(env, "endpoints", "list") == []


def test_demo_leaves_a_task_waiting_for_the_demo_worker(tmp_path: Path) -> None:
    from loopin.client import WorkerClient

    env = loopin_env(tmp_path / "data", f"sqlite:///{tmp_path / 'loopin.db'}")
    for start in range(2):  # a second start sets up nothing twice
        with serve(env, extra=("--demo",)) as url:
            credentials = json.loads((tmp_path / "data" / "demo-credentials.json").read_text())
            worker = WorkerClient.sign_in(url, "demo-worker@loopin.example", credentials["worker_password"])
            assert [(j.flow, j.tasks_waiting) for j in worker.jobs()] == [("demo-review", 1)]
            if start == 1:
                task = worker.next_task()
                assert task is not None and task.input["initialValue"][0]["label"] == "person"
                assert "bicycle" in task.input["labels"]  # the model's whole label set, not only what it saw
            worker.close()
            # The banner's export line names the server that printed it, so its commands reach it.
            banner = next((tmp_path).glob(f"serve-{url.rsplit(':', 1)[1]}.log")).read_text()
            assert f"export LOOPIN_URL={url} LOOPIN_ACCESS_KEY_ID={credentials['access_key_id']} " in banner


def test_serve_on_a_taken_port_fails_before_printing_anything(tmp_path: Path) -> None:
    import socket

    env = loopin_env(tmp_path / "data", f"sqlite:///{tmp_path / 'loopin.db'}")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(env, "serve", "--demo", "--port", str(port), check=False)
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert f"Port {port} on 127.0.0.1 is taken" in lines[0]  # the first thing printed is the error
    assert "--port" in result.stderr and "LOOPIN_PORT" in result.stderr and "make run PORT=" in result.stderr
    for secret in ("serving on", "Sign in as", "LOOPIN_SECRET_ACCESS_KEY", "admin/setup", "Traceback"):
        assert secret not in result.stderr
    assert not (tmp_path / "data" / "demo-credentials.json").exists()


def test_make_run_passes_the_port_through() -> None:
    import subprocess

    root = Path(__file__).parent.parent
    dry = subprocess.run(["make", "-n", "run", "PORT=8400"], cwd=root, capture_output=True, text=True, check=True)
    assert "loopin serve --demo --port 8400" in dry.stdout
    dry = subprocess.run(["make", "-n", "run"], cwd=root, capture_output=True, text=True, check=True)
    assert "--port" not in dry.stdout  # LOOPIN_PORT, or the default, then applies


def test_inviting_an_existing_worker_adds_them_to_the_team(cli) -> None:
    env = cli
    for team in ("A", "B"):
        run_cli(env, "teams", "create", team, "--description", "d")
    first = _json(env, "workers", "invite", "w@example.com", "--team", "A")
    assert first[0]["status"] == "invited" and first[0]["invitation_url"]
    again = _json(env, "workers", "invite", "w@example.com,new@example.com", "--team", "B")
    assert [(r["email"], r["outcome"]) for r in again] == [("w@example.com", "added"), ("new@example.com", "invited")]
    assert again[0]["invitation_url"] is None  # no second invitation: they have one (or a password)
    assert _json(env, "teams", "describe", "B")["members"] == ["new@example.com", "w@example.com"]
    assert sorted(_json(env, "workers", "describe", "w@example.com")["teams"]) == ["A", "B"]
    member = _json(env, "workers", "invite", "w@example.com", "--team", "B")
    assert member[0]["outcome"] == "member"


def test_tables_print_identifiers_and_urls_whole(cli) -> None:
    env = {**cli, "COLUMNS": "80"}
    run_cli(env, "teams", "create", "a-team-with-a-rather-long-name-for-this-table", "--description", "d")
    email = "someone.with.a.long.address@reviewers.example.com"
    invited = run_cli(env, "workers", "invite", email, "--team", "a-team-with-a-rather-long-name-for-this-table")
    url = _json(env, "workers", "list")[0]
    assert email in invited.stdout and "…" not in invited.stdout
    token_url = next(line for line in invited.stdout.splitlines() if "/worker/invitation/" in line)
    assert token_url.split("/worker/invitation/")[1].split()[0].strip("│ ")  # on one line
    whole = [w for w in invited.stdout.split() if "/worker/invitation/" in w]
    assert len(whole) == 1 and len(whole[0].rsplit("/", 1)[1]) >= 40, invited.stdout  # the whole token
    teams = run_cli(env, "teams", "list").stdout
    assert "a-team-with-a-rather-long-name-for-this-table" in teams and "…" not in teams
    assert url["email"] == email
