"""Every ``backbone`` command answers ``--help`` with a description of itself."""

from __future__ import annotations

import subprocess
import sys

import typer.main
from typer.testing import CliRunner

from backbone.cli import app
from backbone.selection import DEFAULT_METRICS


def _commands(command: object, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], object]]:
    # typer may ship its own click; walk groups by their `commands` mapping rather than by class
    found = [(path, command)]
    for name, sub in getattr(command, "commands", {}).items():
        found += _commands(sub, (*path, name))
    return found


def test_every_command_has_help() -> None:
    commands = _commands(typer.main.get_command(app))
    names = {" ".join(path) for path, _ in commands}
    assert {"data prepare stard", "data prepare beir", "data subset", "data build", "data show"} <= names
    assert {"recipe check", "registry list", "registry show", "release show", "release history"} <= names
    assert {"run", "train", "evaluate", "compare", "release promote", "deploy", "status", "rollback"} <= names
    runner = CliRunner()
    for path, command in commands:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.output
        assert (command.help or "").strip(), f"'backbone {' '.join(path)}' has no help text"


def test_the_cli_starts_without_loading_models_or_ray() -> None:
    # `backbone release show` and friends must answer in about a second, not after importing torch and Ray.
    heavy = "('torch', 'ray', 'transformers', 'faiss')"
    code = f"import sys, backbone.cli; print(sorted(m for m in {heavy} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"


def test_evaluate_defaults_to_the_librarys_metrics() -> None:
    command = typer.main.get_command(app).commands["evaluate"]
    [metrics] = [param for param in command.params if param.name == "metrics"]
    assert metrics.default == ",".join(DEFAULT_METRICS)
