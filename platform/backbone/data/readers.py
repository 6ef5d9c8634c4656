"""Read dataset files record by record, so that every problem is reported with its file and line.

Every loader reads through these helpers; none opens a data file itself. Each record comes with a
:class:`Where` that turns a problem found later (a duplicate id, an unknown document) into a
:class:`~backbone.errors.DataError` pointing at the line that caused it.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backbone.errors import DataError


@dataclass(frozen=True)
class Where:
    """A place in a data file: the file, the 1-based line when there is one, and the item of a JSON array.

    Args:
        path: the file.
        line: 1-based line number, or ``None`` for a problem with the whole file.
        item: 0-based index in a JSON array; a one-line array file needs it to point anywhere useful.

    Example:
        >>> str(Where(Path("corpus.jsonl"), 3).error("empty text"))
        'corpus.jsonl:3: empty text'
    """

    path: Path
    line: int | None = None
    item: int | None = None

    def __str__(self) -> str:
        place = str(self.path) if self.line is None else f"{self.path}:{self.line}"
        return place if self.item is None else f"{place} item {self.item}"

    def error(self, message: str) -> DataError:
        """The error to raise for ``message`` at this place."""
        prefix = "" if self.item is None else f"item {self.item}: "
        return DataError(self.path, prefix + message, line=self.line)


def iter_lines(path: Path) -> Iterator[tuple[Where, str]]:
    """Yield each non-blank line of a UTF-8 text file without its line ending.

    Blank lines are skipped (trailing newlines are common and carry nothing), but still counted, so the
    line numbers match what an editor shows.

    Args:
        path: the file to read.

    Example:
        >>> for where, line in iter_lines(Path("example/train.query.txt")):  # doctest: +SKIP
        ...     qid, text = line.split("\\t", 1)
    """
    for where, line in _all_lines(path):
        if line.strip():
            yield where, line


def iter_jsonl(path: Path) -> Iterator[tuple[Where, dict[str, Any]]]:
    """Yield each line of a JSON-lines file as a JSON object.

    Args:
        path: the ``.jsonl`` file.

    Example:
        >>> for where, record in iter_jsonl(Path("corpus.jsonl")):  # doctest: +SKIP
        ...     doc_id = read_id(record, "id", where)
    """
    for where, line in iter_lines(path):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise where.error(f"malformed JSON: {err.msg} (column {err.colno})") from None
        yield where, _require_object(record, where)


def iter_json_array(path: Path) -> Iterator[tuple[Where, dict[str, Any]]]:
    """Yield the objects of a file holding one JSON array, each with the line it starts on.

    Decoding element by element keeps the line of each object, which ``json.load`` would lose.

    Args:
        path: the ``.json`` file, e.g. STARD's ``queries.json``.

    Example:
        >>> for where, item in iter_json_array(Path("queries.json")):  # doctest: +SKIP
        ...     query_id = read_id(item, "query_id", where)
    """
    text = "\n".join(line for _, line in _all_lines(path))
    decoder = json.JSONDecoder()

    # Positions only grow, so newlines are counted incrementally: recounting from 0 is quadratic.
    counted = {"position": 0, "line": 1}

    def where_at(position: int, item: int | None = None) -> Where:
        counted["line"] += text.count("\n", counted["position"], position)
        counted["position"] = position
        return Where(path, counted["line"], item)

    def skip_space(position: int) -> int:
        while position < len(text) and text[position].isspace():
            position += 1
        return position

    position = skip_space(0)
    if not text.startswith("[", position):
        raise where_at(position).error("expected a JSON array of objects")
    position = skip_space(position + 1)
    if text.startswith("]", position):
        return
    for index in itertools.count():
        try:
            item, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError as err:
            where = Where(path, err.lineno, index)
            raise where.error(f"malformed JSON: {err.msg} (column {err.colno})") from None
        where = where_at(position, index)
        yield where, _require_object(item, where)
        position = skip_space(end)
        if text.startswith("]", position):
            break
        if not text.startswith(",", position):
            raise where_at(position).error("malformed JSON: expected ',' or ']' after an array item")
        position = skip_space(position + 1)
    if skip_space(position + 1) != len(text):
        raise where_at(position + 1).error("malformed JSON: extra data after the array")


def iter_fields(path: Path, count: int, *, sep: str | None = "\t") -> Iterator[tuple[Where, list[str]]]:
    """Yield each line of a delimited file split into exactly ``count`` fields.

    The last field takes the rest of the line, so a query text may itself contain the separator.

    Args:
        path: the ``.tsv`` / ``.txt`` file.
        count: fields per line.
        sep: the separator; ``None`` splits on runs of whitespace (TREC files).

    Example:
        >>> for where, (qid, text) in iter_fields(Path("dev.query.txt"), 2):  # doctest: +SKIP
        ...     print(qid, text)
    """
    separator = "whitespace-separated" if sep is None else f"{sep!r}-separated"
    for where, line in iter_lines(path):
        fields = [field.strip() for field in line.split(sep, count - 1)]
        if len(fields) != count or not all(fields):
            raise where.error(f"expected {count} non-empty {separator} fields, got {len(fields)}: {line[:80]!r}")
        yield where, fields


def read_id(record: dict[str, Any], field: str, where: Where) -> str:
    """Return the id in ``record[field]`` as a string; integer ids (STARD's ``705``) become ``"705"``.

    Args:
        record: a decoded JSON object.
        field: the id's key.
        where: the record's place, for the error.

    Example:
        >>> read_id({"id": 705}, "id", Where(Path("corpus.jsonl"), 1))
        '705'
    """
    return _as_id(_require_field(record, field, where), f"field {field!r}", where)


def read_ids(record: dict[str, Any], field: str, where: Where) -> list[str]:
    """Return the list of ids in ``record[field]``, each as a string (see :func:`read_id`).

    Args:
        record: a decoded JSON object.
        field: the key of the list.
        where: the record's place, for the error.

    Example:
        >>> read_ids({"match_id": [705, 49282]}, "match_id", Where(Path("queries.json"), 1))
        ['705', '49282']
    """
    values = _require_field(record, field, where)
    if not isinstance(values, list):
        raise where.error(f"field {field!r} must be a list of ids, got {type(values).__name__}")
    return [_as_id(value, f"field {field!r}[{index}]", where) for index, value in enumerate(values)]


def read_text(record: dict[str, Any], field: str, where: Where, *, required: bool = True) -> str:
    """Return the string in ``record[field]``; ``required=False`` treats a missing field as ``""``.

    Args:
        record: a decoded JSON object.
        field: the key.
        where: the record's place, for the error.
        required: whether a missing field is an error.

    Example:
        >>> read_text({"title": ""}, "title", Where(Path("corpus.jsonl"), 1))
        ''
    """
    if not required and field not in record:
        return ""
    value = _require_field(record, field, where)
    if not isinstance(value, str):
        raise where.error(f"field {field!r} must be a string, got {type(value).__name__}")
    return value


def parse_grade(value: str, where: Where) -> int:
    """Parse a relevance grade written as text (qrels files).

    Args:
        value: the grade's text, e.g. ``"1"``.
        where: its place, for the error.

    Example:
        >>> parse_grade("2", Where(Path("qrels/test.tsv"), 2))
        2
    """
    try:
        grade = int(value)
    except ValueError:
        raise where.error(f"grade must be an integer, got {value!r}") from None
    if not -(2**31) <= grade < 2**31:
        raise where.error(f"grade {grade} does not fit a 32-bit integer")
    return grade


def _all_lines(path: Path) -> Iterator[tuple[Where, str]]:
    if not path.is_file():
        raise DataError(path, "file not found")
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            where = Where(path, number)
            try:
                # utf-8-sig: files saved by some editors start with a byte-order mark, which is not data.
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as err:
                raise where.error(f"not valid UTF-8 ({err.reason} at byte {err.start})") from None
            yield where, line.rstrip("\r\n")


def _as_id(value: Any, what: str, where: Where) -> str:
    # bool is an int subclass, but `true` is never a meaningful id.
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise where.error(f"{what} must be a string or an integer id, got {type(value).__name__}")
    identifier = str(value).strip()
    if not identifier:
        raise where.error(f"{what} is an empty id")
    return identifier


def _require_field(record: dict[str, Any], field: str, where: Where) -> Any:
    if field not in record:
        raise where.error(f"missing field {field!r}")
    return record[field]


def _require_object(value: Any, where: Where) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise where.error(f"expected a JSON object, got {type(value).__name__}")
    return value
