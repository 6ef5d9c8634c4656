"""The whole pipeline on tiny models: what the search costs, what a second run costs, and what it writes."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import yaml
from tiny_pipeline import TinyPipeline
from typer.testing import CliRunner

from backbone.cli import app as cli
from backbone.data import build_recipe_dataset, dataset_checksum, load_dataset, read_table
from backbone.evaluation import read_parquet_run, read_trec_run
from backbone.recipes import load_recipe
from backbone.registry import Lineage, Registry, Releases, index_key
from backbone.selection import Work, choose_backbone, gather_evidence, search_inputs, select_backbone

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


def test_the_closing_summary_says_what_was_trained_or_reused_and_the_time_per_phase(
    tiny_pipeline: TinyPipeline,
) -> None:
    first, second = tiny_pipeline.first_run, tiny_pipeline.second_run
    stages = ["retriever/base", "retriever/align", "reranker/base", "reranker/align"]
    assert [f"{s.component}/{s.stage}" for s in first.stages] == [f"{s.component}/{s.stage}" for s in second.stages]
    assert [s.reused for s in first.stages] == [False] * 4 and [s.reused for s in second.stages] == [True] * 4
    assert list(first.phases) == ["prepare data", "train retriever", "train reranker", "search and release"]
    # Training dominates the first run; the second only looks things up.
    assert first.phases["train retriever"] > second.phases["train retriever"]

    lines = first.describe().splitlines()
    summary = lines[lines.index("run summary:") :]
    assert summary[1].startswith("  trained: retriever/base (") and all(stage in summary[1] for stage in stages)
    assert summary[2] == "  reused: nothing"
    assert summary[3].startswith("  prepare data ") and "; total " in summary[3]
    assert summary[4] == f"  report: {first.selection.report}"
    again = second.describe().splitlines()
    assert again[again.index("run summary:") + 1 :][:2] == ["  trained: nothing", f"  reused: {', '.join(stages)}"]


def test_the_release_and_report_hold_the_chosen_backbone(tiny_pipeline: TinyPipeline) -> None:
    outcome = tiny_pipeline.first.outcome
    release = Releases(Registry(str(tiny_pipeline.registry))).current("tiny-pipeline")
    report = tiny_pipeline.first.report.parent

    assert release.retriever.checkpoint == outcome.checkpoints["retriever"][outcome.choice.retriever]
    assert release.reranker.checkpoint == outcome.checkpoints["reranker"][outcome.choice.reranker]
    assert release.applications["api"].k == 5 and release.applications["api"].top_n == 3
    # Each application's settings are exactly the search's choice for it: K, top_n, weight, deadline and policy.
    assert release.applications == {app.name: app.settings() for app in outcome.choice.applications}
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
    dataset = tiny_pipeline.dataset
    inputs = search_inputs(dataset, "dev", recipe.retriever, recipe.reranker)

    def gather() -> Work:
        return gather_evidence(registry, inputs, {"copy": copy.id}, {}, (recipe.retriever, recipe.reranker), 10).work

    assert gather() == Work(corpus_encodings=1, retrieval_runs=1, rerank_passes=0, pairs_scored=0)
    assert gather() == Work(0, 0, 0, 0)
    (index,) = [m for m in registry.list("index") if m.lineage.parents == [copy.id]]
    assert index.cache_key == index_key(copy.id, inputs.data)


def test_evaluate_gives_the_searchs_own_figures_for_its_release_and_writes_runs(
    tiny_pipeline: TinyPipeline, tmp_path: Path
) -> None:
    outcome = tiny_pipeline.first.outcome
    release = outcome.release
    dataset = tiny_pipeline.dataset
    args = ["evaluate", f"{release.name}@{release.version}", "--dataset", str(dataset), "--split", outcome.eval_split]
    args += [
        "--metrics",
        "recall@10,ndcg@10",
        "--out",
        str(tmp_path / "out"),
        "--registry",
        str(tiny_pipeline.registry),
    ]

    result = CliRunner().invoke(cli, args)

    assert result.exit_code == 0, result.output
    assert f"{release.name} v{release.version} on split 'dev' of {dataset} (8 queries)" in result.output
    # Every run and score was the search's: the evaluation did no model work.
    assert "model work: 0 corpus encodings, 0 query runs, 0 rerank passes (0 pairs)" in result.output
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in result.output.splitlines() if " | " in line}
    for reported in outcome.reported:
        if reported.label.startswith("chosen: "):
            app = reported.label.removeprefix("chosen: ")
            recall, ndcg = (float(cell.strip(" |")) for cell in rows[app][2:4])
            expected = (reported.held_out["recall@10"], reported.held_out["ndcg@10"])
            assert (recall, ndcg) == pytest.approx(expected, abs=5e-5)  # printed to 4 decimals
    retriever = outcome.held_out_retriever_only[outcome.choice.retriever]
    assert float(rows["retriever"][3].strip(" |")) == pytest.approx(retriever["ndcg@10"], abs=5e-5)
    written = sorted(path.name for path in (tmp_path / "out").iterdir())
    assert written == sorted(
        ["api.trec", "search.trec", "research.trec", "retriever.trec", "per_query.parquet"]
        + [f"reranker@{k}.trec" for k in sorted({s.k for s in release.applications.values() if s.calls_reranker})]
    )


def test_train_command_reuses_the_pipelines_stages_and_prints_their_tables(tiny_pipeline: TinyPipeline) -> None:
    args = ["train", str(tiny_pipeline.recipe), "--component", "retriever", "--registry", str(tiny_pipeline.registry)]
    before = [manifest.id for manifest in Registry(str(tiny_pipeline.registry)).list("checkpoint")]

    result = CliRunner().invoke(cli, args)

    assert result.exit_code == 0, result.output
    trained = tiny_pipeline.first.outcome.checkpoints["retriever"]
    lines = [line for line in result.output.splitlines() if line.startswith("| ")]
    assert lines[0] == "| retriever | recall@10 | ndcg@10 | examples | examples/s |"
    labels = [line.split(" | ")[0].removeprefix("| ") for line in lines[2:]]
    assert labels == ["bm25", *(f"{stage} ({checkpoint})" for stage, checkpoint in trained.items())]
    assert "| reranker |" not in result.output  # only the component asked for
    assert [manifest.id for manifest in Registry(str(tiny_pipeline.registry)).list("checkpoint")] == before
    unknown = CliRunner().invoke(cli, [*args, "--stage", "nope"])
    assert unknown.exit_code != 0 and "--stages: retriever has no stage nope; it has align" in str(unknown.exception)


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


def test_promote_rechoose_k_chooses_what_the_search_would_for_the_new_pair(tiny_pipeline: TinyPipeline) -> None:
    registry = Registry(str(tiny_pipeline.registry))
    releases = Releases(registry)
    outcome = tiny_pipeline.first.outcome
    before = releases.current("tiny-pipeline")
    stage, replacement = next(
        (stage, ckpt) for stage, ckpt in outcome.checkpoints["reranker"].items() if ckpt != before.reranker.checkpoint
    )
    args = ["release", "promote", "tiny-pipeline", "reranker", replacement, "--rechoose-k"]

    result = CliRunner().invoke(cli, [*args, "--recipe", str(tiny_pipeline.recipe), "--registry", str(registry.uri)])

    assert result.exit_code == 0, result.output
    assert "model work: 0 corpus encodings, 0 query runs, 0 rerank passes (0 pairs)" in result.output  # all cached
    # The search's own leaderboard rows of the new pair, chosen the search's way.
    recipe = load_recipe(tiny_pipeline.recipe)
    pair = [row for row in outcome.rows if (row["retriever"], row["reranker"]) == (outcome.choice.retriever, stage)]
    expected = choose_backbone(pair, recipe.applications, recipe.search.objective, outcome.retriever_only)
    current = Releases(Registry(registry.uri)).current("tiny-pipeline")
    assert current.version == before.version + 2 and current.reranker.checkpoint == replacement
    assert {name: (s.k, s.weight) for name, s in current.applications.items()} == {
        app.name: (app.k, app.weight) for app in expected.applications
    }
    assert current.settings_chosen_for.reranker == replacement and current.stale_settings() is None
    assert f"tiny-pipeline v{current.version}: re-choose settings for retriever" in result.output
    shown = CliRunner().invoke(cli, ["release", "show", "tiny-pipeline", "--registry", str(registry.uri)]).output
    assert f"chosen for: retriever {current.retriever.checkpoint}, reranker {replacement}" in shown
    assert all(f"{name}: k={s.k} " in shown for name, s in current.applications.items())
    # Put the tiny pipeline's release back as its search wrote it, for the tests after this one.
    releases.rollback("tiny-pipeline", "reranker")
    releases.set_settings("tiny-pipeline", before.applications)


def test_a_selection_split_chooses_weights_and_the_eval_split_reports(
    tiny_pipeline: TinyPipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Last in this file: it adds a dataset and a release beside the tiny pipeline's, reusing its checkpoints.
    raw = yaml.safe_load(tiny_pipeline.recipe.read_text(encoding="utf-8"))
    raw["name"] = "tiny-selection"
    raw["dataset"]["selection"] = {"queries": 6, "seed": 1}
    raw["search"]["weights"] = [0.0, 0.5, 1.0]
    path = tmp_path / "tiny-selection.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    recipe = load_recipe(path)
    monkeypatch.setenv("BACKBONE_HOME", str(tiny_pipeline.home))
    dataset_dir = build_recipe_dataset(recipe.dataset, recipe.name)
    registry = Registry(str(tiny_pipeline.registry))
    checkpoints = tiny_pipeline.first.outcome.checkpoints

    selection = select_backbone(recipe, dataset_dir, registry, checkpoints, tmp_path / "report")

    outcome = selection.outcome
    dataset = load_dataset(dataset_dir)
    assert len(dataset.query_ids("selection")) == 6
    assert set(dataset.query_ids("selection")).isdisjoint(
        read_table(dataset_dir, "pairs/train")["query_id"].to_pylist()
    )
    assert (outcome.choice_split, outcome.eval_split) == ("selection", "dev")
    assert len(outcome.rows) == 2 * 2 * 3 * 3 and {row["weight"] for row in outcome.rows} == {0.0, 0.5, 1.0}
    for row in outcome.rows:  # weight 0 is the retriever's order: its top 10 out of K >= 10 is the retriever's own
        if row["weight"] == 0.0 and row["k"] >= 10:
            assert row["ndcg@10"] == pytest.approx(outcome.retriever_only[row["retriever"]]["ndcg@10"])
    release = Releases(registry).current("tiny-selection")
    assert {app.name: app.weight for app in outcome.choice.applications} == {
        name: settings.weight for name, settings in release.applications.items()
    }
    labels = [item.label for item in outcome.reported]
    assert labels[:4] == ["chosen: api", "base: api", "chosen: search", "base: search"]
    assert set(outcome.held_out_retriever_only) == {"base", "align"}
    # On dev, only the pairs of the reported assignments' retrievers were scored.
    checksum = dataset_checksum(dataset_dir)
    scored_on_dev = [
        m
        for m in registry.list("run")
        if m.params.get("role") == "pair-scores"
        and m.params["split"] == "dev"
        and m.lineage.dataset_checksum == checksum
    ]
    reranked = [item.assignment for item in outcome.reported if item.rerank]
    assert {m.params["checkpoint"] for m in scored_on_dev} == {checkpoints["reranker"][a.reranker] for a in reranked}
    dev_runs = {
        m.params["checkpoint"]: read_parquet_run(registry.materialize(m.id) / "run.parquet")
        for m in registry.list("run")
        if m.params.get("role") == "retrieval"
        and m.cache_key.split(":")[-2] == "dev"
        and m.lineage.dataset_checksum == checksum
    }
    needed = {
        (query, doc)
        for stage in {a.retriever for a in reranked}
        for query, docs in dev_runs[checkpoints["retriever"][stage]].items()
        for doc in docs
    }
    assert sum(int(m.metrics["pairs"]) for m in scored_on_dev) == len(needed) * len(scored_on_dev)
    description = selection.describe()
    assert "chosen on split selection, reported on split dev" in description and "weight=" in description
    assert "split `dev` was only reported" in selection.report.read_text()
