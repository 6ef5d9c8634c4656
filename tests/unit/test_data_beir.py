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


# AILA-like: the corpus lacks statutes that the judgments name (lines 3, 4 and 6 of test, line 3 of train).
AILA_QRELS = {
    "test": HEADER + "q1\td1\t1\nq1\tS58\t1\nq2\tS58\t1\nq2\t3\t1\nq2\tS7\t0\n",
    "train": HEADER + "q2\td1\t1\nq2\tgone\t1\n",
}


def test_unknown_docs_fail_by_default_at_their_line(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"qrels/test\.tsv:3: query 'q1' judges unknown doc 'S58'$"):
        load_beir(write_beir(tmp_path, qrels=AILA_QRELS))


def test_drop_leaves_out_and_counts_judgments_of_unknown_docs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    dataset = load_beir(write_beir(tmp_path, qrels=AILA_QRELS), unknown_judgments="drop")

    assert dataset.relevant("test") == {"q1": {"d1": 1}, "q2": {"3": 1}}
    assert dataset.relevant("train") == {"q2": {"d1": 1}}
    assert dataset.judgments.num_rows == 3
    assert dataset.source["unknown_judgments"] == "drop"
    assert dataset.source["dropped_judgments"] == {"test": 3, "train": 1}
    assert "dropped 4 judgments of docs the corpus lacks (test 3, train 1)" in caplog.text
    assert "the first: " in caplog.text and "qrels/test.tsv:3: query 'q1' judges unknown doc 'S58'" in caplog.text


def test_the_default_records_no_drop_policy(tmp_path: Path) -> None:
    source = load_beir(write_beir(tmp_path)).source
    assert "unknown_judgments" not in source and "dropped_judgments" not in source


def test_a_split_whose_judgments_are_all_dropped_still_fails(tmp_path: Path) -> None:
    qrels = {"test": HEADER + "q1\tS1\t1\nq2\tS2\t2\nq2\td1\t0\n", "train": HEADER + "q2\td1\t1\n"}
    with pytest.raises(
        DataError,
        match=r"qrels/test\.tsv: split 'test' has no judged queries \(no judgment with grade > 0\) "
        r"after dropping 2 judgments of unknown docs$",
    ):
        load_beir(write_beir(tmp_path, qrels=qrels), unknown_judgments="drop")


def test_unknown_queries_fail_whatever_the_policy(tmp_path: Path) -> None:
    qrels = {"test": HEADER + "q1\td1\t1\nq7\tS1\t1\n"}
    with pytest.raises(DataError, match=r"qrels/test\.tsv:3: judgment names unknown query 'q7'"):
        load_beir(write_beir(tmp_path, qrels=qrels), unknown_judgments="drop")


def test_drop_covers_trec_qrels(tmp_path: Path) -> None:
    (tmp_path / "extra.qrels").write_text("q1 0 d1 1\nq1 0 nope 1\nq2 0 nope 1\n", encoding="utf-8")
    dataset = load_beir(write_beir(tmp_path / "beir"), {"extra": tmp_path / "extra.qrels"}, unknown_judgments="drop")
    assert dataset.relevant("extra") == {"q1": {"d1": 1}}
    assert dataset.source["dropped_judgments"] == {"extra": 2, "test": 0, "train": 0}


def test_bad_policy(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown_judgments must be 'error' or 'drop', got 'skip'"):
        load_beir(write_beir(tmp_path), unknown_judgments="skip")  # type: ignore[arg-type]
