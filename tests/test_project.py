"""Project-level guarantees: the docs list every setting and command, the layers point one
way, the public API is deliberate, settings load as documented."""

from __future__ import annotations

import ast
import os
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import typer.main
from pydantic import ValidationError as PydanticValidationError

import loopin
from loopin.cli import app
from loopin.config import Settings

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "loopin"


def test_every_setting_is_documented() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    missing = [name for name in Settings.model_fields if f"LOOPIN_{name.upper()}" not in text]
    assert not missing


def _command_paths(group: typer.Typer, prefix: str) -> list[str]:
    paths = [f"{prefix} {c.name or c.callback.__name__.replace('_', '-')}" for c in group.registered_commands]
    for sub in group.registered_groups:
        paths += _command_paths(sub.typer_instance, f"{prefix} {sub.name}")
    return paths


def test_every_cli_command_is_documented() -> None:
    text = (ROOT / "docs" / "cli.md").read_text()
    paths = _command_paths(app, "loopin")
    assert len(paths) > 30
    assert [p for p in paths if p not in text] == []


# The layers of shared/DESIGN.md, lowest first. Each top-level module or subpackage of
# src/loopin is in exactly one; a unit may import its own layer and the layers below it.
LAYERS: dict[str, set[str]] = {
    "foundation": {"config", "errors", "schemas", "clock", "validation", "arns", "passwords", "signing", "outbound"},
    "storage": {"models", "db", "migrations", "store", "inference", "model_host"},
    "domain": {
        "workforce",
        "admins",
        "sign_in_limits",
        "access_keys",
        "task_templates",
        "rendering",
        "flows",
        "flow_cache",
        "loops",
        "adaptive",
        "deadlines",
        "tasks",
        "loop_stats",
        "endpoints",
        "invocations",
        "routing",
        "document_review",
        "moderation_review",
        "activation",
        "threshold",
        "events",
        "webhooks",
        "mailer",
        "outputs",
        "consolidation",
        "batch",
        "batch_ray",
        "background",
        "demo",
        "group_commit",
        "services",
        "exports",
        "datasets",
        "model_metrics",
        "gold",
        "gold_serving",
        "worker_quality",
    },
    "web": {"web"},
    "clients": {"cli", "client", "__init__"},
}
RANK = {unit: rank for rank, units in enumerate(LAYERS.values()) for unit in units}
SDK = {"client", "schemas", "errors"}
WEB_SURFACES = {"api", "consoles", "aws"}  # only web.server puts them together
DATA_DIRS = {"ui", "weights", "demo_data"}


