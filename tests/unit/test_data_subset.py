"""build_subset: deterministic in the seed only, keeps every judged document, records what it did."""

from __future__ import annotations

from pathlib import Path

import pytest

from backbone.data import DatasetBuilder, RetrievalDataset, build_subset
from backbone.data.readers import Where
from backbone.errors import BackboneError


def make_dataset(order: int = 1) -> RetrievalDataset:
    """60 docs, 30 train and 10 dev queries judging 2 docs each; ``order=-1`` adds every record reversed."""
    builder = DatasetBuilder()
    where = Where(Path("made-up"), 1)
    for doc in range(60)[::order]:
        builder.add_doc(f"d{doc}", f"title {doc}", f"text {doc}", where)
    for query in range(40)[::order]:
        builder.add_query(f"q{query}", f"query {query}", where)
    builder.add_split("train", where)
    builder.add_split("dev", where)
    for query in range(40)[::order]:
        split = "train" if query < 30 else "dev"
        for doc in (query, (query * 7 + 3) % 60)[::order]:
            builder.add_judgment(split, f"q{query}", f"d{doc}", 1, where)
    return builder.build({"loader": "test", "name": "tiny"})


def ids(dataset: RetrievalDataset) -> tuple[list[str], list[str], list[tuple]]:
    judgments = dataset.judgments
    return (
        dataset.corpus["doc_id"].to_pylist(),
        dataset.queries["query_id"].to_pylist(),
        list(zip(*(judgments[name].to_pylist() for name in judgments.column_names), strict=True)),
    )


def test_sizes_and_coverage() -> None:
    full = make_dataset()
    small = build_subset(full, seed=13, queries={"train": 5, "dev": 3}, corpus_size=20)

    assert small.splits() == ["dev", "train"]
    assert len(small.query_ids("train")) == 5
    assert len(small.query_ids("dev")) == 3
    assert small.corpus.num_rows == 20
    assert small.queries.num_rows == 8
    corpus = set(small.corpus["doc_id"].to_pylist())
    for split in small.splits():
        full_relevant = full.relevant(split)
        for query_id, relevant in small.relevant(split).items():
            assert relevant == full_relevant[query_id]  # every judgment of a sampled query is kept
            assert set(relevant) <= corpus
    assert small.source["subset"] == {
        "parent": "tiny",
        "seed": 13,
        "queries": {"dev": 3, "train": 5},
        "sampled_queries": {"dev": 3, "train": 5},
        "corpus_size": 20,
        "corpus_docs": 20,
        "judged_docs": len(set(small.judgments["doc_id"].to_pylist())),
        "corpus_size_exceeded": False,
    }
    assert small.source["parent"] == full.source


def test_same_seed_same_subset_whatever_the_input_order() -> None:
    arguments = {"seed": 7, "queries": {"train": 10, "dev": 4}, "corpus_size": 30}
    first = build_subset(make_dataset(), **arguments)
    assert ids(build_subset(make_dataset(), **arguments)) == ids(first)
    assert ids(build_subset(make_dataset(order=-1), **arguments)) == ids(first)
    assert first.corpus.equals(build_subset(make_dataset(order=-1), **arguments).corpus)


def test_different_seed_different_subset() -> None:
    arguments = {"queries": {"train": 10, "dev": 4}, "corpus_size": 30}
    assert ids(build_subset(make_dataset(), seed=1, **arguments)) != ids(
        build_subset(make_dataset(), seed=2, **arguments)
    )


def test_adding_a_split_keeps_the_other_splits_sample() -> None:
    alone = build_subset(make_dataset(), seed=3, queries={"train": 6}, corpus_size=30)
    both = build_subset(make_dataset(), seed=3, queries={"train": 6, "dev": 2}, corpus_size=30)
    assert alone.query_ids("train") == both.query_ids("train")
    assert alone.splits() == ["train"]  # splits not named are left out


def test_small_split_is_kept_whole_and_judged_docs_beat_corpus_size() -> None:
    small = build_subset(make_dataset(), seed=13, queries={"dev": 100}, corpus_size=5)
    assert len(small.query_ids("dev")) == 10
    assert small.corpus.num_rows == small.source["subset"]["judged_docs"] > 5
    assert small.source["subset"]["corpus_size_exceeded"] is True


def test_corpus_size_larger_than_the_corpus() -> None:
    assert build_subset(make_dataset(), seed=13, queries={"dev": 1}, corpus_size=1000).corpus.num_rows == 60


@pytest.mark.parametrize(
    ("queries", "corpus_size", "expected"),
    [
        ({}, 10, "at least one split"),
        ({"test": 3}, 10, "no split 'test' to subset; have: dev, train"),
        ({"train": 0}, 10, "split 'train': need at least 1 query, got 0"),
        ({"train": 3}, 0, "corpus_size must be at least 1, got 0"),
    ],
)
def test_bad_arguments(queries: dict[str, int], corpus_size: int, expected: str) -> None:
    with pytest.raises(BackboneError, match=expected):
        build_subset(make_dataset(), seed=13, queries=queries, corpus_size=corpus_size)
