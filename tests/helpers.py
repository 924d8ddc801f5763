"""Set-up steps many tests share, done through the SDK as a user would."""

from __future__ import annotations

import httpx

from loopin.client import Client, WorkerClient

PASSWORD = "correct-horse-battery"
TEMPLATE = """<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>
<crowd-form>
  <crowd-bounding-box name="annotatedResult" src="{{ task.input.taskObject | grant_read_access }}"
    header="Fix the boxes" labels="{{ task.input.labels }}" initial-value="{{ task.input.initialValue }}">
  </crowd-bounding-box>
</crowd-form>
"""


def admin_client(http: httpx.Client, key: tuple[str, str]) -> Client:
    return Client("http://testserver", access_key_id=key[0], secret_access_key=key[1], http_client=http)


def setup_flow(
    client: Client,
    *,
    team: str = "MyTeam",
    workers: int = 3,
    task_count: int = 1,
    flow: str = "review",
    output: str = "s3://review-bucket/a2i-results",
    time_limit: int = 60,
    availability: int = 3600,
) -> list[str]:
    """A team with ``workers`` active workers, a template and a flow; returns the e-mails."""
    client.create_team(team, description="Reviewers")
    emails = [f"worker{i}@{team.lower()}.example" for i in range(workers)]
    for email in emails:
        client.create_worker(email, teams=[team], password=PASSWORD)
    if not any(ui.name == "boxes" for ui in client.list_task_uis()):
        client.create_task_ui("boxes", template=TEMPLATE)
    client.create_flow(
        flow,
        team=team,
        task_ui="boxes",
        title="Check the boxes",
        description="Fix the boxes the detector drew",
        output_path=output,
        task_count=task_count,
        time_limit_seconds=time_limit,
        availability_lifetime_seconds=availability,
    )
    return emails


def worker_client(http: httpx.Client, email: str) -> WorkerClient:
    return WorkerClient.sign_in("http://testserver", email, PASSWORD, http_client=http)
