"""The shell lines of README.md and docs/ that the docs tests check: each line of a bash block, continuations joined."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_SHELL_FENCES = ("```bash", "```sh", "```shell")


@dataclass(frozen=True)
class ShellLine:
    """One command line of a bash block.

    Args:
        where: ``file:line`` of its first line, relative to the repository.
        command: the line, with any ``\\``-continued lines joined to it.
    """

    where: str
    command: str


def shell_lines() -> list[ShellLine]:
    """Every command line inside a bash block of README.md and docs/, in document order.

    Example:
        >>> [line.command for line in shell_lines() if line.command.startswith("curl ")][:1]  # doctest: +SKIP
        ['curl -s localhost:8000/v1/info']
    """
    found = []
    for doc in DOCS:
        in_block, lines = False, doc.read_text(encoding="utf-8").splitlines()
        number = 0
        while number < len(lines):
            line, number = lines[number], number + 1
            if line.startswith("```"):
                in_block = line.strip() in _SHELL_FENCES
                continue
            if not in_block:
                continue
            first = number
            while line.endswith("\\") and number < len(lines):  # continued on the next line
                line, number = line[:-1] + lines[number], number + 1
            found.append(ShellLine(f"{doc.relative_to(REPO)}:{first}", line))
    return found
