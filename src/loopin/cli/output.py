"""What every ``loopin`` command shares: the common options, printing a result as a table or
JSON, reaching the server, reading arguments."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from loopin.client import Client
from loopin.errors import ValidationError

T = TypeVar("T")

out = Console()
err = Console(stderr=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
UrlOption = Annotated[str | None, typer.Option("--url", envvar="LOOPIN_URL", help="Server URL.")]
ConfigOption = Annotated[Path | None, typer.Option("--config", envvar="LOOPIN_CONFIG", help="TOML config file.")]


def _dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value


def emit(value: Any, as_json: bool, columns: list[str] | None = None) -> None:
    data = _dump(value)
    if as_json:
        out.print_json(json.dumps(data))
        return
    rows = data if isinstance(data, list) else [data]
    if not rows:
        out.print("(none)")
        return
    if isinstance(data, dict) and columns is None:
        table = new_table(show_header=False, box=None)
        table.add_column(no_wrap=True)
        table.add_column(overflow="fold")
        for key, val in data.items():
            table.add_row(f"[bold]{key}[/bold]", _cell(val))
        print_table(table)
        return
    cols = columns or list(rows[0].keys())
    table = new_table(*cols)
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in cols))
    print_table(table)


def new_table(*headers: str, **options: Any) -> Table:
    """A table whose cells never lose characters: too long a value folds onto more lines in a
    terminal instead of ending in "…" (and is printed whole elsewhere, see ``print_table``)."""
    table = Table(**options)
    for header in headers:
        table.add_column(header, overflow="fold")
    return table


def print_table(table: Table) -> None:
    """In a terminal, at its width (long values fold); in a pipe or file, as wide as the
    values are, so identifiers, ARNs and URLs stay whole on one line for grep and copy."""
    if out.is_terminal:
        out.print(table)
    else:
        Console(file=out.file, width=100_000, no_color=out.no_color, highlight=False).print(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return (
            json.dumps(value)
            if not (isinstance(value, list) and all(isinstance(v, str) for v in value))
            else ", ".join(value)
        )
    return str(value)


def server_url(url: str | None) -> str:
    """--url, else LOOPIN_URL, else the URL the local settings say the server listens on."""
    if url:
        return url
    from loopin.config import Settings

    return Settings.load().resolved_public_url


def api_client(url: str | None) -> Client:
    return Client(server_url(url))


def read_arg(value: str) -> str:
    """``@path`` reads a file, ``-`` reads standard input, anything else is the value."""
    if value == "-":
        return sys.stdin.read()
    if value.startswith("@"):
        return Path(value[1:]).read_text()
    return value


def json_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValidationError(f"The {what} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ValidationError(f"The {what} must be a JSON object ({{...}}).")
    return value


def with_progress(items: list[T], label: str, fn: Callable[[T], Any]) -> list[Any]:
    results = []
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task(label, total=len(items))
        for item in items:
            results.append(fn(item))
            progress.advance(task)
    return results
