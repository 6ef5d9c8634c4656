"""read_trec_qrels: whitespace-separated TREC qrels lines become a judgments table; bad lines name their line."""

from __future__ import annotations

from pathlib import Path

import pytest

from backbone.data import JUDGMENTS_SCHEMA, read_trec_qrels
from backbone.errors import DataError


def test_read_trec_qrels(tmp_path: Path) -> None:
    path = tmp_path / "qrels.txt"
    path.write_text("1 0 705 1\n\n1\t0\t49282  2\n", encoding="utf-8")
    table = read_trec_qrels(path, "dev")
    assert table.schema.equals(JUDGMENTS_SCHEMA)
    assert table.to_pylist() == [
        {"query_id": "1", "doc_id": "705", "grade": 1, "split": "dev"},
        {"query_id": "1", "doc_id": "49282", "grade": 2, "split": "dev"},
    ]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("1 0 705", r"qrels\.txt:2: expected 4 non-empty whitespace-separated fields, got 3"),
        ("1 0 705 yes", r"qrels\.txt:2: grade must be an integer, got 'yes'"),
    ],
)
def test_read_trec_qrels_bad_line(tmp_path: Path, line: str, expected: str) -> None:
    path = tmp_path / "qrels.txt"
    path.write_text(f"1 0 705 1\n{line}\n", encoding="utf-8")
    with pytest.raises(DataError, match=expected):
        read_trec_qrels(path, "dev")
