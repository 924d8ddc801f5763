"""``loopin gold`` and ``loopin quality`` against a real ``loopin serve`` (SQLite; the API
tests cover both databases): settings (a bad rate refused), adding and uploading items (a
bad file refused whole), listing, deleting, the workers' quality and un-pausing."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from loopin.client import Client, WorkerClient
from tests.helpers import PASSWORD, setup_flow
from tests.servers import create_key, loopin_env, run_cli, serve
from tests.test_gold import BIKE, CAR, boxes, gold_input, real_input

pytestmark = pytest.mark.slow  # a real server process


def _words(text: str) -> str:
    """The text with its line wraps (rich wraps to the terminal's width) undone."""
    return " ".join(text.split())


def _json(env: dict[str, str], *args: str) -> object:
    return json.loads(run_cli(env, *args, "--json").stdout)


def test_gold_and_quality_commands(tmp_path: Path) -> None:
    env = loopin_env(tmp_path / "data", f"sqlite:///{tmp_path / 'loopin.db'}")
    key_id, secret = create_key(env)
    with serve(env) as url:
        env = {**env, "LOOPIN_URL": url, "LOOPIN_ACCESS_KEY_ID": key_id, "LOOPIN_SECRET_ACCESS_KEY": secret}
        with Client(url, access_key_id=key_id, secret_access_key=secret) as api:
            emails = setup_flow(api, workers=1)
            api.start_loop("loop-0", flow="review", input=real_input(0))

        bad = run_cli(env, "gold", "settings", "review", "--rate", "2", check=False)
        assert bad.returncode == 1 and "gold_rate must be a number from 0 to 1" in _words(bad.stderr)
        settings = _json(env, "gold", "settings", "review", "--rate", "1", "--min-accuracy", "0.5", "--min-scored", "1")
        assert settings == {"gold_rate": 1.0, "gold_min_accuracy": 0.5, "gold_min_scored": 1}

        one = _json(
            env, "gold", "add", "review", "--input", json.dumps(gold_input(0)), "--answer", json.dumps(boxes(CAR))
        )
        assert isinstance(one, dict) and one["input"] == gold_input(0)
        lines = tmp_path / "gold.jsonl"
        lines.write_text(
            json.dumps({"input": gold_input(1), "answer": boxes(CAR, BIKE), "note": "two"})
            + "\n\n"
            + json.dumps({"input": gold_input(2), "answer": {"nope": {}}})
            + "\n"
        )
        refused = run_cli(env, "gold", "upload", "review", str(lines), check=False)
        assert refused.returncode == 1 and "Line 2: The answer's field(s) 'nope'" in _words(refused.stderr)
        lines.write_text(json.dumps({"input": gold_input(1), "answer": boxes(CAR, BIKE), "note": "two"}) + "\n")
        assert "added 1 gold items to review" in run_cli(env, "gold", "upload", "review", str(lines)).stdout
        listed = _json(env, "gold", "list", "review")
        assert isinstance(listed, list) and [i["note"] for i in listed] == ["", "two"]
        run_cli(env, "gold", "delete", "review", str(one["id"]))
        assert [i["note"] for i in _json(env, "gold", "list", "review")] == ["two"]  # type: ignore[union-attr]

        http = httpx.Client(base_url=url)
        try:
            worker = WorkerClient.sign_in(url, emails[0], PASSWORD, http_client=http)
            task = worker.next_task("review")
            assert task is not None and task.input == gold_input(1)
            worker.submit(task.task_id, boxes())  # wrong: paused
        finally:
            http.close()
        report = _json(env, "quality", "show", "review")
        assert isinstance(report, dict)
        (row,) = report["workers"]
        assert (row["gold_scored"], row["gold_accuracy"]) == (1, 0.0) and row["paused"]["scored"] == 1
        assert "below the flow's limit of 50%" in _words(run_cli(env, "quality", "show", "review").stdout)
        assert "may work on review again" in run_cli(env, "quality", "unpause", "review", emails[0]).stdout
        assert _json(env, "quality", "show", "review")["workers"][0]["paused"] is None  # type: ignore[index]
