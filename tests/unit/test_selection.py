"""Scoring stage assignments end to end, choosing the backbone per application, and the search report.

Evidence is built by hand here (no model, no cluster), so every value can be worked out on paper.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from backbone.errors import BackboneError
from backbone.evaluation import interpolate, ranking
from backbone.recipes import Application
from backbone.selection import (
    Assignment,
    Evidence,
    PairScores,
    RetrievalRun,
    SearchOutcome,
    SearchSpace,
    Selection,
    Work,
    assignment_metrics,
    choose_backbone,
    end_to_end_run,
    latency_ms,
    per_query_metric,
    reported_assignments,
    score_reported,
    write_report,
)


def _retrieval(run: dict[str, dict[str, float]], query_ms: float) -> RetrievalRun:
    return RetrievalRun("ckpt-r", "index-r", "run-r", run, query_ms, corpus_encoded=False, retrieved=False)


@pytest.fixture
def evidence() -> Evidence:
    # q1's relevant document d2 is second for both retrievers; q2's d5 is third for "base", first for "tuned".
    retrieval = {
        "base": _retrieval({"q1": {"d1": 0.9, "d2": 0.8, "d3": 0.7}, "q2": {"d4": 0.9, "d6": 0.8, "d5": 0.7}}, 2.0),
        "tuned": _retrieval({"q1": {"d3": 0.9, "d2": 0.8, "d1": 0.7}, "q2": {"d5": 0.9, "d4": 0.8, "d6": 0.7}}, 3.0),
    }
    # The "base" reranker agrees with nobody; the "tuned" one puts each relevant document first.
    pairs = [("q1", "d1"), ("q1", "d2"), ("q1", "d3"), ("q2", "d4"), ("q2", "d5"), ("q2", "d6")]
    scores = {
        "base": PairScores("ckpt-s0", dict(zip(pairs, [3.0, 1.0, 2.0, 3.0, 1.0, 2.0], strict=True)), 10.0, 0),
        "tuned": PairScores("ckpt-s1", dict(zip(pairs, [1.0, 3.0, 2.0, 1.0, 3.0, 2.0], strict=True)), 20.0, 0),
    }
    return Evidence(retrieval, scores, {"q1": {"d2": 1}, "q2": {"d5": 1}}, Work(0, 0, 0, 0))


def test_end_to_end_run_reranks_only_the_top_k(evidence: Evidence) -> None:
    run = end_to_end_run(evidence, Assignment("base", "tuned", 2))

    assert list(run["q1"]) == ["d2", "d1"]  # d3 was not among the top 2 retrieved, so it cannot come back
    assert list(run["q2"]) == ["d6", "d4"]  # q2's d5 was third: out of a K=2 budget
    assert list(end_to_end_run(evidence, Assignment("base", "tuned", 2), rerank=False)["q1"]) == ["d1", "d2"]


def test_end_to_end_metrics_match_hand_computed_values(evidence: Evidence) -> None:
    mixed = assignment_metrics(evidence, Assignment("base", "tuned", 3), ["ndcg@10", "mrr@10", "recall@1"])
    base = assignment_metrics(evidence, Assignment("base", "base", 3), ["ndcg@10", "mrr@10"])

    assert mixed["ndcg@10"] == pytest.approx(1.0) and mixed["mrr@10"] == pytest.approx(1.0)
    assert mixed["recall@1"] == pytest.approx(1.0)
    # The base reranker puts each relevant document last of three: 1 / log2(4) = 0.5, reciprocal rank 1/3.
    assert base["ndcg@10"] == pytest.approx(1 / math.log2(4))
    assert base["mrr@10"] == pytest.approx(1 / 3)
    assert (mixed["retriever_ms"], mixed["reranker_ms"], mixed["latency_ms"]) == (2.0, 60.0, 62.0)
    per_query = per_query_metric(evidence, Assignment("tuned", "base", 3), "mrr@10")
    assert per_query == pytest.approx({"q1": 1 / 3, "q2": 1 / 3})


def test_a_budget_beyond_the_gathered_depth_is_refused(evidence: Evidence) -> None:
    with pytest.raises(BackboneError, match="K=5 exceeds the depth 3"):
        end_to_end_run(evidence, Assignment("base", "base", 5))


def _rows(evidence: Evidence) -> list[dict]:
    return [
        {
            "retriever": r,
            "reranker": s,
            "k": k,
            "weight": 1.0,
            **assignment_metrics(evidence, Assignment(r, s, k), ["ndcg@10"]),
        }
        for r in ("base", "tuned")
        for s in ("base", "tuned")
        for k in (2, 3)
    ]


def _retriever_only(evidence: Evidence) -> dict[str, dict]:
    return {
        stage: {"k": 3, **assignment_metrics(evidence, Assignment(stage, "", 3), ["ndcg@10"], rerank=False)}
        for stage in ("base", "tuned")
    }


def test_one_stage_pair_serves_every_application_at_its_own_best_budget(evidence: Evidence) -> None:
    apps = [
        Application(name="api", k_range=(2, 2), top_n=5),
        Application(name="research", k_range=(2, 3), top_n=3),
        Application(name="plain", k_range=(3, 3), rerank=False),
    ]

    choice = choose_backbone(_rows(evidence), apps, "ndcg@10", _retriever_only(evidence))

    assert (choice.retriever, choice.reranker) == ("tuned", "tuned")  # mixed pairs lose q2's d5 at K=2 ...
    by_name = {app.name: app for app in choice.applications}
    assert (by_name["api"].k, by_name["api"].top_n) == (2, 2)  # top_n never exceeds the candidates fetched
    assert by_name["research"].k == 2  # K=2 and K=3 tie on nDCG: the smaller budget wins
    assert (by_name["plain"].k, by_name["plain"].rerank) == (3, False)
    assert by_name["plain"].row["ndcg@10"] == pytest.approx(_retriever_only(evidence)["tuned"]["ndcg@10"])


def test_latency_budgets_restrict_the_budget_and_a_hopeless_one_is_an_error(evidence: Evidence) -> None:
    rows = _rows(evidence)
    fast = [Application(name="fast", latency_budget_ms=45.0)]  # tuned reranker: 3 + 20 * K ms

    choice = choose_backbone(rows, fast, "ndcg@10", _retriever_only(evidence))
    assert choice.applications[0].row["latency_ms"] <= 45.0

    with pytest.raises(BackboneError, match="no searched assignment fits every application's budget"):
        choose_backbone(
            rows, [Application(name="instant", latency_budget_ms=1.0)], "ndcg@10", _retriever_only(evidence)
        )


def test_the_reranker_deadline_follows_the_budget_or_the_measured_cost_and_the_policy_is_kept(
    evidence: Evidence,
) -> None:
    rows = _rows(evidence)
    budgeted = Application(name="fast", latency_budget_ms=45.0, without_reranker="unavailable")
    free = Application(name="free", k_range=(2, 3))
    plain = Application(name="plain", k_range=(3, 3), rerank=False)

    choice = choose_backbone(rows, [budgeted, free, plain], "ndcg@10", _retriever_only(evidence))

    by_name = {app.name: app for app in choice.applications}
    fast_row, free_row = by_name["fast"].row, by_name["free"].row
    # The budget less the retrieval, and four times the measured cost of K pairs with a 0.5 s floor.
    assert by_name["fast"].settings().rerank_timeout_s == pytest.approx((45.0 - fast_row["retriever_ms"]) / 1000)
    assert by_name["free"].settings().rerank_timeout_s == max(0.5, round(4 * free_row["reranker_ms"] / 1000, 3))
    assert by_name["plain"].settings().rerank_timeout_s is None  # the reranker is never called
    assert by_name["free"].settings().model_dump(exclude={"rerank_timeout_s"}) == {
        "k": by_name["free"].k,
        "top_n": by_name["free"].top_n,
        "rerank": True,
        "weight": by_name["free"].weight,
        "without_reranker": "retriever",
    }
    assert by_name["fast"].settings().without_reranker == "unavailable"  # the recipe's policy reaches the release


def test_search_space_is_a_grid_or_random_choices() -> None:
    grid = SearchSpace(["base", "s1"], ["base"], [20, 60], "ndcg@10", ["ndcg@10"]).param_space()
    random = SearchSpace(["base"], ["base"], [20], "ndcg@10", ["ndcg@10"], algorithm="random").param_space()

    assert grid["retriever"] == {"grid_search": ["base", "s1"]} and grid["k"] == {"grid_search": [20, 60]}
    assert random["k"].categories == [20]


def test_report_puts_mixed_beside_uniform_and_base(evidence: Evidence, tmp_path: Path) -> None:
    rows = sorted(_rows(evidence), key=lambda row: (-row["ndcg@10"], row["latency_ms"]))
    apps = [Application(name="api", k_range=(2, 3))]
    space = SearchSpace(["base", "tuned"], ["base", "tuned"], [2, 3], "ndcg@10", ["ndcg@10"])
    choice = choose_backbone(rows, apps, "ndcg@10", _retriever_only(evidence))
    outcome = SearchOutcome(
        recipe="hand",
        space=space,
        rows=rows,
        retriever_only=_retriever_only(evidence),
        recall_curves={"base": {1: 0.0, 3: 1.0}, "tuned": {1: 0.5, 3: 1.0}},
        choice=choice,
        checkpoints={"retriever": {"base": "r0", "tuned": "r1"}, "reranker": {"base": "s0", "tuned": "s1"}},
        work=Work(1, 2, 2, 12),
        release=None,
        choice_split="dev",
        eval_split="dev",
        reported=score_reported(reported_assignments(choice, rows, space), evidence, evidence, ["ndcg@10"]),
        held_out_retriever_only=_retriever_only(evidence),
    )

    summary = write_report(outcome, tmp_path / "report").read_text()

    assert {path.name for path in (tmp_path / "report").iterdir()} == {
        "report.md",
        "leaderboard.md",
        "leaderboard.parquet",
        "heatmap.png",
        "curves.png",
    }
    assert pq.read_table(tmp_path / "report" / "leaderboard.parquet").num_rows == len(rows)
    assert "| best mixed | base | tuned | 3 | 1 | 1.0000 | 2.0 | 60.0 | 62.0 |" in summary  # base needs K=3 for q2
    assert "| best uniform | tuned | tuned | 2 | 1 | 1.0000 | 3.0 | 40.0 | 43.0 |" in summary
    assert "| base models | base | base | 3 | 1 | 0.5000 |" in summary
    assert "**The figures are optimistic:** every choice was made on split `dev`" in summary
    assert "1 corpus encodings, 2 query runs, 2 rerank passes (12 pairs)" in summary


def test_weight_zero_reproduces_the_retriever_order_exactly(evidence: Evidence) -> None:
    for retriever in ("base", "tuned"):
        for reranker in ("base", "tuned"):
            for k in (1, 2, 3):
                plain = end_to_end_run(evidence, Assignment(retriever, reranker, k), rerank=False)
                mixed = end_to_end_run(evidence, Assignment(retriever, reranker, k, 0.0))
                assert {query: list(docs) for query, docs in mixed.items()} == {
                    query: list(docs) for query, docs in plain.items()
                }
    # Weight 0 does not read the reranker's scores at all: evidence without any pair scores serves it.
    unscored = Evidence(evidence.retrieval, {}, evidence.qrels, evidence.work)
    assert end_to_end_run(unscored, Assignment("tuned", "tuned", 2, 0.0)) == end_to_end_run(
        evidence, Assignment("tuned", "", 2), rerank=False
    )
    assert latency_ms(unscored, Assignment("tuned", "tuned", 2, 0.0))["reranker_ms"] == 0.0
    # Model-like float32 scores with ties: the order is the retriever's, ties by document id, as ranking() has it.
    generator = np.random.default_rng(0)
    dense = generator.normal(size=200).astype(np.float32).round(2).astype(np.float64)  # rounding makes ties
    cross = generator.normal(scale=5.0, size=200).astype(np.float32).astype(np.float64)
    docs = [f"d{position:03d}" for position in generator.permutation(200)]
    retriever = dict(zip(docs, dense.tolist(), strict=True))
    combined = interpolate(retriever, dict(zip(docs, cross.tolist(), strict=True)), 0.0)
    assert list(combined) == [doc for doc, _ in ranking(retriever)]
    assert len(set(dense.tolist())) < 200  # the check above covered ties


def test_interpolation_normalises_each_component_per_query() -> None:
    retriever, reranker = {"d1": 10.0, "d2": 8.0, "d3": 6.0}, {"d1": -4.0, "d2": 4.0, "d3": 0.0}

    assert interpolate(retriever, reranker, 0.25) == {"d1": 0.75, "d2": 0.625, "d3": 0.125}
    assert list(interpolate(retriever, reranker, 1.0)) == ["d2", "d3", "d1"]
    assert interpolate({"d1": 1.0, "d2": 1.0}, {"d1": 0.0, "d2": 2.0}, 0.0) == {"d1": 0.0, "d2": 0.0}
    with pytest.raises(BackboneError, match=r"must be in \[0, 1\]"):
        interpolate(retriever, reranker, 1.5)


def _weighted_evidence() -> Evidence:
    # q1's relevant d2: the retriever puts d1 first, the reranker d3; half of each puts d2 first.
    retrieval = {"base": _retrieval({"q1": {"d1": 0.9, "d2": 0.8, "d3": 0.0}}, 1.0)}
    scores = {"base": PairScores("ckpt-s", {("q1", "d1"): 0.0, ("q1", "d2"): 0.9, ("q1", "d3"): 1.0}, 1.0, 0)}
    return Evidence(retrieval, scores, {"q1": {"d2": 1}}, Work(0, 0, 0, 0))


def test_the_choice_picks_a_weight_per_application() -> None:
    evidence = _weighted_evidence()
    rows = [
        {
            "retriever": "base",
            "reranker": "base",
            "k": 3,
            "weight": weight,
            **assignment_metrics(evidence, Assignment("base", "base", 3, weight), ["mrr@10"]),
        }
        for weight in (0.0, 0.5, 1.0)
    ]

    assert [row["mrr@10"] for row in rows] == [0.5, 1.0, 0.5]
    # At weight 0 the reranker's score is unused and the gateway does not call it: no reranker time.
    assert [row["reranker_ms"] for row in rows] == [0.0, 3.0, 3.0]
    only = {"base": assignment_metrics(evidence, Assignment("base", "", 3), ["mrr@10"], rerank=False)}
    choice = choose_backbone(rows, [Application(name="api", k_range=(3, 3))], "mrr@10", only)
    assert choice.applications[0].weight == 0.5 and choice.applications[0].row["mrr@10"] == 1.0


def test_the_choice_is_made_on_the_selection_split_and_reported_on_the_eval_split(
    evidence: Evidence, tmp_path: Path
) -> None:
    # Same runs and scores, other judgments: on "dev" the base reranker puts each relevant document first.
    held_out = Evidence(evidence.retrieval, evidence.scores, {"q1": {"d1": 1}, "q2": {"d4": 1}}, Work(0, 1, 0, 0))
    rows = sorted(_rows(evidence), key=lambda row: (-row["ndcg@10"], row["latency_ms"]))
    space = SearchSpace(["base", "tuned"], ["base", "tuned"], [2, 3], "ndcg@10", ["ndcg@10"])
    choice = choose_backbone(rows, [Application(name="api", k_range=(2, 2))], "ndcg@10", _retriever_only(evidence))
    reported = score_reported(reported_assignments(choice, rows, space), evidence, held_out, ["ndcg@10"])
    outcome = SearchOutcome(
        recipe="hand",
        space=space,
        rows=rows,
        retriever_only=_retriever_only(evidence),
        recall_curves={"base": {1: 0.0, 3: 1.0}, "tuned": {1: 0.5, 3: 1.0}},
        choice=choice,
        checkpoints={"retriever": {"base": "r0", "tuned": "r1"}, "reranker": {"base": "s0", "tuned": "s1"}},
        work=Work(0, 3, 0, 0),
        release=None,
        choice_split="selection",
        eval_split="dev",
        reported=reported,
        held_out_retriever_only=_retriever_only(held_out),
    )

    # tuned/tuned wins on the selection split; on dev base/base would have (1.0), and the report says so.
    assert (choice.retriever, choice.reranker) == ("tuned", "tuned")
    figures = {item.label: (item.chosen_on["ndcg@10"], item.held_out["ndcg@10"]) for item in reported}
    half = 1 / math.log2(3) / 2  # one query scores 0, the other has its relevant document second
    assert figures == pytest.approx({"chosen: api": (1.0, half), "base: api": (half, 1.0), "best uniform": (1.0, half)})
    summary = write_report(outcome, tmp_path / "report").read_text()
    assert "was made on split `selection`, carved out of the training split; split `dev` was only reported" in summary
    assert "optimistic" not in summary
    assert f"| chosen: api | tuned | tuned | 2 | 1 | True | 1.0000 | {half:.4f} | 43.0 |" in summary
    assert f"| base: api | base | base | 2 | 1 | True | {half:.4f} | 1.0000 | 22.0 |" in summary
    leaderboard = (tmp_path / "report" / "leaderboard.md").read_text()
    assert "Every assignment is scored on split `selection`; the last column is split `dev`" in leaderboard
    assert "| ndcg@10 | retriever_ms | reranker_ms | latency_ms | ndcg@10 on dev |" in leaderboard
    board = pq.read_table(tmp_path / "report" / "leaderboard.parquet").to_pylist()
    assert [row["held_out_ndcg@10"] for row in board if row["k"] == 2 and row["retriever"] == row["reranker"]] == [
        pytest.approx(half),
        1.0,
    ]
    lines = Selection(outcome, tmp_path / "report" / "report.md", "report-x").describe().splitlines()
    assert lines[1] == "chosen on split selection, reported on split dev"
    assert lines[3].startswith(
        f"  api: K=2 weight=1.0 top_n=2 rerank=True ndcg@10=1.0000 on selection, {half:.4f} on dev"
    )
