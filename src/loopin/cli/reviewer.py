"""Commands a worker runs to review from the command line (``loopin tasks ...``), signed in
with ``LOOPIN_WORKER_EMAIL`` / ``LOOPIN_WORKER_PASSWORD`` or ``LOOPIN_WORKER_TOKEN``."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from loopin.cli.output import (
    JsonFlag,
    UrlOption,
    emit,
    err,
    json_object,
    out,
    read_arg,
    server_url,
)
from loopin.client import WorkerClient
from loopin.errors import ValidationError

tasks_app = typer.Typer(help="Work as a reviewer: take, answer, release or decline tasks.", no_args_is_help=True)
GROUPS = [(tasks_app, "tasks")]


# -- worker side ---------------------------------------------------------------------


def worker_client(url: str | None) -> WorkerClient:
    base = server_url(url)
    token = os.environ.get("LOOPIN_WORKER_TOKEN")
    if token:
        return WorkerClient(base, token=token)
    email = os.environ.get("LOOPIN_WORKER_EMAIL")
    password = os.environ.get("LOOPIN_WORKER_PASSWORD")
    if not email or not password:
        raise ValidationError(
            "Set LOOPIN_WORKER_EMAIL and LOOPIN_WORKER_PASSWORD (or LOOPIN_WORKER_TOKEN) to act as a worker."
        )
    return WorkerClient.sign_in(base, email, password)


@tasks_app.command("jobs")
def tasks_jobs(url: UrlOption = None, as_json: JsonFlag = False) -> None:
    """The jobs you may work on, with the tasks waiting."""
    emit(worker_client(url).jobs(), as_json, ["flow", "title", "tasks_waiting"])


@tasks_app.command("next")
def tasks_next(
    flow: Annotated[str | None, typer.Option(help="Only this job (flow).")] = None,
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Take the next task (or show the one you hold). Exit code 3 when none waits."""
    task = worker_client(url).next_task(flow)
    if task is None:
        err.print("no task is waiting")
        raise typer.Exit(3)
    emit(task, as_json)


@tasks_app.command("submit")
def tasks_submit(
    task_id: int,
    answer: Annotated[str, typer.Option(help="Answer JSON object, @file, or - for stdin.")],
    url: UrlOption = None,
) -> None:
    """Submit your answer to a task you hold."""
    worker_client(url).submit(task_id, json_object(read_arg(answer), "answer"))
    out.print(f"submitted task {task_id}")


@tasks_app.command("release")
def tasks_release(task_id: int, url: UrlOption = None) -> None:
    """Give a task back to the pool."""
    worker_client(url).release(task_id)
    out.print(f"released task {task_id}")


@tasks_app.command("decline")
def tasks_decline(task_id: int, url: UrlOption = None) -> None:
    """Give a task back and never see that loop again."""
    worker_client(url).decline(task_id)
    out.print(f"declined task {task_id}")
