"""The ``loopin`` command, one module per audience: ``on_server`` (run on the server machine:
``serve``, ``db``, ``keys``, ``admin``), ``resources``, ``hosting`` and ``batch`` (an admin's commands
against a running server's API, from any machine) and ``reviewer`` (a worker's ``tasks`` commands)."""

from __future__ import annotations

import sys

import typer
from pydantic import ValidationError as PydanticValidationError

from loopin.cli import batch, exports, hosting, on_server, quality, resources, reviewer
from loopin.cli.output import err
from loopin.errors import LoopinError

app = typer.Typer(help="loopin: human review of machine-learning predictions.", no_args_is_help=True)
app.command()(on_server.serve)
GROUPS = on_server.GROUPS + resources.GROUPS + reviewer.GROUPS + hosting.GROUPS + exports.GROUPS + batch.GROUPS
for sub, name in GROUPS + quality.GROUPS:
    app.add_typer(sub, name=name)


# What ``pip install 'loopin[server]'`` adds; the light install has only the client.
SERVER_PACKAGES = {"fastapi", "uvicorn", "sqlalchemy", "alembic", "psycopg", "argon2", "onnxruntime", "liquid"}


def main() -> None:
    try:
        app()
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in SERVER_PACKAGES:
            raise
        err.print(
            "[red]error[/red] this command runs the server or acts on its data, which needs the "
            "server install: pip install 'loopin\\[server]'",
            highlight=False,
        )
        sys.exit(1)
    except LoopinError as exc:
        err.print(f"[red]error[/red] [bold]{exc.code}[/bold]: {exc.message}", highlight=False)
        sys.exit(1)
    except PydanticValidationError as exc:  # a bad setting in the environment or config file
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        err.print(f"[red]error[/red] invalid setting: {problems}", highlight=False)
        sys.exit(1)


__all__ = ["app", "main"]
