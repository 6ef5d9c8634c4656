"""The line readers every loader shares: records come with their line, and every problem names file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from backbone.data.readers import (
    Where,
    iter_fields,
    iter_json_array,
    iter_jsonl,
    iter_lines,
    parse_grade,
    read_id,
    read_ids,
    read_text,
)
from backbone.errors import DataError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_lines_skip_blank_lines_but_keep_their_numbers(tmp_path: Path) -> None:
    path = write(tmp_path / "a.txt", "\ufefffirst\r\n\n  \nfourth\n")
    assert [(where.line, line) for where, line in iter_lines(path)] == [(1, "first"), (4, "fourth")]


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.jsonl: file not found"):
        list(iter_lines(tmp_path / "nope.jsonl"))


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(b"ok\n\xff\xfe broken\n")
    with pytest.raises(DataError, match=r"bad\.txt:2: not valid UTF-8"):
        list(iter_lines(path))


def test_jsonl_malformed_line(tmp_path: Path) -> None:
    path = write(tmp_path / "corpus.jsonl", '{"id": 1}\n{"id": 2,\n')
    with pytest.raises(DataError, match=r"corpus\.jsonl:2: malformed JSON"):
        list(iter_jsonl(path))


def test_jsonl_line_that_is_not_an_object(tmp_path: Path) -> None:
    path = write(tmp_path / "corpus.jsonl", '{"id": 1}\n[1, 2]\n')
    with pytest.raises(DataError, match=r"corpus\.jsonl:2: expected a JSON object, got list"):
        list(iter_jsonl(path))


def test_json_array_items_carry_their_line_and_index(tmp_path: Path) -> None:
    path = write(tmp_path / "queries.json", '[\n  {"a": 1},\n\n  {"a": 2}\n]\n')
    assert [(where.line, where.item, item) for where, item in iter_json_array(path)] == [
        (2, 0, {"a": 1}),
        (4, 1, {"a": 2}),
    ]


def test_json_array_empty(tmp_path: Path) -> None:
    assert list(iter_json_array(write(tmp_path / "q.json", " [ ] "))) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', r"q\.json:1: expected a JSON array"),
        ('[{"a": 1},\n {"a": }]', r"q\.json:2: item 1: malformed JSON"),
        ('[{"a": 1} {"a": 2}]', r"q\.json:1: malformed JSON: expected ',' or '\]'"),
        ('[{"a": 1}] x', r"q\.json:1: malformed JSON: extra data"),
        ('[{"a": 1}, 3]', r"q\.json:1: item 1: expected a JSON object, got int"),
    ],
)
def test_json_array_errors(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(DataError, match=expected):
        list(iter_json_array(write(tmp_path / "q.json", text)))


def test_fields_last_field_keeps_the_separator(tmp_path: Path) -> None:
    path = write(tmp_path / "dev.query.txt", "7\ta question\twith a tab\n")
    assert [fields for _, fields in iter_fields(path, 2)] == [["7", "a question\twith a tab"]]


def test_fields_whitespace_separated(tmp_path: Path) -> None:
    path = write(tmp_path / "qrels", "q1  0\td1 2 \n")
    assert [fields for _, fields in iter_fields(path, 4, sep=None)] == [["q1", "0", "d1", "2"]]


@pytest.mark.parametrize("line", ["only-one-field", "7\t", "\tno id"])
def test_fields_missing_or_empty(tmp_path: Path, line: str) -> None:
    path = write(tmp_path / "dev.query.txt", f"1\tfine\n{line}\n")
    with pytest.raises(DataError, match=r"dev\.query\.txt:2: expected 2 non-empty '\\t'-separated fields"):
        list(iter_fields(path, 2))


def test_ids_become_strings() -> None:
    where = Where(Path("corpus.jsonl"), 3)
    assert read_id({"id": 705}, "id", where) == "705"
    assert read_id({"id": " abc "}, "id", where) == "abc"
    assert read_ids({"match_id": [705, "x"]}, "match_id", where) == ["705", "x"]


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({}, r"corpus\.jsonl:3: missing field 'id'"),
        ({"id": 1.5}, r"corpus\.jsonl:3: field 'id' must be a string or an integer id, got float"),
        ({"id": True}, r"corpus\.jsonl:3: field 'id' must be a string or an integer id, got bool"),
        ({"id": "  "}, r"corpus\.jsonl:3: field 'id' is an empty id"),
    ],
)
def test_bad_ids(record: dict, expected: str) -> None:
    with pytest.raises(DataError, match=expected):
        read_id(record, "id", Where(Path("corpus.jsonl"), 3))


def test_bad_id_lists() -> None:
    where = Where(Path("queries.json"), 1, item=4)
    with pytest.raises(DataError, match=r"queries\.json:1: item 4: field 'match_id' must be a list of ids, got int"):
        read_ids({"match_id": 7}, "match_id", where)
    with pytest.raises(DataError, match=r"item 4: field 'match_id'\[1\] must be a string or an integer id"):
        read_ids({"match_id": [7, None]}, "match_id", where)


def test_text_fields() -> None:
    where = Where(Path("corpus.jsonl"), 2)
    assert read_text({"title": ""}, "title", where) == ""
    assert read_text({}, "title", where, required=False) == ""
    with pytest.raises(DataError, match=r"corpus\.jsonl:2: missing field 'text'"):
        read_text({}, "text", where)
    with pytest.raises(DataError, match=r"corpus\.jsonl:2: field 'text' must be a string, got int"):
        read_text({"text": 3}, "text", where)


def test_grades() -> None:
    where = Where(Path("qrels/test.tsv"), 5)
    assert parse_grade("-1", where) == -1
    with pytest.raises(DataError, match=r"qrels/test\.tsv:5: grade must be an integer, got 'high'"):
        parse_grade("high", where)
    with pytest.raises(DataError, match=r"qrels/test\.tsv:5: grade 4294967296 does not fit"):
        parse_grade(str(2**32), where)
