"""load_beir on small files: the layout, splits from TREC qrels files, and every error with its line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backbone.data import load_beir
from backbone.errors import DataError

HEADER = "query-id\tcorpus-id\tscore\n"


def jsonl(*records: dict) -> str:
    return "".join(json.dumps(record) + "\n" for record in records)


def write_beir(
    root: Path,
    *,
    corpus: str | None = None,
    queries: str | None = None,
    qrels: dict[str, str] | None = None,
) -> Path:
    """Write a tiny BEIR directory; each argument replaces the matching file's default content."""
    (root / "qrels").mkdir(parents=True)
    if corpus is None:
        corpus = jsonl(
            {"_id": "d1", "title": "First", "text": "one"},
            {"_id": "d2", "text": "two, without a title"},
            {"_id": 3, "title": "", "text": "three", "metadata": {"url": "x"}},
        )
    if queries is None:
        queries = jsonl({"_id": "q1", "text": "query one"}, {"_id": "q2", "text": "query two"})
    if qrels is None:
        qrels = {"test": HEADER + "q1\td1\t2\nq1\td2\t0\nq2\t3\t1\n", "train": HEADER + "q2\td1\t1\n"}
    (root / "corpus.jsonl").write_text(corpus, encoding="utf-8")
    (root / "queries.jsonl").write_text(queries, encoding="utf-8")
    for split, text in qrels.items():
        (root / "qrels" / f"{split}.tsv").write_text(text, encoding="utf-8")
    return root


def test_load(tmp_path: Path) -> None:
    dataset = load_beir(write_beir(tmp_path / "scifact"))

    assert dataset.splits() == ["test", "train"]
    assert dataset.relevant("test") == {"q1": {"d1": 2}, "q2": {"3": 1}}
    assert dataset.split_judgments("test").num_rows == 3
    assert dataset.corpus["title"].to_pylist() == ["First", "", ""]
    assert dataset.corpus["doc_id"].to_pylist() == ["d1", "d2", "3"]
    assert dataset.source["loader"] == "beir"
    assert dataset.source["name"] == "scifact"


def test_header_is_optional(tmp_path: Path) -> None:
    dataset = load_beir(write_beir(tmp_path, qrels={"dev": "q1\td1\t1\n"}))
    assert dataset.relevant("dev") == {"q1": {"d1": 1}}


def test_trec_qrels_add_and_replace_splits(tmp_path: Path) -> None:
    source = write_beir(tmp_path / "beir")
    (tmp_path / "hard.qrels").write_text("q1 0 d2 1\nq2 Q0 d2 3\n", encoding="utf-8")
    (tmp_path / "train.qrels").write_text("q1\t0\t3\t1\n", encoding="utf-8")

    dataset = load_beir(source, {"hard": tmp_path / "hard.qrels", "train": tmp_path / "train.qrels"})

    assert dataset.splits() == ["hard", "test", "train"]
    assert dataset.relevant("hard") == {"q1": {"d2": 1}, "q2": {"d2": 3}}
    assert dataset.relevant("train") == {"q1": {"3": 1}}  # replaced, not merged
    assert dataset.source["trec_qrels"]["hard"] == str((tmp_path / "hard.qrels").resolve())


def test_no_qrels(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"qrels: no qrels/<split>\.tsv files"):
        load_beir(write_beir(tmp_path, qrels={}))


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"corpus": '{"_id": "d1", "text": "one"}\n{"_id": "d2", "text": }\n'}, r"corpus\.jsonl:2: malformed JSON"),
        (
            {"corpus": jsonl({"_id": "d1", "text": "x"}, {"title": "t", "text": "y"})},
            r"corpus\.jsonl:2: missing field '_id'",
        ),
        (
            {"corpus": jsonl({"_id": "d1", "text": "x"}, {"_id": "d1", "text": "y"})},
            r"corpus\.jsonl:2: duplicate doc id 'd1'",
        ),
        ({"corpus": jsonl({"_id": "d1", "title": "t", "text": ""})}, r"corpus\.jsonl:1: doc 'd1' has empty text"),
        (
            {"queries": jsonl({"_id": "q1", "text": "a"}, {"_id": "q1", "text": "b"})},
            r"queries\.jsonl:2: duplicate query id 'q1'",
        ),
        (
            {"queries": jsonl({"_id": "q1", "text": ["a"]})},
            r"queries\.jsonl:1: field 'text' must be a string, got list",
        ),
        ({"qrels": {"test": HEADER + "q1\td1\n"}}, r"qrels/test\.tsv:2: expected 3 non-empty"),
        ({"qrels": {"test": HEADER + "q1\td1\t1.5\n"}}, r"qrels/test\.tsv:2: grade must be an integer, got '1\.5'"),
        (
            {"qrels": {"test": HEADER + "q1\td1\t1\nq7\td1\t1\n"}},
            r"qrels/test\.tsv:3: judgment names unknown query 'q7'",
        ),
        ({"qrels": {"test": HEADER + "q1\td9\t1\n"}}, r"qrels/test\.tsv:2: query 'q1' judges unknown doc 'd9'"),
        ({"qrels": {"test": HEADER + "q1\td1\t1\nq1\td1\t2\n"}}, r"qrels/test\.tsv:3: duplicate judgment"),
        ({"qrels": {"test": HEADER + "q1\td1\t0\n"}}, r"qrels/test\.tsv: split 'test' has no judged queries"),
    ],
)
def test_errors(tmp_path: Path, files: dict, expected: str) -> None:
    with pytest.raises(DataError, match=expected):
        load_beir(write_beir(tmp_path, **files))


def test_trec_qrels_errors_name_the_trec_file(tmp_path: Path) -> None:
    (tmp_path / "extra.qrels").write_text("q1 0 d1 1\nq1 0 nope 1\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"extra\.qrels:2: query 'q1' judges unknown doc 'nope'"):
        load_beir(write_beir(tmp_path / "beir"), {"extra": tmp_path / "extra.qrels"})
