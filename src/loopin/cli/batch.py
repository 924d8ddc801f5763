"""An admin's commands for batch jobs against a server's API (``loopin batch ...``): create,
status, list, cancel, and wait with a progress bar and an ETA."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from loopin.cli.output import JsonFlag, UrlOption, api_client, emit, err, new_table, out, print_table
from loopin.client import Client
from loopin.schemas import BatchJobInfo

batch_app = typer.Typer(
    help="Batch jobs: an endpoint's model over a whole S3 prefix, folder or manifest.", no_args_is_help=True
)
GROUPS = [(batch_app, "batch")]
COLUMNS = ["name", "endpoint", "executor", "status", "total", "done", "failed", "routed", "created_at"]


@batch_app.command("create")
def batch_create(
    endpoint: Annotated[str, typer.Option(help="The endpoint (InService) whose model and routing rule run.")],
    output: Annotated[str, typer.Option(help="Where the answers go: s3://bucket/prefix.")],
    source: Annotated[
        str | None,
        typer.Option(help="s3://bucket/prefix/, or a folder on the server inside an allowed root."),
    ] = None,
    manifest: Annotated[
        str | None, typer.Option(help='A manifest: one URI per line, or {"source-ref": ...} lines.')
    ] = None,
    name: Annotated[str | None, typer.Option(help="The job's name (default: generated).")] = None,
    executor: Annotated[
        str, typer.Option(help="What runs the model: 'local' (the server's threads) or 'ray' (a Ray cluster).")
    ] = "local",
    address: Annotated[
        str | None, typer.Option(help="With --executor ray: auto, host:port or ray://host:port (default auto).")
    ] = None,
    wait: Annotated[bool, typer.Option(help="Wait for the job with a progress bar.")] = False,
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Start a batch job; bad input (no images, a broken manifest, an endpoint not InService) is refused at once."""
    client = api_client(url)
    if executor not in ("local", "ray"):
        raise typer.BadParameter("must be 'local' or 'ray'", param_hint="--executor")
    job = client.create_batch_job(
        endpoint=endpoint,
        output=output,
        source=source,
        manifest=manifest,
        name=name,
        executor="ray" if executor == "ray" else "local",
        address=address,
    )
    if wait:
        job = _wait(client, job.name, poll=1.0)
    emit(job, as_json)
    _exit_code(job)


@batch_app.command("status")
def batch_status(
    name: str,
    failures: Annotated[int, typer.Option(help="How many bad images to list (0: none).")] = 50,
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """A job's progress, and the images it could not read or run, with the reason."""
    client = api_client(url)
    job = client.describe_batch_job(name)
    bad = client.batch_job_failures(name, limit=failures) if failures and job.failed else []
    if as_json:
        emit({**job.model_dump(mode="json"), "failures": [b.model_dump() for b in bad]}, True)
        return
    emit(job, False)
    if bad:
        table = new_table("bad image", "reason", title=f"{job.failed} image(s) could not be used")
        for item in bad:
            table.add_row(item.uri, item.reason)
        print_table(table)


@batch_app.command("list")
def batch_list(
    status: Annotated[str | None, typer.Option(help="Only jobs in this status.")] = None,
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    emit(api_client(url).list_batch_jobs(status=status), as_json, COLUMNS)


@batch_app.command("cancel")
def batch_cancel(name: str, url: UrlOption = None, as_json: JsonFlag = False) -> None:
    """Stop a job after the images in flight; what was done (answers, loops) is kept."""
    emit(api_client(url).cancel_batch_job(name), as_json)


@batch_app.command("wait")
def batch_wait(
    name: str,
    poll: Annotated[float, typer.Option(help="Seconds between polls.")] = 2.0,
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Follow a job with a progress bar and an ETA until it ends; exit 1 unless it Completed."""
    job = _wait(api_client(url), name, poll=poll)
    emit(job, as_json)
    _exit_code(job)


def _wait(client: Client, name: str, *, poll: float) -> BatchJobInfo:
    job = client.describe_batch_job(name)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} bad, {task.fields[routed]} to people"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=not err.is_terminal) as progress:
        task = progress.add_task(name, total=job.total, failed=job.failed, routed=job.routed)
        progress.update(task, completed=job.done + job.failed)
        while job.status in ("Pending", "Running"):
            time.sleep(poll)
            job = client.describe_batch_job(name)
            progress.update(task, completed=job.done + job.failed, failed=job.failed, routed=job.routed)
    return job


def _exit_code(job: BatchJobInfo) -> None:
    if job.status in ("Failed", "Cancelled"):
        if job.failure_reason:
            out.print(f"[red]{job.status}[/red]: {job.failure_reason}", highlight=False)
        raise typer.Exit(1)
