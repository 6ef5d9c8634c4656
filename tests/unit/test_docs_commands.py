"""Every ``backbone`` command line in README.md and docs/ names a real command with real options and arguments.

The lines are parsed by the CLI itself (click's parser; nothing runs). Usage syntax in the docs is read as usage:
``[--opt X]`` is checked as written, ``a|b`` as ``a``, ``...`` dropped, a placeholder ``N`` or ``K`` read as a number.
What each command does is tested where the docs' tables say (docs/cluster.md); this test catches a renamed or removed
command or option, the drift a reader meets first.
"""

from __future__ import annotations

import re
import shlex

import pytest
import typer

from backbone.cli import app
from docs_blocks import shell_lines

_ENV = re.compile(r"^[A-Z_][A-Z0-9_]*=\S*$")
_NUMBERS = {"N": "1", "K": "1"}  # placeholders the docs use for a number


def _command_lines() -> list[tuple[str, str]]:
    """(file:line, command) of every ``backbone`` line inside a bash block."""
    found = []
    for line in shell_lines():
        words = line.command.split()
        while words and _ENV.match(words[0]):  # VAR=value backbone ...
            words = words[1:]
        if words[:1] == ["backbone"]:
            found.append((line.where, line.command))
    return found


def _as_written(line: str) -> list[str]:
    """The words after ``backbone``, usage syntax read as usage."""
    words = shlex.split(line, comments=True)
    while _ENV.match(words[0]):
        words = words[1:]
    written = [word.strip("[]").split("|")[0] for word in words[1:]]
    return [_NUMBERS.get(word, word) for word in written if word not in ("", "...")]


COMMANDS = _command_lines()


def test_the_docs_have_command_lines_to_check() -> None:
    assert len(COMMANDS) >= 30, COMMANDS


@pytest.mark.parametrize(("where", "line"), COMMANDS, ids=[where for where, _ in COMMANDS])
def test_a_documented_command_parses(where: str, line: str) -> None:
    # typer ships its own copy of click: its groups and errors are not click's, so nothing here names click types.
    command, args, path = typer.main.get_command(app), _as_written(line), ["backbone"]
    while hasattr(command, "commands"):  # a group: the next word names one of its commands
        name = args.pop(0) if args else ""
        assert name in command.commands, f"{where}: `{' '.join(path)}` has no command {name!r}: {line.strip()}"
        command, path = command.commands[name], [*path, name]
    try:
        command.make_context(" ".join(path), args)
    except Exception as err:  # the parser's usage errors: unknown option, missing argument, bad choice
        if not hasattr(err, "format_message"):
            raise
        pytest.fail(f"{where}: {line.strip()}\n  {err.format_message()}")
