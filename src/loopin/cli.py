"""The ``loopin`` command.

``serve``, ``db`` and ``keys`` act on the local server's data directory directly; every
other command is a client of a running server (``LOOPIN_URL``, ``LOOPIN_ACCESS_KEY_ID``,
``LOOPIN_SECRET_ACCESS_KEY``), so it works from any machine that can reach it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from loopin.client import Client, WorkerClient
from loopin.errors import LoopinError, ValidationError
from loopin.schemas import RoutingRule

T = TypeVar("T")

app = typer.Typer(help="loopin: human review of machine-learning predictions.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
keys_app = typer.Typer(help="Admin access keys (run on the server machine).", no_args_is_help=True)
admin_app = typer.Typer(help="Admin accounts for the admin console (run on the server machine).", no_args_is_help=True)
teams_app = typer.Typer(help="Work teams.", no_args_is_help=True)
workers_app = typer.Typer(help="Workers: invite, list, enable, disable, remove.", no_args_is_help=True)
templates_app = typer.Typer(help="Task UI templates (Liquid + crowd-* elements).", no_args_is_help=True)
flows_app = typer.Typer(help="Flow definitions.", no_args_is_help=True)
loops_app = typer.Typer(help="Human loops.", no_args_is_help=True)
tasks_app = typer.Typer(help="Work as a reviewer: take, answer, release or decline tasks.", no_args_is_help=True)
models_app = typer.Typer(
    help="Models: the built-in catalogue and your own ONNX or Python models.", no_args_is_help=True
)
webhooks_app = typer.Typer(help="Webhooks for loop status changes.", no_args_is_help=True)
deliveries_app = typer.Typer(help="Webhook deliveries: the dead-letter list and replay.", no_args_is_help=True)
endpoints_app = typer.Typer(
    help="Inference endpoints: deploy a model, invoke it, route doubts to people.", no_args_is_help=True
)
for sub, name in [
    (db_app, "db"),
    (keys_app, "keys"),
    (admin_app, "admin"),
    (teams_app, "teams"),
    (workers_app, "workers"),
    (templates_app, "templates"),
    (flows_app, "flows"),
    (loops_app, "loops"),
    (tasks_app, "tasks"),
    (models_app, "models"),
    (endpoints_app, "endpoints"),
    (webhooks_app, "webhooks"),
    (deliveries_app, "deliveries"),
]:
    app.add_typer(sub, name=name)

out = Console()
err = Console(stderr=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
UrlOption = Annotated[str | None, typer.Option("--url", envvar="LOOPIN_URL", help="Server URL.")]
ConfigOption = Annotated[Path | None, typer.Option("--config", envvar="LOOPIN_CONFIG", help="TOML config file.")]


def main() -> None:
    try:
        app()
    except LoopinError as exc:
        err.print(f"[red]error[/red] [bold]{exc.code}[/bold]: {exc.message}", highlight=False)
        sys.exit(1)
    except PydanticValidationError as exc:  # a bad setting in the environment or config file
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        err.print(f"[red]error[/red] invalid setting: {problems}", highlight=False)
        sys.exit(1)


# -- output helpers ------------------------------------------------------------------


def _dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value


def _emit(value: Any, as_json: bool, columns: list[str] | None = None) -> None:
    data = _dump(value)
    if as_json:
        out.print_json(json.dumps(data))
        return
    rows = data if isinstance(data, list) else [data]
    if not rows:
        out.print("(none)")
        return
    if isinstance(data, dict) and columns is None:
        table = Table(show_header=False, box=None)
        for key, val in data.items():
            table.add_row(f"[bold]{key}[/bold]", _cell(val))
        out.print(table)
        return
    cols = columns or list(rows[0].keys())
    table = Table(*cols)
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in cols))
    out.print(table)


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


def _server_url(url: str | None) -> str:
    """--url, else LOOPIN_URL, else the URL the local settings say the server listens on."""
    if url:
        return url
    from loopin.config import Settings

    return Settings.load().resolved_public_url


def _client(url: str | None) -> Client:
    return Client(_server_url(url))


def _read_arg(value: str) -> str:
    """``@path`` reads a file, ``-`` reads standard input, anything else is the value."""
    if value == "-":
        return sys.stdin.read()
    if value.startswith("@"):
        return Path(value[1:]).read_text()
    return value


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValidationError(f"The {what} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ValidationError(f"The {what} must be a JSON object ({{...}}).")
    return value


def _with_progress(items: list[T], label: str, fn: Callable[[T], Any]) -> list[Any]:
    results = []
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task(label, total=len(items))
        for item in items:
            results.append(fn(item))
            progress.advance(task)
    return results


# -- serve, db, keys -----------------------------------------------------------------


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    workers: Annotated[int, typer.Option(help="Server processes (they share the database).")] = 1,
    data_dir: Annotated[Path | None, typer.Option(help="Data directory.")] = None,
    demo: Annotated[bool, typer.Option(help="Set up the demo (detector, team, worker, flow, one task).")] = False,
) -> None:
    """Run the server (migrates the database first)."""
    import uvicorn

    from loopin.config import Settings
    from loopin.server import build_services

    overrides: dict[str, Any] = {"host": host, "port": port, "data_dir": data_dir}
    settings = Settings.load(config_file=config, **overrides).ensure_secret_key()
    ctx = build_services(settings)  # migrate once, before any worker process starts
    if demo:
        from loopin.demo import ensure_demo

        _print_demo(ensure_demo(ctx))
    setup_link = _setup_link(settings, ctx.db)
    if setup_link:
        err.print("\n[bold]No admin yet.[/bold] Create the first one with this one-time link:", highlight=False)
        sys.stderr.write(f"  {setup_link}\n\n")
    else:
        err.print(f"Admin console: {settings.resolved_public_url}/admin", highlight=False)
    ctx.db.dispose()
    for name, value in overrides.items():
        if value is not None:
            os.environ[f"LOOPIN_{name.upper()}"] = str(value)
    if config is not None:
        os.environ["LOOPIN_CONFIG"] = str(config)
    err.print(f"loopin serving on {settings.resolved_public_url} (API at /api/v1, data in {settings.data_dir})")
    uvicorn.run(
        "loopin.server:app_factory",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_level="warning",
        access_log=False,
    )


def _print_demo(info: Any) -> None:
    err.print(
        "\n[bold]loopin demo[/bold]: the built-in detector is deployed as endpoint "
        "[bold]demo-detector[/bold]; a photo went through its routing rule"
        + (f" and started human loop [bold]{info.loop_name}[/bold]." if info.loop_name else "."),
        highlight=False,
    )
    err.print(f"\n  Worker console:  {info.console_url}", highlight=False)
    err.print(f"  Sign in as:      {info.worker_email} / {info.worker_password}", highlight=False)
    err.print("\n  As an admin, in another shell:", highlight=False)
    sys.stderr.write(
        f"    export LOOPIN_ACCESS_KEY_ID={info.access_key_id} LOOPIN_SECRET_ACCESS_KEY={info.secret_access_key}\n"
        "    .venv/bin/loopin loops list\n"
        "    .venv/bin/loopin endpoints invoke demo-detector tests/data/coffee.jpg\n\n"
    )


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None) -> None:
    """Apply the database migrations."""
    from loopin.config import Settings
    from loopin.db import Database

    settings = Settings.load(config_file=config)
    Database(settings.resolved_database_url).upgrade()
    out.print("database is up to date")


@db_app.command("recount")
def db_recount(config: ConfigOption = None) -> None:
    """Rebuild the admin console's counts from the loops and the prediction log."""
    from loopin import loop_stats

    _, db = _local_db(config)
    with db.write() as session:
        loop_stats.recount(session)
    out.print("counts rebuilt")


