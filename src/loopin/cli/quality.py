"""Commands an admin runs against a server's API for trustworthy answers: ``gold`` (a flow's
gold items and gold settings) and ``quality`` (its workers' quality, un-pausing a worker)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from loopin.cli.output import JsonFlag, UrlOption, api_client, emit, json_object, out, read_arg
from loopin.errors import ValidationError

gold_app = typer.Typer(help="Gold items: inputs with known answers, served and scored.", no_args_is_help=True)
quality_app = typer.Typer(help="Workers' quality in a flow; un-pausing a paused worker.", no_args_is_help=True)
GROUPS = [(gold_app, "gold"), (quality_app, "quality")]

ITEM_COLUMNS = ["id", "note", "answered", "mean_score", "created_at"]
QUALITY_COLUMNS = [
    "email",
    "gold_scored",
    "gold_accuracy",
    "consolidated_loops",
    "agreement",
    "tasks",
    "seconds_per_task",
    "tasks_per_hour",
    "paused",
]


@gold_app.command("settings")
def gold_settings(
    flow: str,
    rate: Annotated[float | None, typer.Option(help="The share of a worker's tasks that are gold (0-1).")] = None,
    min_accuracy: Annotated[
        float | None, typer.Option(help="Pause a worker whose gold accuracy falls below this (0-1).")
    ] = None,
    no_pause: Annotated[bool, typer.Option("--no-pause", help="Never pause workers automatically.")] = False,
    min_scored: Annotated[int | None, typer.Option(help="Scored gold tasks before the limit applies.")] = None,
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Show the flow's gold settings, or change those given."""
    client = api_client(url)
    current = client.gold_settings(flow)
    if rate is None and min_accuracy is None and min_scored is None and not no_pause:
        emit(current, as_json)
        return
    emit(
        client.set_gold_settings(
            flow,
            rate=current.gold_rate if rate is None else rate,
            min_accuracy=None if no_pause else (current.gold_min_accuracy if min_accuracy is None else min_accuracy),
            min_scored=current.gold_min_scored if min_scored is None else min_scored,
        ),
        as_json,
    )


@gold_app.command("add")
def gold_add(
    flow: str,
    input: Annotated[str, typer.Option("--input", help="The InputContent (JSON, @file or - for stdin).")],
    answer: Annotated[str, typer.Option("--answer", help="The known answerContent (JSON or @file).")],
    note: Annotated[str, typer.Option(help="A note for admins.")] = "",
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Add one gold item."""
    item = api_client(url).add_gold_item(
        flow,
        input=json_object(read_arg(input), "input"),
        answer=json_object(read_arg(answer), "answer"),
        note=note,
    )
    emit(item, as_json, None if as_json else ITEM_COLUMNS)


@gold_app.command("upload")
def gold_upload(
    flow: str,
    file: Annotated[Path, typer.Argument(help='JSON Lines: {"input": ..., "answer": ..., "note": ...} per line.')],
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Add the gold items of a JSON Lines file, all or none."""
    items: list[Any] = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append(json.loads(line))
        except ValueError as exc:
            raise ValidationError(f"Line {number} of {file} is not JSON: {exc}") from exc
    added = api_client(url).add_gold_items(flow, items)
    if as_json:
        emit(added, True)
    else:
        out.print(f"added {len(added)} gold items to {flow}")


@gold_app.command("list")
def gold_list(flow: str, url: UrlOption = None, as_json: JsonFlag = False) -> None:
    """The flow's gold items, how many workers answered each and their mean score."""
    emit(api_client(url).list_gold_items(flow), as_json, None if as_json else ITEM_COLUMNS)


@gold_app.command("delete")
def gold_delete(flow: str, item_id: int, url: UrlOption = None) -> None:
    """Delete a gold item (the scores of those who answered it stay)."""
    api_client(url).delete_gold_item(flow, item_id)
    out.print(f"deleted gold item {item_id}")


@quality_app.command("show")
def quality_show(flow: str, url: UrlOption = None, as_json: JsonFlag = False) -> None:
    """Per worker: gold accuracy, agreement with consolidated answers, pace, pauses."""
    report = api_client(url).worker_quality(flow)
    if as_json:
        emit(report, True)
        return
    rows = [
        {**row.model_dump(mode="json"), "paused": row.paused.reason if row.paused else ""} for row in report.workers
    ]
    emit(rows, False, QUALITY_COLUMNS)


@quality_app.command("unpause")
def quality_unpause(flow: str, email: str, url: UrlOption = None) -> None:
    """Let a worker paused for low gold accuracy work on the flow again."""
    api_client(url).unpause_worker(flow, email)
    out.print(f"{email} may work on {flow} again")
