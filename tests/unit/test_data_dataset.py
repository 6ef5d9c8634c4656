"""RetrievalDataset's accessors and the DatasetBuilder checks every loader relies on."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from backbone.data import CORPUS_SCHEMA, DatasetBuilder, RetrievalDataset
from backbone.data.readers import Where
from backbone.errors import BackboneError, DataError

CORPUS = Path("corpus.jsonl")
QUERIES = Path("queries.jsonl")
QRELS = Path("qrels/dev.tsv")


def builder_with_basics() -> DatasetBuilder:
    builder = DatasetBuilder()
    builder.add_doc("d1", "Title 1", "text one", Where(CORPUS, 1))
    builder.add_doc("d2", "", "text two", Where(CORPUS, 2))
    builder.add_query("q1", "query one", Where(QUERIES, 1))
    builder.add_query("q2", "query two", Where(QUERIES, 2))
    builder.add_split("dev", Where(QRELS))
    return builder


def test_accessors() -> None:
    builder = builder_with_basics()
    builder.add_split("train", Where(Path("qrels/train.tsv")))
    builder.add_judgment("dev", "q1", "d1", 2, Where(QRELS, 2))
    builder.add_judgment("dev", "q1", "d2", 0, Where(QRELS, 3))
    builder.add_judgment("dev", "q2", "d2", 0, Where(QRELS, 4))
    builder.add_judgment("train", "q2", "d1", 1, Where(Path("qrels/train.tsv"), 2))
    dataset = builder.build({"loader": "test"})

    assert dataset.splits() == ["dev", "train"]
    assert dataset.query_ids("dev") == ["q1", "q2"]
    assert dataset.relevant("dev") == {"q1": {"d1": 2}}  # grade 0 is judged, not relevant
    assert dataset.relevant("train") == {"q2": {"d1": 1}}
    assert dataset.split_judgments("dev").num_rows == 3
    assert dataset.corpus.to_pylist()[1] == {"doc_id": "d2", "title": "", "text": "text two"}
    assert dataset.source == {"loader": "test"}
    with pytest.raises(BackboneError, match="dataset has no split 'test'; it has: dev, train"):
        dataset.query_ids("test")


def test_constructor_checks_schemas() -> None:
    corpus = pa.table({"doc_id": [1], "title": [""], "text": ["x"]})  # integer ids: not the schema
    with pytest.raises(ValueError, match="corpus table has schema"):
        RetrievalDataset(corpus=corpus, queries=pa.table({}), judgments=pa.table({}))
    assert CORPUS_SCHEMA.field("doc_id").type == pa.string()


def test_duplicate_doc_names_both_lines() -> None:
    builder = builder_with_basics()
    with pytest.raises(DataError, match=r"corpus\.jsonl:9: duplicate doc id 'd1' \(first at corpus\.jsonl:1\)"):
        builder.add_doc("d1", "", "again", Where(CORPUS, 9))


def test_duplicate_query() -> None:
    builder = builder_with_basics()
    with pytest.raises(DataError, match=r"queries\.jsonl:5: duplicate query id 'q2' \(first at queries\.jsonl:2\)"):
        builder.add_query("q2", "again", Where(QUERIES, 5))


@pytest.mark.parametrize("text", ["", " \n\t"])
def test_empty_texts(text: str) -> None:
    builder = builder_with_basics()
    with pytest.raises(DataError, match=r"corpus\.jsonl:7: doc 'd7' has empty text"):
        builder.add_doc("d7", "a title", text, Where(CORPUS, 7))
    with pytest.raises(DataError, match=r"queries\.jsonl:7: query 'q7' has empty text"):
        builder.add_query("q7", text, Where(QUERIES, 7))


def test_split_names_and_duplicates() -> None:
    builder = builder_with_basics()
    with pytest.raises(DataError, match=r"x/../y\.tsv: bad split name '\.\./y'"):
        builder.add_split("../y", Where(Path("x/../y.tsv")))
    with pytest.raises(DataError, match=r"other\.tsv: split 'dev' is also defined by qrels/dev\.tsv"):
        builder.add_split("dev", Where(Path("other.tsv")))


def test_duplicate_judgment() -> None:
    builder = builder_with_basics()
    builder.add_judgment("dev", "q1", "d1", 1, Where(QRELS, 2))
    with pytest.raises(DataError, match=r"qrels/dev\.tsv:6: duplicate judgment of query 'q1' and doc 'd1'"):
        builder.add_judgment("dev", "q1", "d1", 1, Where(QRELS, 6))


@pytest.mark.parametrize(
    ("query_id", "doc_id", "expected"),
    [
        ("q9", "d1", r"qrels/dev\.tsv:3: judgment names unknown query 'q9'"),
        ("q1", "d9", r"qrels/dev\.tsv:3: query 'q1' judges unknown doc 'd9'"),
    ],
)
def test_judgment_of_unknown_query_or_doc(query_id: str, doc_id: str, expected: str) -> None:
    builder = builder_with_basics()
    builder.add_judgment("dev", "q1", "d1", 1, Where(QRELS, 2))
    builder.add_judgment("dev", query_id, doc_id, 1, Where(QRELS, 3))
    with pytest.raises(DataError, match=expected):
        builder.build({})


def test_judgment_of_undeclared_split() -> None:
    builder = builder_with_basics()
    builder.add_judgment("dev", "q1", "d1", 1, Where(QRELS, 2))
    builder.add_judgment("test", "q1", "d1", 1, Where(Path("t.tsv"), 4))
    with pytest.raises(DataError, match=r"t\.tsv:4: judgment of undeclared split 'test'"):
        builder.build({})


def test_split_without_judged_queries() -> None:
    builder = builder_with_basics()
    builder.add_judgment("dev", "q1", "d1", 0, Where(QRELS, 2))  # judged, but nothing relevant
    with pytest.raises(DataError, match=r"^qrels/dev\.tsv: split 'dev' has no judged queries"):
        builder.build({})
