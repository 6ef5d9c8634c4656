"""Every ``backbone`` command answers ``--help`` with a description of itself."""

from __future__ import annotations

import typer.main
from typer.testing import CliRunner

from backbone.cli import app


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
