"""A recipe's dataset is prepared once from the real STARD copy, subset as the recipe says, then reused."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from backbone.data import build_recipe_dataset, load_dataset, read_manifest
from backbone.recipes import load_recipe

pytestmark = pytest.mark.integration

MINI = Path(__file__).resolve().parents[2] / "jobs" / "recipes" / "stard-mini.yaml"


def test_mini_recipe_dataset_is_built_once_and_reused(stard_dir: Path, tmp_path: Path) -> None:
    raw = yaml.safe_load(MINI.read_text(encoding="utf-8"))
    raw["dataset"]["source"] = str(stard_dir)
    recipe_file = tmp_path / "mini.yaml"
    recipe_file.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    recipe = load_recipe(recipe_file)

    first = build_recipe_dataset(recipe.dataset, recipe.name)
    manifest = read_manifest(first)
    subset = recipe.dataset.subset
    assert manifest.name == "stard-mini"
    assert manifest.counts.corpus == subset.corpus_size
    # The selection split is carved out of the subset's train queries: training never sees its queries.
    selection = recipe.dataset.selection
    expected = {
        **subset.queries,
        "train": subset.queries["train"] - selection.queries,
        selection.split: selection.queries,
    }
    assert {split: counts.queries for split, counts in manifest.counts.splits.items()} == expected
    assert set(manifest.counts.tables) == {"pairs/weak", "pairs/train"}
    assert manifest.source["subset"]["seed"] == subset.seed

    dataset = load_dataset(first)
    corpus_ids = set(dataset.corpus["doc_id"].to_pylist())
    assert set(dataset.judgments["doc_id"].to_pylist()) <= corpus_ids

    manifest_mtime = (first / "manifest.json").stat().st_mtime_ns
    assert build_recipe_dataset(recipe.dataset, recipe.name) == first
    assert (first / "manifest.json").stat().st_mtime_ns == manifest_mtime

    raw["dataset"]["subset"]["seed"] = 14
    recipe_file.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    other = build_recipe_dataset(load_recipe(recipe_file).dataset, recipe.name)
    assert other != first
    assert set(load_dataset(other).query_ids("dev")) != set(dataset.query_ids("dev"))
