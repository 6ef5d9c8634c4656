"""The whole pipeline on tiny models: what the search costs, what a second run costs, and what it writes."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from tiny_pipeline import TinyPipeline
from typer.testing import CliRunner

from backbone.cli import app as cli
from backbone.evaluation import read_parquet_run, read_trec_run
from backbone.recipes import load_recipe
from backbone.registry import Lineage, Registry, Releases
from backbone.selection import Work, gather_evidence, search_inputs

pytestmark = pytest.mark.cluster


def test_search_costs_one_run_per_retriever_and_one_pass_per_reranker(tiny_pipeline: TinyPipeline) -> None:
    registry = Registry(str(tiny_pipeline.registry))
    work = tiny_pipeline.first.outcome.work
    runs = [m for m in registry.list("run") if m.params.get("role") == "retrieval"]
    scores = [m for m in registry.list("run") if m.params.get("role") == "pair-scores"]
    distinct_pairs = {
        (query, doc)
        for manifest in runs
        for query, docs in read_parquet_run(registry.materialize(manifest.id) / "run.parquet").items()
        for doc in docs
    }

    # Each retriever stage published its index when it was evaluated: the search encodes no corpus.
    assert work == Work(corpus_encodings=0, retrieval_runs=2, rerank_passes=2, pairs_scored=2 * len(distinct_pairs))
    assert len(registry.list("index")) == 2 and len(runs) == 2
    assert sorted(int(m.metrics["pairs"]) for m in scores) == [len(distinct_pairs)] * 2  # each pair once
    # 2 x 2 stages x 3 budgets: 12 trials, none of which did model work.
    assert len(tiny_pipeline.first.outcome.rows) == 12


def test_a_second_run_does_no_model_work_and_writes_nothing_new(tiny_pipeline: TinyPipeline) -> None:
    first, second = tiny_pipeline.first, tiny_pipeline.second

    assert second.outcome.work == Work(0, 0, 0, 0)
    assert [m.id for m in Registry(str(tiny_pipeline.registry)).list()] == tiny_pipeline.artifacts_after_first
    assert second.outcome.release == first.outcome.release
    assert second.outcome.rows == first.outcome.rows and second.report_artifact == first.report_artifact


def test_the_release_and_report_hold_the_chosen_backbone(tiny_pipeline: TinyPipeline) -> None:
    outcome = tiny_pipeline.first.outcome
    release = Releases(Registry(str(tiny_pipeline.registry))).current("tiny-pipeline")
    report = tiny_pipeline.first.report.parent

    assert release.retriever.checkpoint == outcome.checkpoints["retriever"][outcome.choice.retriever]
    assert release.reranker.checkpoint == outcome.checkpoints["reranker"][outcome.choice.reranker]
    assert release.applications["api"].k == 5 and release.applications["api"].top_n == 3
    assert release.applications["search"].k in (5, 10)
    assert (release.applications["research"].k, release.applications["research"].rerank) == (20, False)
    assert {"report.md", "leaderboard.md", "leaderboard.parquet", "heatmap.png", "curves.png"} <= {
        path.name for path in report.iterdir()
    }
    for app in ("api", "search", "research"):
        trec, parquet = (
            read_trec_run(report / "runs" / f"{app}.trec"),
            read_parquet_run(report / "runs" / f"{app}.parquet"),
        )
        assert trec == parquet and len(trec) == 8
        assert all(len(docs) == release.applications[app].k for docs in trec.values())
    summary = tiny_pipeline.first.report.read_text()
    assert "| best mixed |" in summary and "| best uniform |" in summary and "| base models |" in summary


def test_a_checkpoint_without_an_index_has_its_corpus_encoded_once(tiny_pipeline: TinyPipeline) -> None:
    registry = Registry(str(tiny_pipeline.registry))
    recipe = load_recipe(tiny_pipeline.recipe)
    base = registry.get(tiny_pipeline.first.outcome.checkpoints["retriever"]["base"])
    with tempfile.TemporaryDirectory() as folder:
        copy = registry.publish(
            "checkpoint",
            registry.materialize(base.id, Path(folder) / "model"),
            name="retriever/copy",
            lineage=Lineage(parents=[base.id]),
            params=base.params,
        )
    dataset = next((tiny_pipeline.home / "datasets").glob("*/manifest.json")).parent
    inputs = search_inputs(dataset, "dev", recipe.retriever, recipe.reranker)

    def gather() -> Work:
        return gather_evidence(registry, inputs, {"copy": copy.id}, {}, (recipe.retriever, recipe.reranker), 10).work

    assert gather() == Work(corpus_encodings=1, retrieval_runs=1, rerank_passes=0, pairs_scored=0)
    assert gather() == Work(0, 0, 0, 0)
    (index,) = [m for m in registry.list("index") if m.lineage.parents == [copy.id]]
    assert index.cache_key == f"index:{copy.id}"


def test_compare_prints_wins_and_a_significance_figure(tiny_pipeline: TinyPipeline, monkeypatch) -> None:
    registry = Registry(str(tiny_pipeline.registry))
    releases = Releases(registry)
    current = releases.current("tiny-pipeline")
    other = tiny_pipeline.first.outcome.checkpoints["reranker"]
    replacement = next(ckpt for ckpt in other.values() if ckpt != current.reranker.checkpoint)
    releases.promote("tiny-pipeline", "reranker", replacement, note="test: another reranker")
    monkeypatch.setenv("BACKBONE_DATASETS_DIR", str(tiny_pipeline.home / "datasets"))

    result = CliRunner().invoke(
        cli, ["compare", "tiny-pipeline@1", "tiny-pipeline", "--registry", str(tiny_pipeline.registry)]
    )

    assert result.exit_code == 0, result.output
    lines = {
        line.split(" | ")[0].strip("| "): line.split(" | ") for line in result.output.splitlines() if " | " in line
    }
    research = lines["research"]  # no reranking: the same ranking on both sides
    assert research[4:8] == ["0", "8", "0", "1.0000"]
    for app_name in ("api", "search"):
        wins, ties, losses, p_value = lines[app_name][4:8]
        assert int(wins) + int(ties) + int(losses) == 8 and 0.0 <= float(p_value) <= 1.0
    releases.rollback("tiny-pipeline", "reranker")
