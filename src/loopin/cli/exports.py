"""Commands an admin runs against a server's API for training data: ``exports`` (create with
a progress bar, status, list, download), ``datasets`` (named immutable snapshots of an
export) and ``metrics`` (the model versus the people)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from loopin.cli.output import JsonFlag, UrlOption, api_client, emit, err, out
from loopin.errors import LoopinError
from loopin.schemas import ExportInfo

exports_app = typer.Typer(help="Exports of a flow's finished loops to training formats.", no_args_is_help=True)
datasets_app = typer.Typer(help="Datasets: named, immutable snapshots of an export.", no_args_is_help=True)
metrics_app = typer.Typer(help="The model's boxes against the people's.", no_args_is_help=True)
GROUPS = [(exports_app, "exports"), (datasets_app, "datasets"), (metrics_app, "metrics")]

EXPORT_COLUMNS = ["export_id", "flow", "format", "state", "items", "annotations", "progress", "created_at"]


def _split(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


@exports_app.command("create")
def exports_create(
    flow: str,
    format: Annotated[str, typer.Option("--format", help="coco, yolo, voc, manifest or csv.")] = "coco",
    status: Annotated[
        list[str] | None, typer.Option("--status", help="Completed (default) and/or Stopped (repeatable).")
    ] = None,
    created_after: Annotated[str | None, typer.Option(help="Loops created at or after (ISO-8601).")] = None,
    created_before: Annotated[str | None, typer.Option(help="Loops created at or before (ISO-8601).")] = None,
    label: Annotated[list[str] | None, typer.Option("--label", help="Only these classes (repeatable).")] = None,
    changed_only: Annotated[bool, typer.Option(help="Only answers that differ from the model's boxes.")] = False,
    per_worker: Annotated[bool, typer.Option(help="Each worker's answer instead of the consolidated one.")] = False,
    copy_images: Annotated[bool, typer.Option(help="Copy the images beside the labels.")] = False,
    target: Annotated[str, typer.Option(help="zip (default), folder or s3.")] = "zip",
    location: Annotated[
        str | None, typer.Option(help="The folder (inside the data directory) or s3:// prefix.")
    ] = None,
    label_attribute: Annotated[str, typer.Option(help="The manifest's label attribute.")] = "label",
    wait: Annotated[bool, typer.Option(help="Wait with a progress bar until it is done.")] = True,
    download: Annotated[Path | None, typer.Option(help="Then save the zip here.")] = None,
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Export a flow's finished loops (COCO, YOLO, Pascal VOC, Ground Truth manifest, CSV)."""
    client = api_client(url)
    info = client.create_export(
        flow,
        format=format,
        statuses=_split(status) or ["Completed"],
        created_after=created_after,
        created_before=created_before,
        labels=_split(label),
        changed_only=changed_only,
        answers="per-worker" if per_worker else "consolidated",
        images="copy" if copy_images else "reference",
        target=target,
        location=location,
        label_attribute=label_attribute,
    )
    if wait or download:
        info = _follow(client.wait_for_export, info)
        if info.state == "failed":
            raise LoopinError(f"export {info.export_id} failed: {info.error_message}")
    if download:
        client.download_export(info.export_id, download)
        err.print(f"saved {download}")
    emit(info, as_json)


def _follow(wait: Callable[..., ExportInfo], info: ExportInfo) -> ExportInfo:
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task(f"exporting {info.export_id}", total=max(info.total, 1))

        def show(now: ExportInfo) -> None:
            progress.update(task, completed=now.done, description=f"{now.export_id} {now.state}")

        return wait(info.export_id, on_progress=show, poll_interval=0.5)


@exports_app.command("status")
def exports_status(export_id: str, url: UrlOption = None, as_json: JsonFlag = False) -> None:
    """An export's state and progress."""
    emit(api_client(url).get_export(export_id), as_json)


@exports_app.command("list")
def exports_list(
    flow: Annotated[str | None, typer.Option(help="Only this flow's exports.")] = None,
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    emit(api_client(url).list_exports(flow=flow), as_json, EXPORT_COLUMNS)


@exports_app.command("download")
def exports_download(export_id: str, dest: Path, url: UrlOption = None) -> None:
    """Save a finished zip export."""
    size = api_client(url).download_export(export_id, dest)
    out.print(f"saved {dest} ({size:,} bytes)")


@datasets_app.command("create")
def datasets_create(
    name: str,
    export_id: Annotated[str, typer.Option("--export", help="A finished export's id.")],
    description: Annotated[str, typer.Option(help="Up to 256 characters.")] = "",
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Freeze a finished export as a named dataset."""
    emit(api_client(url).create_dataset(name, export_id=export_id, description=description), as_json)


@datasets_app.command("list")
def datasets_list(
    flow: Annotated[str | None, typer.Option(help="Only this flow's datasets.")] = None,
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    emit(
        api_client(url).list_datasets(flow=flow),
        as_json,
        ["name", "flow", "format", "items", "annotations", "content_sha256", "created_at"],
    )


@datasets_app.command("describe")
def datasets_describe(name: str, url: UrlOption = None, as_json: JsonFlag = False) -> None:
    emit(api_client(url).get_dataset(name), as_json)


@datasets_app.command("download")
def datasets_download(name: str, dest: Path, url: UrlOption = None) -> None:
    """Save a dataset's zip (its recorded hash is checked first)."""
    size = api_client(url).download_dataset(name, dest)
    out.print(f"saved {dest} ({size:,} bytes)")


@metrics_app.command("show")
def metrics_show(
    flow: Annotated[str | None, typer.Option(help="Only this flow (default: every flow).")] = None,
    csv: Annotated[bool, typer.Option("--csv", help="Print CSV.")] = False,
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Kept, moved, relabelled, deleted and added boxes; precision, recall and AP@0.5."""
    client = api_client(url)
    if csv:
        out.print(client.model_metrics_csv(flow=flow), end="", highlight=False, markup=False)
        return
    report = client.model_metrics(flow=flow)
    if as_json:
        emit(report, True)
        return
    columns = ["key", "loops", "kept", "moved", "relabelled", "deleted", "added", "precision", "recall", "ap50"]
    out.print(f"[bold]{report.loops:,} loops[/bold] (latest {report.limit:,} at most)")
    for title, rows in (
        ("total", [report.total]),
        ("per class", report.per_class),
        ("per endpoint (model)", report.per_endpoint),
        ("per flow", report.per_flow),
        ("per week", report.per_week),
    ):
        out.print(f"\n[bold]{title}[/bold]")
        emit(rows, False, columns)