def _local_db(config: Path | None) -> tuple[Any, Any]:
    from loopin.config import Settings
    from loopin.db import Database

    settings = Settings.load(config_file=config).ensure_secret_key()
    db = Database(settings.resolved_database_url, pool_size=1)
    db.upgrade()
    return settings, db


@keys_app.command("create")
def keys_create(
    description: Annotated[str, typer.Option(help="What the key is for.")] = "",
    config: ConfigOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Create an access key; the secret is shown this once."""
    from loopin.access_keys import create_key
    from loopin.clock import SystemClock

    settings, db = _local_db(config)
    with db.write() as session:
        key = create_key(
            session,
            secret_key=settings.secret_key,
            description=description,
            now_ms=SystemClock().now_ms(),
        )
    data = {
        "access_key_id": key.access_key_id,
        "secret_access_key": key.secret_access_key,
        "description": key.description,
    }
    if as_json:
        out.print_json(json.dumps(data))
        return
    _emit(data, False)
    err.print("Keep the secret now: it is not shown again. For the CLI and SDK:")
    # Plain write: Rich would wrap the line when stdout is not a terminal.
    sys.stdout.write(
        f"export LOOPIN_ACCESS_KEY_ID={key.access_key_id} LOOPIN_SECRET_ACCESS_KEY={key.secret_access_key}\n"
    )


@keys_app.command("list")
def keys_list(config: ConfigOption = None, as_json: JsonFlag = False) -> None:
    """List access keys (never their secrets)."""
    from loopin.access_keys import list_keys
    from loopin.clock import iso_ms

    _, db = _local_db(config)
    with db.read() as session:
        rows = [
            {
                "access_key_id": k.key_id,
                "description": k.description,
                "created_at": iso_ms(k.created_at),
                "revoked_at": iso_ms(k.revoked_at) if k.revoked_at else None,
            }
            for k in list_keys(session)
        ]
    _emit(rows, as_json, ["access_key_id", "description", "created_at", "revoked_at"])


@keys_app.command("revoke")
def keys_revoke(key_id: str, config: ConfigOption = None) -> None:
    """Revoke an access key at once."""
    from loopin.access_keys import revoke_key
    from loopin.clock import SystemClock

    _, db = _local_db(config)
    with db.write() as session:
        revoke_key(session, key_id, now_ms=SystemClock().now_ms())
    out.print(f"revoked {key_id}")


# -- admin accounts ------------------------------------------------------------------

PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input instead of asking.")
]


def _new_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password: str = typer.prompt("Password (at least 10 characters)", hide_input=True, confirmation_prompt=True)
    return password


@admin_app.command("create")
def admin_create(
    email: str,
    name: Annotated[str, typer.Option(help="The admin's name.")] = "",
    password_stdin: PasswordStdin = False,
    config: ConfigOption = None,
) -> None:
    """Create an admin account for the admin console."""
    from loopin import admins
    from loopin.clock import SystemClock

    password = _new_password(password_stdin)
    settings, db = _local_db(config)
    with db.write() as session:
        admin = admins.create_admin(session, email=email, name=name, password=password, now_ms=SystemClock().now_ms())
        email = admin.email
    out.print(f"created admin {email}; sign in at {settings.resolved_public_url}/admin")


@admin_app.command("list")
def admin_list(config: ConfigOption = None, as_json: JsonFlag = False) -> None:
    """List admin accounts."""
    from loopin import admins
    from loopin.clock import iso_ms

    _, db = _local_db(config)
    with db.read() as session:
        rows = [
            {
                "email": a.email,
                "name": a.name,
                "status": a.status,
                "created_at": iso_ms(a.created_at),
                "last_seen_at": iso_ms(a.last_seen_at) if a.last_seen_at else None,
            }
            for a in admins.list_admins(session)
        ]
    _emit(rows, as_json, ["email", "name", "status", "created_at", "last_seen_at"])


@admin_app.command("set-password")
def admin_set_password(email: str, password_stdin: PasswordStdin = False, config: ConfigOption = None) -> None:
    """Set an admin's password; their open sessions end."""
    from loopin import admins

    password = _new_password(password_stdin)
    _, db = _local_db(config)
    with db.write() as session:
        admins.set_password(session, email, password)
    out.print(f"password set for {email}")


@admin_app.command("disable")
def admin_disable(email: str, config: ConfigOption = None) -> None:
    """Disable an admin account (its sessions end at once)."""
    from loopin import admins

    _, db = _local_db(config)
    with db.write() as session:
        admins.set_status(session, email, "disabled")
    out.print(f"disabled {email}")


@admin_app.command("enable")
def admin_enable(email: str, config: ConfigOption = None) -> None:
    """Enable a disabled admin account."""
    from loopin import admins

    _, db = _local_db(config)
    with db.write() as session:
        admins.set_status(session, email, "active")
    out.print(f"enabled {email}")


@admin_app.command("setup-link")
def admin_setup_link(config: ConfigOption = None) -> None:
    """Print a one-time link to create the first admin (only while there is none)."""
    settings, db = _local_db(config)
    link = _setup_link(settings, db)
    if link is None:
        err.print("An admin exists already: sign in, or use `loopin admin create`.")
        raise typer.Exit(1)
    sys.stdout.write(link + "\n")


def _setup_link(settings: Any, db: Any) -> str | None:
    from loopin import admins
    from loopin.clock import SystemClock

    with db.write() as session:
        token = admins.issue_setup_link(session, now_ms=SystemClock().now_ms())
    return f"{settings.resolved_public_url}/admin/setup/{token}" if token else None


# -- teams and workers ---------------------------------------------------------------


@teams_app.command("create")
def teams_create(
    name: str,
    description: Annotated[str, typer.Option(help="1-200 characters.")],
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a work team."""
    _emit(_client(url).create_team(name, description=description), as_json)


@teams_app.command("list")
def teams_list(url: UrlOption = None, as_json: JsonFlag = False) -> None:
    _emit(_client(url).list_teams(), as_json, ["name", "description", "members", "created_at"])


@teams_app.command("describe")
def teams_describe(name: str, url: UrlOption = None, as_json: JsonFlag = False) -> None:
    _emit(_client(url).get_team(name), as_json)


@teams_app.command("update")
def teams_update(
    name: str,
    description: Annotated[str, typer.Option(help="1-200 characters.")],
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Change a team's description."""
    _emit(_client(url).update_team(name, description=description), as_json)


@teams_app.command("delete")
def teams_delete(name: str, url: UrlOption = None) -> None:
    _client(url).delete_team(name)
    out.print(f"deleted team {name}")


@teams_app.command("add-member")
def teams_add_member(team: str, email: str, url: UrlOption = None, as_json: JsonFlag = False) -> None:
    _emit(_client(url).add_team_member(team, email), as_json)


@teams_app.command("remove-member")
def teams_remove_member(team: str, email: str, url: UrlOption = None, as_json: JsonFlag = False) -> None:
    _emit(_client(url).remove_team_member(team, email), as_json)


def _emails(values: Iterable[str]) -> list[str]:
    return [e.strip() for v in values for e in v.split(",") if e.strip()]


@workers_app.command("invite")
def workers_invite(
    emails: Annotated[list[str], typer.Argument(help="E-mail addresses, space- or comma-separated (up to 50).")],
    team: Annotated[list[str] | None, typer.Option("--team", help="Team to join (repeatable).")] = None,
    name: Annotated[str, typer.Option(help="Display name (one address only).")] = "",
    password_stdin: Annotated[
        bool, typer.Option(help="Read a password from standard input instead of inviting.")
    ] = False,
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Add workers to teams; prints each one's invitation link to hand over."""
    addresses = _emails(emails)
    if not 1 <= len(addresses) <= 50:
        raise ValidationError("Give 1 to 50 e-mail addresses.")
    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    client = _client(url)
    results = _with_progress(
        addresses,
        "inviting",
        lambda e: client.create_worker(e, name=name, teams=team or [], password=password),
    )
    rows = [{"email": r.worker.email, "status": r.worker.status, "invitation_url": r.invitation_url} for r in results]
    _emit(rows if as_json else rows, as_json, ["email", "status", "invitation_url"])


@workers_app.command("list")
def workers_list(
    team: Annotated[str | None, typer.Option(help="Only this team.")] = None,
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    _emit(
        _client(url).list_workers(team=team),
        as_json,
        ["email", "name", "status", "teams", "last_seen_at"],
    )


@workers_app.command("describe")
def workers_describe(email: str, url: UrlOption = None, as_json: JsonFlag = False) -> None:
    _emit(_client(url).get_worker(email), as_json)


@workers_app.command("disable")
def workers_disable(email: str, url: UrlOption = None, as_json: JsonFlag = False) -> None:
    """Disable a worker; the tasks they hold go back to the pool."""
    _emit(_client(url).set_worker_status(email, "disabled"), as_json)


@workers_app.command("enable")
def workers_enable(email: str, url: UrlOption = None, as_json: JsonFlag = False) -> None:
    _emit(_client(url).set_worker_status(email, "active"), as_json)


@workers_app.command("reinvite")
def workers_reinvite(email: str, url: UrlOption = None, as_json: JsonFlag = False) -> None:
    """Issue a new invitation link (the old one stops working)."""
    _emit(_client(url).reinvite_worker(email), as_json)


@workers_app.command("remove")
def workers_remove(email: str, url: UrlOption = None) -> None:
    """Disable a worker and remove them from every team (their answers are kept)."""
    _client(url).remove_worker(email)
    out.print(f"removed {email}")


# -- templates and flows -------------------------------------------------------------


@templates_app.command("create")
def templates_create(
    name: str,
    file: Annotated[Path, typer.Option("--file", exists=True, dir_okay=False, help="The Liquid/HTML template.")],
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    ui = _client(url).create_task_ui(name, template=file.read_text())
    _emit(
        {"name": ui.name, "arn": ui.arn, "content_sha256": ui.content_sha256} if not as_json else ui,
        as_json,
    )


@templates_app.command("list")
def templates_list(url: UrlOption = None, as_json: JsonFlag = False) -> None:
    _emit(_client(url).list_task_uis(), as_json, ["name", "arn", "created_at"])


@templates_app.command("show")
def templates_show(name: str, url: UrlOption = None, as_json: JsonFlag = False) -> None:
    ui = _client(url).get_task_ui(name)
    if as_json:
        _emit(ui, True)
    else:
        sys.stdout.write(ui.template if ui.template.endswith("\n") else ui.template + "\n")


@templates_app.command("delete")
def templates_delete(name: str, url: UrlOption = None) -> None:
    _client(url).delete_task_ui(name)
    out.print(f"deleted template {name}")


@flows_app.command("create")
def flows_create(
    name: str,
    team: Annotated[str, typer.Option(help="The work team that answers.")],
    template: Annotated[str, typer.Option(help="The task UI's name.")],
    title: Annotated[str, typer.Option(help="Task title shown to workers.")],
    description: Annotated[str, typer.Option(help="Task description shown to workers.")],
    output: Annotated[str, typer.Option(help="Output location, s3://bucket/prefix.")],
    task_count: Annotated[int, typer.Option(help="Distinct workers per loop (1-3).")] = 1,
    keyword: Annotated[list[str] | None, typer.Option("--keyword", help="Keyword (repeatable, up to 5).")] = None,
    availability: Annotated[int, typer.Option(help="Seconds a task may wait for a worker.")] = 864_000,
    time_limit: Annotated[int, typer.Option(help="Seconds a worker has for a task.")] = 3_600,
    role_arn: Annotated[str | None, typer.Option(help="IAM role ARN (kept for A2I parity).")] = None,
    consolidation: Annotated[
        bool | None, typer.Option(help="Write a consolidated answer (default: on when task count > 1).")
    ] = None,
    consolidation_quorum: Annotated[
        int | None, typer.Option(help="Workers who must agree to keep a box or label (default: a majority).")
    ] = None,
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a flow definition."""
    flow = _client(url).create_flow(
        name,
        team=team,
        task_ui=template,
        title=title,
        description=description,
        output_path=output,
        task_count=task_count,
        keywords=keyword or [],
        availability_lifetime_seconds=availability,
        time_limit_seconds=time_limit,
        role_arn=role_arn,
        consolidation=consolidation,
        consolidation_quorum=consolidation_quorum,
    )
    _emit(flow, as_json)


@flows_app.command("update")
def flows_update(
    name: str,
    title: Annotated[str | None, typer.Option(help="Task title shown to workers.")] = None,
    description: Annotated[str | None, typer.Option(help="Task description shown to workers.")] = None,
    task_count: Annotated[int | None, typer.Option(help="Distinct workers per loop (1-3), for new loops.")] = None,
    keyword: Annotated[list[str] | None, typer.Option("--keyword", help="Keyword (repeatable); replaces all.")] = None,
    availability: Annotated[int | None, typer.Option(help="Seconds a task may wait, for new loops.")] = None,
    time_limit: Annotated[int | None, typer.Option(help="Seconds a worker has, for tasks taken from now.")] = None,
    consolidation: Annotated[
        bool | None, typer.Option(help="Write a consolidated answer, for outputs from now.")
    ] = None,
    consolidation_quorum: Annotated[int | None, typer.Option(help="Workers who must agree (1 to task count).")] = None,
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Change a flow definition (team, template and output location stay)."""
    flow = _client(url).update_flow(
        name,
        title=title,
        description=description,
        keywords=keyword,
        task_count=task_count,
        availability_lifetime_seconds=availability,
        time_limit_seconds=time_limit,
        consolidation=consolidation,
        consolidation_quorum=consolidation_quorum,
    )
    _emit(flow, as_json)


@flows_app.command("list")
def flows_list(url: UrlOption = None, as_json: JsonFlag = False) -> None:
    _emit(_client(url).list_flows(), as_json, ["name", "team", "task_ui", "task_count", "output_path"])


@flows_app.command("describe")
def flows_describe(name: str, url: UrlOption = None, as_json: JsonFlag = False) -> None:
    _emit(_client(url).get_flow(name), as_json)


@flows_app.command("delete")
def flows_delete(name: str, url: UrlOption = None) -> None:
    _client(url).delete_flow(name)
    out.print(f"deleted flow {name}")


# -- loops ---------------------------------------------------------------------------


@loops_app.command("start")
def loops_start(
    name: Annotated[str, typer.Argument(help="Loop name (1-63 letters, digits, hyphens).")],
    flow: Annotated[str, typer.Option(help="Flow definition.")],
    input: Annotated[str, typer.Option("--input", help="Input JSON object, @file, or - for stdin.")],
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Start one human loop."""
    _emit(_client(url).start_loop(name, flow=flow, input=_read_arg(input)), as_json)


@loops_app.command("start-batch")
def loops_start_batch(
    file: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, help="JSON Lines: one input object per line."),
    ],
    flow: Annotated[str, typer.Option(help="Flow definition.")],
    prefix: Annotated[str, typer.Option(help="Name prefix; a line may give its own 'loopName'.")] = "loop",
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Start one loop per line of a JSON Lines file (with a progress bar).

    A line without 'loopName' is named after a hash of its content, so running the same
    file again starts nothing twice."""
    inputs = [
        _json_object(line, f"line {i + 1}") for i, line in enumerate(file.read_text().splitlines()) if line.strip()
    ]
    client = _client(url)

    def start(item: dict[str, Any]) -> Any:
        canonical = json.dumps(item, sort_keys=True, separators=(",", ":"))
        name = item.pop("loopName", None) or f"{prefix}-{hashlib.sha256(canonical.encode()).hexdigest()[:24]}"
        return client.start_loop(name, flow=flow, input=item)

    started = _with_progress(inputs, "starting loops", start)
    if as_json:
        _emit(started, True)
    else:
        out.print(f"started {sum(1 for s in started if s.created)} loops ({len(started)} lines)")


@loops_app.command("describe")
def loops_describe(name: str, url: UrlOption = None, as_json: JsonFlag = False) -> None:
    _emit(_client(url).describe_loop(name), as_json)


@loops_app.command("list")
def loops_list(
    flow: Annotated[str | None, typer.Option(help="Only this flow definition.")] = None,
    status: Annotated[
        str | None, typer.Option(help="Only this status: InProgress, Completed, Failed, Stopping or Stopped.")
    ] = None,
    created_after: Annotated[str | None, typer.Option(help="ISO time, inclusive.")] = None,
    created_before: Annotated[str | None, typer.Option(help="ISO time, inclusive.")] = None,
    sort: Annotated[str, typer.Option(help="Ascending or Descending.")] = "Descending",
    limit: Annotated[int, typer.Option(help="At most this many loops (pages are fetched as needed).")] = 100,
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    loops = []
    for loop in _client(url).iter_loops(
        flow=flow,
        status=status,
        created_after=created_after,
        created_before=created_before,
        sort_order=sort,
        max_results=min(100, max(1, limit)),
    ):
        loops.append(loop)
        if len(loops) >= limit:
            break
    _emit(loops, as_json, ["name", "flow", "status", "created_at", "output_uri"])


@loops_app.command("stop")
def loops_stop(name: str, url: UrlOption = None, as_json: JsonFlag = False) -> None:
    _emit(_client(url).stop_loop(name), as_json)


@loops_app.command("delete")
def loops_delete(name: str, url: UrlOption = None) -> None:
    _client(url).delete_loop(name)
    out.print(f"deleted loop {name}")


@loops_app.command("wait")
def loops_wait(
    name: str,
    timeout: Annotated[float, typer.Option(help="Seconds to wait at most.")] = 3600,
    interval: Annotated[float, typer.Option(help="Seconds between checks.")] = 1.0,
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Wait until a loop is Completed, Failed or Stopped. Exit code 2 on timeout."""
    try:
        loop = _client(url).wait_for_loop(name, timeout=timeout, poll_interval=interval)
    except TimeoutError as exc:
        err.print(str(exc))
        raise typer.Exit(2) from exc
    _emit(loop, as_json)


# -- worker side ---------------------------------------------------------------------


def _worker(url: str | None) -> WorkerClient:
    base = _server_url(url)
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
    _emit(_worker(url).jobs(), as_json, ["flow", "title", "tasks_waiting"])


@tasks_app.command("next")
def tasks_next(
    flow: Annotated[str | None, typer.Option(help="Only this job (flow).")] = None,
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Take the next task (or show the one you hold). Exit code 3 when none waits."""
    task = _worker(url).next_task(flow)
    if task is None:
        err.print("no task is waiting")
        raise typer.Exit(3)
    _emit(task, as_json)


@tasks_app.command("submit")
def tasks_submit(
    task_id: int,
    answer: Annotated[str, typer.Option(help="Answer JSON object, @file, or - for stdin.")],
    url: UrlOption = None,
) -> None:
    """Submit your answer to a task you hold."""
    _worker(url).submit(task_id, _json_object(_read_arg(answer), "answer"))
    out.print(f"submitted task {task_id}")


@tasks_app.command("release")
def tasks_release(task_id: int, url: UrlOption = None) -> None:
    """Give a task back to the pool."""
    _worker(url).release(task_id)
    out.print(f"released task {task_id}")


@tasks_app.command("decline")
def tasks_decline(task_id: int, url: UrlOption = None) -> None:
    """Give a task back and never see that loop again."""
    _worker(url).decline(task_id)
    out.print(f"declined task {task_id}")


# -- models and endpoints ------------------------------------------------------------


@models_app.command("catalog")
def models_catalog(url: UrlOption = None, as_json: JsonFlag = False) -> None:
    """The built-in models, deployable by name."""
    _emit(_client(url).model_catalog(), as_json, ["name", "version", "licence", "input_size"])


@models_app.command("register")
def models_register(
    name: str,
    onnx: Annotated[str | None, typer.Option(help="file:///path or s3://bucket/key of an ONNX detector.")] = None,
    spec: Annotated[str | None, typer.Option(help="The ONNX model's spec: JSON, @file or -.")] = None,
    python: Annotated[str | None, typer.Option("--callable", help="A Python model, 'module:function'.")] = None,
    builtin: Annotated[str | None, typer.Option(help="A built-in model, under another name.")] = None,
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Register a model. An ONNX detector needs a spec: input_size, layout, channel_order,
    scale/mean/std, head (nanodet or yolov8) and class_names."""
    spec_value = _json_object(_read_arg(spec), "spec") if spec else None
    model = _client(url).register_model(name, builtin=builtin, onnx_uri=onnx, callable=python, spec=spec_value)
    _emit(model, as_json)


@models_app.command("list")
def models_list(url: UrlOption = None, as_json: JsonFlag = False) -> None:
    """Registered models (the built-in ones are in `loopin models catalog`)."""
    _emit(_client(url).list_models(), as_json, ["name", "kind", "builtin_name", "onnx_uri", "callable", "created_at"])


@models_app.command("delete")
def models_delete(name: str, url: UrlOption = None) -> None:
    _client(url).delete_model(name)
    out.print(f"deleted model {name}")


def _routing(
    flow: str | None,
    threshold: float | None,
    classes: list[str] | None,
    sample: float | None,
    min_score: float | None = None,
) -> Any:
    if flow is None:
        if threshold is not None or classes or sample is not None or min_score is not None:
            raise ValidationError("Routing options need --flow: the flow definition that reviews the images.")
        return None
    rule: dict[str, Any] = {"flow": flow, "classes": classes or None}
    if threshold is not None:
        rule["threshold"] = threshold
    if sample is not None:
        rule["sample_percent"] = sample
    if min_score is not None:
        rule["min_score"] = min_score
    try:
        return RoutingRule.model_validate(rule)
    except PydanticValidationError as exc:
        raise ValidationError("Invalid routing: " + "; ".join(e["msg"] for e in exc.errors())) from exc


FlowOption = Annotated[str | None, typer.Option(help="Flow definition that reviews doubtful images.")]
ThresholdOption = Annotated[float | None, typer.Option(help="Detections below it go to people (default 0.9).")]
ClassOption = Annotated[list[str] | None, typer.Option("--class", help="Only this class counts (repeatable).")]
SampleOption = Annotated[float | None, typer.Option(help="Percent of confident images sent for an audit.")]
MinScoreOption = Annotated[
    float | None, typer.Option(help="Detections below it are ignored as noise (default 0.2, below the threshold).")
]


@endpoints_app.command("create")
def endpoints_create(
    name: str,
    model: Annotated[str, typer.Option(help="A built-in or registered model.")],
    instances: Annotated[int, typer.Option(help="Inferences at once per server process.")] = 1,
    flow: FlowOption = None,
    threshold: ThresholdOption = None,
    classes: ClassOption = None,
    sample_percent: SampleOption = None,
    min_score: MinScoreOption = None,
    wait: Annotated[bool, typer.Option(help="Wait until the endpoint is InService.")] = True,
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Deploy a model as an endpoint (with an endpoint config named NAME-config)."""
    from loopin.schemas import VariantSpec

    client = _client(url)
    routing = _routing(flow, threshold, classes, sample_percent, min_score)
    client.create_endpoint_config(f"{name}-config", variants=[VariantSpec(model=model, instance_count=instances)])
    endpoint = client.create_endpoint(name, config=f"{name}-config", routing=routing)
    if wait:
        with err.status(f"deploying {name}"):
            endpoint = client.wait_for_endpoint(name)
    _emit(endpoint, as_json)
    if endpoint.status == "Failed":
        raise typer.Exit(1)


@endpoints_app.command("list")
def endpoints_list(url: UrlOption = None, as_json: JsonFlag = False) -> None:
    _emit(_client(url).list_endpoints(), as_json, ["name", "status", "config", "routing", "last_modified_at"])


@endpoints_app.command("describe")
def endpoints_describe(name: str, url: UrlOption = None, as_json: JsonFlag = False) -> None:
    _emit(_client(url).describe_endpoint(name), as_json)


@endpoints_app.command("update")
def endpoints_update(
    name: str,
    config: Annotated[str | None, typer.Option(help="Serve this endpoint config (loaded in the background).")] = None,
    flow: FlowOption = None,
    threshold: ThresholdOption = None,
    classes: ClassOption = None,
    sample_percent: SampleOption = None,
    min_score: MinScoreOption = None,
    no_routing: Annotated[bool, typer.Option(help="Stop routing to people.")] = False,
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Change an endpoint's config or its routing rule."""
    routing = _routing(flow, threshold, classes, sample_percent, min_score)
    _emit(_client(url).update_endpoint(name, config=config, routing=routing, clear_routing=no_routing), as_json)


@endpoints_app.command("delete")
def endpoints_delete(name: str, url: UrlOption = None) -> None:
    _client(url).delete_endpoint(name)
    out.print(f"deleted endpoint {name}")


@endpoints_app.command("invoke")
def endpoints_invoke(
    name: str,
    images: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, help="Image files.")],
    flow: FlowOption = None,
    threshold: ThresholdOption = None,
    classes: ClassOption = None,
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Detect objects on images; doubtful ones go to people when the endpoint (or --flow) routes.

    Each image is sent with an idempotency key made from its content and the routing
    options, so running the same command again starts no second review."""
    client = _client(url)

    def one(path: Path) -> Any:
        data = path.read_bytes()
        kind = {".png": "image/png", ".webp": "image/webp"}.get(path.suffix.lower(), "image/jpeg")
        options = json.dumps([flow, threshold, sorted(classes or [])]).encode()
        key = "cli-" + hashlib.sha256(data + b"\0" + options).hexdigest()
        result = client.invoke_endpoint(
            name, data, content_type=kind, flow=flow, threshold=threshold, classes=classes, idempotency_key=key
        )
        return path, result

    results = _with_progress(images, "invoking", one)
    if as_json:
        out.print_json(json.dumps([{"file": str(p), **r.model_dump(mode="json")} for p, r in results]))
        return
    table = Table("image", "detections", "best", "human loop")
    for path, result in results:
        best = max(result.detections, key=lambda d: d.score, default=None)
        table.add_row(
            str(path),
            str(len(result.detections)),
            f"{best.label} {best.score:.2f}" if best else "",
            result.human_loop["name"] if result.human_loop else "",
        )
    out.print(table)
    routed = sum(1 for _, r in results if r.human_loop)
    out.print(f"{routed} of {len(results)} images went to people")


# -- webhooks and deliveries ---------------------------------------------------------


@webhooks_app.command("create")
def webhooks_create(
    name: str,
    url_: Annotated[str, typer.Option("--to", help="The receiver's URL.")],
    flow: Annotated[str | None, typer.Option(help="Only this flow's events (default: every flow).")] = None,
    allow_private_network: Annotated[
        bool, typer.Option(help="Let it reach loopback or private addresses (off by default: SSRF guard).")
    ] = False,
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Send every loop status change to a URL, signed (Standard Webhooks). The secret is shown once."""
    _emit(_client(url).create_webhook(name, url=url_, flow=flow, allow_private_network=allow_private_network), as_json)


@webhooks_app.command("list")
def webhooks_list(url: UrlOption = None, as_json: JsonFlag = False) -> None:
    _emit(_client(url).list_webhooks(), as_json, ["name", "url", "flow", "allow_private_network", "created_at"])


@webhooks_app.command("delete")
def webhooks_delete(name: str, url: UrlOption = None) -> None:
    _client(url).delete_webhook(name)
    out.print(f"deleted webhook {name}")


@deliveries_app.command("list")
def deliveries_list(
    status: Annotated[str | None, typer.Option(help="pending, delivered or dead (the dead-letter list).")] = None,
    webhook: Annotated[str | None, typer.Option(help="Only this webhook.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 100,
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    rows = _client(url).list_deliveries(status=status, webhook=webhook, limit=limit)
    _emit(rows, as_json, ["id", "webhook", "loop", "loop_status", "status", "attempts", "last_error"])


@deliveries_app.command("replay")
def deliveries_replay(
    ids: Annotated[list[int], typer.Argument(help="Delivery ids.")], url: UrlOption = None, as_json: JsonFlag = False
) -> None:
    """Send dead-lettered deliveries again, with a fresh retry budget."""
    client = _client(url)
    _emit([client.replay_delivery(i) for i in ids], as_json, ["id", "webhook", "loop", "status"])


if __name__ == "__main__":
    main()
