"""Project-level guarantees: the docs list every setting and command, the layers point one
way, the public API is deliberate, settings load as documented."""

from __future__ import annotations

import ast
import os
import stat
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


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("loopin"):
            found.add(node.module.split(".")[1] if "." in node.module else "")
            found.update(alias.name for alias in node.names if node.module == "loopin")
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("loopin."))
    return found - {""}


WEB = {
    "api",
    "api_auth",
    "api_hosting",
    "api_events",
    "server",
    "web_store",
    "web_pages",
    "cli",
    "console",
    "admin_console",
    "aws",
}
SDK = {"client", "schemas", "errors"}


def test_domain_and_storage_never_import_the_web_layer() -> None:
    for path in SRC.glob("*.py"):
        if path.stem in WEB or path.stem == "__init__":
            continue
        assert not (_imports(path) & WEB), f"{path.name} imports the web layer"


def test_sdk_imports_nothing_of_the_server() -> None:
    for name in SDK:
        assert _imports(SRC / f"{name}.py") <= SDK, name


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
