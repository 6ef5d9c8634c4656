"""The errors backbone raises on purpose: each says what is wrong and where, and the CLI prints it as is."""

from __future__ import annotations


class BackboneError(Exception):
    """Base class of every error meant for a user: the CLI prints its message without a traceback."""


class DataError(BackboneError):
    """A dataset file is malformed or inconsistent.

    Args:
        path: the file that is wrong.
        message: what is wrong.
        line: 1-based line number in ``path``, when the problem has one.

    Example:
        >>> str(DataError("corpus.jsonl", "duplicate doc id '7'", line=12))
        "corpus.jsonl:12: duplicate doc id '7'"
    """

    def __init__(self, path: object, message: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class RecipeError(BackboneError):
    """A recipe file does not validate; the message names the file and every bad field."""


class RegistryError(BackboneError):
    """An artifact or release is missing, malformed, or cannot be published."""


class ChecksumError(RegistryError):
    """A stored file does not match the checksum recorded when it was published."""