def _loopin_imports(path: Path, *, runtime_only: bool = False) -> set[str]:
    """Dotted names under ``loopin`` that a file imports (``loopin.x.y`` -> ``x.y``);
    ``runtime_only`` leaves out the imports under ``if TYPE_CHECKING:``."""
    found = set()
    nodes: list[ast.AST] = [ast.parse(path.read_text())]
    while nodes:
        node = nodes.pop()
        if runtime_only and isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            nodes.extend(node.orelse)
            continue
        nodes.extend(ast.iter_child_nodes(node))
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "loopin":
            rest = node.module.removeprefix("loopin").lstrip(".")
            found.update([rest] if rest else [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            found.update(a.name.removeprefix("loopin.") for a in node.names if a.name.startswith("loopin."))
    return found


def _unit(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.stem if len(rel.parts) == 1 else rel.parts[0]


def _sources() -> list[Path]:
    return [p for p in SRC.rglob("*.py") if "versions" not in p.relative_to(SRC).parts[:-1]]


def test_every_module_and_subpackage_has_a_layer() -> None:
    units = {_unit(p) for p in _sources()}
    assert sorted(units - set(RANK)) == []
    assert sorted(set(RANK) - units) == []
    on_disk = {p.name for p in SRC.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}
    assert on_disk - units == DATA_DIRS


def test_layers_point_one_way() -> None:
    wrong = []
    for path in _sources():
        unit = _unit(path)
        for name in _loopin_imports(path):
            target = name.split(".")[0]
            if target in ("__version__",):
                continue
            if RANK[target] > RANK[unit]:
                wrong.append(f"{path.relative_to(SRC)} ({unit}) imports {name}")
    assert wrong == []


def test_top_level_units_have_no_import_cycles() -> None:
    graph: dict[str, set[str]] = {}
    for path in _sources():
        graph.setdefault(_unit(path), set()).update(
            n.split(".")[0] for n in _loopin_imports(path, runtime_only=True) if n.split(".")[0] in RANK
        )
    visiting: list[str] = []
    done: set[str] = set()

    def visit(unit: str) -> None:
        assert unit not in visiting, " -> ".join([*visiting[visiting.index(unit) :], unit])
        if unit in done:
            return
        visiting.append(unit)
        for dep in graph.get(unit, set()) - {unit}:
            visit(dep)
        visiting.pop()
        done.add(unit)

    for unit in graph:
        visit(unit)


def test_web_surfaces_do_not_import_one_another() -> None:
    wrong = []
    for path in (SRC / "web").rglob("*.py"):
        parts = path.relative_to(SRC / "web").parts
        own = parts[0] if len(parts) > 1 else None
        for name in _loopin_imports(path):
            bits = name.split(".")
            other_surface = len(bits) > 1 and bits[0] == "web" and bits[1] in WEB_SURFACES and bits[1] != own
            if own in WEB_SURFACES and other_surface:
                wrong.append(f"web/{'/'.join(parts)} imports {name}")
    assert wrong == []


def test_the_cli_and_the_sdk_never_import_the_server_packages() -> None:
    for path in (SRC / "cli").rglob("*.py"):
        assert not any(n.split(".")[0] == "web" for n in _loopin_imports(path)), path
    for name in SDK:
        assert {n.split(".")[0] for n in _loopin_imports(SRC / f"{name}.py")} <= SDK, name


def test_public_api() -> None:
    assert loopin.__all__ == ["Client", "LoopinError", "WorkerClient", "__version__"]
    for name in loopin.__all__:
        assert getattr(loopin, name)


def test_settings_precedence_file_env_override(tmp_path: Path) -> None:
    config = tmp_path / "loopin.toml"
    config.write_text('port = 9000\nregion = "eu-west-1"\naccount_id = "111111111111"\n')
    env = {"LOOPIN_CONFIG": str(config), "LOOPIN_REGION": "eu-central-1"}
    settings = Settings.load(environ=env, account_id="222222222222")
    assert (settings.port, settings.region, settings.account_id) == (9000, "eu-central-1", "222222222222")
    with pytest.raises(ValueError):
        Settings.load(environ={"LOOPIN_ACCOUNT_ID": "12"})


def test_secret_key_is_generated_once_with_owner_only_permissions(tmp_path: Path) -> None:
    first = Settings(data_dir=tmp_path).ensure_secret_key()
    second = Settings(data_dir=tmp_path).ensure_secret_key()
    assert first.secret_key == second.secret_key and len(first.secret_key) >= 48
    mode = stat.S_IMODE(os.stat(tmp_path / "secret_key").st_mode)
    assert mode == 0o600


def test_an_smtp_password_is_never_sent_in_clear_over_the_network() -> None:
    with pytest.raises(PydanticValidationError, match="unencrypted"):
        Settings(smtp_host="mail.example.com", smtp_security="none", smtp_username="u", smtp_password="p")
    Settings(smtp_host="127.0.0.1", smtp_security="none", smtp_username="u", smtp_password="p")  # a local relay
    Settings(smtp_host="mail.example.com", smtp_security="starttls", smtp_username="u", smtp_password="p")


_WITHOUT_SERVER = """
import importlib.abc, sys
BLOCKED = {blocked!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Block())
sys.argv = ["loopin", *{argv!r}]
{code}
"""
SERVER_ONLY = ["fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "psycopg", "onnxruntime", "numpy", "PIL"]


def _without_server(code: str, argv: list[str]) -> subprocess.CompletedProcess[str]:
    script = _WITHOUT_SERVER.format(blocked=SERVER_ONLY, argv=argv, code=code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)


def test_the_light_install_is_a_client_without_the_server_packages() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = " ".join(declared["dependencies"])
    assert not any(name in base for name in ("fastapi", "onnxruntime", "psycopg", "sqlalchemy"))
    sdk = _without_server("import loopin; loopin.Client('http://127.0.0.1:9'); loopin.WorkerClient", [])
    assert sdk.returncode == 0, sdk.stderr
    cli = _without_server("from loopin.cli import main; main()", ["teams", "list", "--help"])
    assert cli.returncode == 0 and "Usage" in cli.stdout, cli.stderr
    serve = _without_server("from loopin.cli import main; main()", ["serve"])
    assert serve.returncode == 1 and "pip install 'loopin[server]'" in serve.stderr, serve.stderr


def test_the_architecture_page_lists_every_module() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    missing = []
    for path in _sources():
        rel = path.relative_to(SRC)
        if path.name in ("__init__.py", "__main__.py") or "migrations" in rel.parts:
            continue
        if f"`{path.name}`" not in text and f"`{rel.as_posix()}`" not in text:
            missing.append(rel.as_posix())
    assert missing == []
    for unit in RANK:
        assert f"`{unit}`" in text or f"`{unit}/`" in text, unit
