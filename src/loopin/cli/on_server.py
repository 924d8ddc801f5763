"""Commands run on the server machine itself: they act on its data directory and database
directly (``serve``, ``db``, ``keys``, ``admin``)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from loopin.cli.output import (
    ConfigOption,
    JsonFlag,
    emit,
    err,
    out,
)

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
keys_app = typer.Typer(help="Admin access keys (run on the server machine).", no_args_is_help=True)
admin_app = typer.Typer(help="Admin accounts for the admin console (run on the server machine).", no_args_is_help=True)
GROUPS = [(db_app, "db"), (keys_app, "keys"), (admin_app, "admin")]


# -- serve, db, keys -----------------------------------------------------------------


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
    from loopin.services import build_services

    overrides: dict[str, Any] = {"host": host, "port": port, "data_dir": data_dir}
    settings = Settings.load(config_file=config, **overrides)
    _check_port_free(settings.host, settings.port)  # before anything is set up or printed
    settings = settings.ensure_secret_key()
    ctx = build_services(settings)  # migrate once, before any worker process starts
    if demo:
        from loopin.demo import ensure_demo

        _print_demo(ensure_demo(ctx), settings.resolved_public_url)
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
        "loopin.web.server:app_factory",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_level="warning",
        access_log=False,
    )


def _check_port_free(host: str, port: int) -> None:
    """Exit with a message that says how to choose another port, if ``host:port`` is taken."""
    import socket

    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError:
        return  # uvicorn reports an unknown host itself
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            err.print(
                f"Port {port} on {host} is taken ({exc.strerror or exc}; address already in use?): another "
                "server, perhaps an earlier `loopin serve`, listens there.\n"
                "Choose another port with --port, the LOOPIN_PORT setting (environment or config file), "
                "or `make run PORT=8322`.",
                highlight=False,
                markup=False,
            )
            raise typer.Exit(1) from None


def _print_demo(info: Any, url: str) -> None:
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
        f"    export LOOPIN_URL={url} LOOPIN_ACCESS_KEY_ID={info.access_key_id} "
        f"LOOPIN_SECRET_ACCESS_KEY={info.secret_access_key}\n"
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
    emit(data, False)
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
    emit(rows, as_json, ["access_key_id", "description", "created_at", "revoked_at"])


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
    emit(rows, as_json, ["email", "name", "status", "created_at", "last_seen_at"])


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
