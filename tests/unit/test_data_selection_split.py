"""carve_selection and the recipe dataset that carries one: deterministic, disjoint, recorded, refused when wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_data_subset import ids, make_dataset

from backbone.data import (
    build_recipe_dataset,
    build_subset,
    carve_selection,
    labelled_pairs,
    load_dataset,
    pairs_table,
    read_manifest,
    read_table,
)
from backbone.errors import BackboneError
from backbone.recipes import Dataset


def test_the_carved_split_is_deterministic_whatever_the_input_order() -> None:
    arguments = {"train_split": "train", "split": "selection", "queries": 8, "seed": 5}
    first = carve_selection(make_dataset(), **arguments)

    # Corpus and queries tables stay as given; the judgments, and so the splits, do not depend on row order.
    assert ids(carve_selection(make_dataset(order=-1), **arguments))[2] == ids(first)[2]
    assert ids(carve_selection(make_dataset(), **arguments)) == ids(first)
    assert first.splits() == ["dev", "selection", "train"]
    assert len(first.query_ids("selection")) == 8 and len(first.query_ids("train")) == 22
    assert first.source["selection"] == {"from": "train", "split": "selection", "queries": 8, "seed": 5}
    assert first.judgments.num_rows == make_dataset().judgments.num_rows  # judgments move, none is lost
    other_seed = carve_selection(make_dataset(), **{**arguments, "seed": 6})
    assert other_seed.query_ids("selection") != first.query_ids("selection")


def test_the_carved_split_is_disjoint_from_the_training_pairs_and_the_eval_split() -> None:
    full = make_dataset()
    carved = carve_selection(full, train_split="train", split="selection", queries=8, seed=5)
    selection = set(carved.query_ids("selection"))
    pairs = labelled_pairs(carved, "train")

    assert selection.isdisjoint(pairs["query_id"].to_pylist())
    assert selection.isdisjoint(carved.query_ids("dev"))
    assert selection | set(carved.query_ids("train")) == set(full.query_ids("train"))
    # Each selection query keeps every judgment it had in the train split.
    assert carved.relevant("selection") == {query: full.relevant("train")[query] for query in sorted(selection)}
    assert pairs.num_rows + sum(map(len, carved.relevant("selection").values())) == labelled_pairs(full).num_rows


def test_a_bad_carve_is_refused_with_the_reason() -> None:
    full = make_dataset()
    with pytest.raises(BackboneError, match="asked for 30 queries, but 'train' has 30"):
        carve_selection(full, train_split="train", split="selection", queries=30, seed=1)
    with pytest.raises(BackboneError, match="'dev' is already a split"):
        carve_selection(full, train_split="train", split="dev", queries=3, seed=1)
    with pytest.raises(BackboneError, match="no split 'training'"):
        carve_selection(full, train_split="training", split="selection", queries=3, seed=1)


def test_recipe_dataset_carves_after_the_subset_and_keys_its_folder_by_it(tmp_path: Path, monkeypatch) -> None:
    raw = tmp_path / "raw"
    (raw / "qrels").mkdir(parents=True)
    header = "query-id\tcorpus-id\tscore\n"
    (raw / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": f"d{n}", "title": f"t{n}", "text": f"text {n}"}) + "\n" for n in range(30)),
        encoding="utf-8",
    )
    (raw / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": f"q{n}", "text": f"query {n}"}) + "\n" for n in range(20)), encoding="utf-8"
    )
    (raw / "qrels" / "train.tsv").write_text(header + "".join(f"q{n}\td{n}\t1\n" for n in range(15)))
    (raw / "qrels" / "dev.tsv").write_text(header + "".join(f"q{n}\td{n}\t1\n" for n in range(15, 20)))
    monkeypatch.setenv("BACKBONE_DATASETS_DIR", str(tmp_path / "datasets"))
    spec = {"loader": "beir", "source": raw, "subset": {"seed": 3, "queries": {"train": 12, "dev": 5}}}

    plain = build_recipe_dataset(Dataset.model_validate(spec), "tiny")
    carved_dir = build_recipe_dataset(Dataset.model_validate({**spec, "selection": {"queries": 4, "seed": 9}}), "tiny")

    assert carved_dir != plain and read_manifest(plain).counts.splits.keys() == {"dev", "train"}
    manifest = read_manifest(carved_dir)
    assert manifest.source["selection"] == {"from": "train", "split": "selection", "queries": 4, "seed": 9}
    assert {split: counts.queries for split, counts in manifest.counts.splits.items()} == {
        "dev": 5,
        "selection": 4,
        "train": 8,
    }
    selection = set(load_dataset(carved_dir).query_ids("selection"))
    assert selection <= set(load_dataset(plain).query_ids("train"))  # carved from the subset's train queries
    assert selection.isdisjoint(read_table(carved_dir, pairs_table("train"))["query_id"].to_pylist())
    assert set(manifest.counts.tables) == {"pairs/weak", "pairs/train"}  # no pairs of the selection split


def test_subset_then_carve_equals_the_recipe_order() -> None:
    subset = build_subset(make_dataset(), seed=2, queries={"train": 20, "dev": 5}, corpus_size=40)
    carved = carve_selection(subset, train_split="train", split="held", queries=5, seed=2)

    assert set(carved.query_ids("held")) <= set(subset.query_ids("train"))
    assert carved.corpus.equals(subset.corpus) and carved.source["subset"] == subset.source["subset"]
