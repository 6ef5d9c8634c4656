"""Training pairs: weak (title -> text) and labelled (query -> relevant text), and prepare_dataset's tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from backbone.data import (
    LABELLED_PAIRS_SCHEMA,
    WEAK_PAIRS_SCHEMA,
    DatasetBuilder,
    RetrievalDataset,
    labelled_pairs,
    prepare_dataset,
    read_table,
    weak_pairs,
)
from backbone.data.readers import Where
from backbone.errors import BackboneError


@pytest.fixture
def dataset() -> RetrievalDataset:
    builder = DatasetBuilder()
    where = Where(Path("made-up"), 1)
    builder.add_doc("d1", "民法典第一条", "第一条的内容", where)
    builder.add_doc("d2", "", "untitled text", where)
    builder.add_doc("d3", "  ", "blank title", where)
    builder.add_doc("d4", "刑法第二条", "第二条的内容", where)
    builder.add_query("q1", "问题一", where)
    builder.add_query("q2", "问题二", where)
    builder.add_split("train", where)
    builder.add_split("train-hard", where)
    builder.add_split("dev", where)
    builder.add_judgment("train", "q1", "d4", 2, where)
    builder.add_judgment("train", "q1", "d2", 0, where)
    builder.add_judgment("train", "q2", "d1", 1, where)
    builder.add_judgment("train-hard", "q2", "d3", 1, where)
    builder.add_judgment("dev", "q2", "d4", 1, where)
    return builder.build({"loader": "test", "name": "tiny"})


def test_weak_pairs_take_titled_documents_only(dataset: RetrievalDataset) -> None:
    pairs = weak_pairs(dataset)
    assert pairs.schema.equals(WEAK_PAIRS_SCHEMA)
    assert pairs.to_pylist() == [
        {"anchor": "民法典第一条", "positive": "第一条的内容", "doc_id": "d1"},
        {"anchor": "刑法第二条", "positive": "第二条的内容", "doc_id": "d4"},
    ]


def test_labelled_pairs_keep_relevant_judgments_of_the_split(dataset: RetrievalDataset) -> None:
    pairs = labelled_pairs(dataset)
    assert pairs.schema.equals(LABELLED_PAIRS_SCHEMA)
    assert pairs.to_pylist() == [
        {"query_id": "q1", "doc_id": "d4", "anchor": "问题一", "positive": "第二条的内容", "grade": 2},
        {"query_id": "q2", "doc_id": "d1", "anchor": "问题二", "positive": "第一条的内容", "grade": 1},
    ]
    assert labelled_pairs(dataset, "dev")["doc_id"].to_pylist() == ["d4"]


def test_labelled_pairs_of_an_unknown_split(dataset: RetrievalDataset) -> None:
    with pytest.raises(BackboneError, match="dataset has no split 'test'"):
        labelled_pairs(dataset, "test")


def test_prepare_writes_pairs_of_training_splits_only(tmp_path: Path, dataset: RetrievalDataset) -> None:
    manifest = prepare_dataset(dataset, tmp_path / "tiny", name="tiny")
    assert manifest.counts.tables == {"pairs/weak": 2, "pairs/train": 2, "pairs/train-hard": 1}
    assert read_table(tmp_path / "tiny", "pairs/weak").equals(weak_pairs(dataset))
    assert read_table(tmp_path / "tiny", "pairs/train").equals(labelled_pairs(dataset, "train"))


def test_prepare_with_named_training_splits(tmp_path: Path, dataset: RetrievalDataset) -> None:
    manifest = prepare_dataset(dataset, tmp_path / "tiny", name="tiny", train_splits=["dev"])
    assert sorted(manifest.counts.tables) == ["pairs/dev", "pairs/weak"]
