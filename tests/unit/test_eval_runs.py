"""TREC and Parquet run files: round trips in rank order, and errors that name the file and line or row."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from backbone.errors import BackboneError, DataError
from backbone.evaluation import read_parquet_run, read_trec_run, write_parquet_run, write_trec_run

RUN = {"q2": {"d3": 0.25, "d1": 1.5, "d2": 1.5}, "q1": {"705": 12.0625, "49282": -0.1}}


def test_trec_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "run.trec"
    write_trec_run(RUN, path, tag="bm25")
    assert path.read_text(encoding="utf-8") == (
        "q1 Q0 705 1 12.0625 bm25\n"
        "q1 Q0 49282 2 -0.1 bm25\n"
        "q2 Q0 d1 1 1.5 bm25\n"
        "q2 Q0 d2 2 1.5 bm25\n"
        "q2 Q0 d3 3 0.25 bm25\n"
    )
    assert read_trec_run(path) == RUN


def test_trec_reader_accepts_tabs_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "run.trec"
    path.write_text("q1\tQ0\td1\t1\t3\tx\n\nq1 0 d2 2 1e-3 x\n", encoding="utf-8")
    assert read_trec_run(path) == {"q1": {"d1": 3.0, "d2": 0.001}}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("q1 Q0 d9 2 0.5", "expected 6 non-empty whitespace-separated fields, got 5"),
        ("q1 Q0 d9 2 0.5 tag extra", "expected 6 whitespace-separated fields, got 7"),
        ("q1 Q0 d9 two 0.5 tag", "rank must be a positive integer, got 'two'"),
        ("q1 Q0 d9 0 0.5 tag", "rank must be a positive integer, got 0"),
        ("q1 Q0 d9 2 high tag", "score must be a number, got 'high'"),
        ("q1 Q0 d9 2 nan tag", "score must be finite"),
        ("q1 Q0 d1 2 0.5 tag", "document 'd1' is listed twice for query 'q1'"),
    ],
)
def test_trec_bad_line_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "run.trec"
    path.write_text(f"q1 Q0 d1 1 0.9 tag\n{line}\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"run\.trec:2: {message}"):
        read_trec_run(path)


@pytest.mark.parametrize(
    ("run", "tag", "message"),
    [
        ({"q 1": {"d1": 1.0}}, "t", "query id 'q 1'"),
        ({"q1": {"": 1.0}}, "t", "document id ''"),
        ({"q1": {"d1": 1.0}}, "my run", "tag 'my run'"),
    ],
)
def test_trec_writer_refuses_whitespace(tmp_path: Path, run: dict, tag: str, message: str) -> None:
    with pytest.raises(BackboneError, match=message):
        write_trec_run(run, tmp_path / "run.trec", tag=tag)


def test_parquet_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "run.parquet"
    write_parquet_run(RUN, path)
    table = pq.read_table(path)
    assert table.column_names == ["query_id", "doc_id", "rank", "score"]
    assert table.to_pylist()[:3] == [
        {"query_id": "q1", "doc_id": "705", "rank": 1, "score": 12.0625},
        {"query_id": "q1", "doc_id": "49282", "rank": 2, "score": -0.1},
        {"query_id": "q2", "doc_id": "d1", "rank": 1, "score": 1.5},
    ]
    assert read_parquet_run(path) == RUN
    write_parquet_run({}, path)
    assert read_parquet_run(path) == {}


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"query_id": ["q1"], "doc_id": ["d1"]}, "missing column"),
        ({"query_id": ["q1"], "doc_id": ["d1"], "rank": ["first"], "score": [1.0]}, "wrong type"),
        ({"query_id": ["q1", "q1"], "doc_id": ["d1", None], "rank": [1, 2], "score": [1.0, 0.5]}, "row 2: has a null"),
        ({"query_id": ["q1", "q1"], "doc_id": ["d1", "d1"], "rank": [1, 2], "score": [1.0, 0.5]}, "row 2: document"),
        ({"query_id": ["q1"], "doc_id": ["d1"], "rank": [0], "score": [1.0]}, "row 1: rank must be a positive"),
    ],
)
def test_parquet_bad_table_names_file_and_row(tmp_path: Path, columns: dict, message: str) -> None:
    path = tmp_path / "run.parquet"
    pq.write_table(pa.table(columns), path)
    with pytest.raises(DataError, match=rf"run\.parquet: .*{message}"):
        read_parquet_run(path)


def test_parquet_reader_refuses_other_files(tmp_path: Path) -> None:
    path = tmp_path / "run.parquet"
    with pytest.raises(DataError, match="file not found"):
        read_parquet_run(path)
    path.write_text("q1 Q0 d1 1 0.9 tag\n", encoding="utf-8")
    with pytest.raises(DataError, match="not a Parquet file"):
        read_parquet_run(path)
