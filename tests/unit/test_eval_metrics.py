"""evaluate / evaluate_per_query against values worked out by hand from the metric definitions."""

from __future__ import annotations

import time
from math import log2

import numpy as np
import pytest
import ranx

from backbone.errors import BackboneError
from backbone.evaluation import deepest_cutoff, evaluate, evaluate_per_query

# q1: graded, two of three relevant retrieved at ranks 2 and 3. q2: the relevant document ties with another
# (d4 ranks first by id). q3: no results at all. q4: results, none relevant. q9: not judged, so ignored.
QRELS = {
    "q1": {"d1": 2, "d2": 1, "d3": 1},
    "q2": {"d4": 1},
    "q3": {"d5": 1},
    "q4": {"d6": 1},
}
RUN = {
    "q1": {"d9": 0.9, "d1": 0.8, "d2": 0.7, "d8": 0.6},
    "q2": {"d7": 0.5, "d4": 0.5},
    "q4": {"d7": 1.0, "d8": 0.5},
    "q9": {"d1": 1.0},
}

# nDCG@3 of q1 with linear gains: DCG = 2/log2(3) + 1/log2(4); ideal order 2, 1, 1.
Q1_NDCG3 = (2 / log2(3) + 1 / log2(4)) / (2 / log2(2) + 1 / log2(3) + 1 / log2(4))
# The same with 2^g - 1 gains (Burges): the value ranx's ndcg must NOT give.
Q1_NDCG3_EXPONENTIAL = (3 / log2(3) + 1 / log2(4)) / (3 / log2(2) + 1 / log2(3) + 1 / log2(4))

PER_QUERY = {
    "recall@2": {"q1": 1 / 3, "q2": 1.0, "q3": 0.0, "q4": 0.0},
    "recall@3": {"q1": 2 / 3, "q2": 1.0, "q3": 0.0, "q4": 0.0},
    "mrr@10": {"q1": 1 / 2, "q2": 1.0, "q3": 0.0, "q4": 0.0},
    "mrr@1": {"q1": 0.0, "q2": 1.0, "q3": 0.0, "q4": 0.0},
    # hits / k, even though q1 and q2 retrieved fewer than 5.
    "precision@5": {"q1": 2 / 5, "q2": 1 / 5, "q3": 0.0, "q4": 0.0},
    # (P@2 + P@3) / |R| for q1.
    "map@10": {"q1": (1 / 2 + 2 / 3) / 3, "q2": 1.0, "q3": 0.0, "q4": 0.0},
    "ndcg@3": {"q1": Q1_NDCG3, "q2": 1.0, "q3": 0.0, "q4": 0.0},
}


def test_evaluate_per_query_matches_hand_computed_values() -> None:
    scores = evaluate_per_query(QRELS, RUN, list(PER_QUERY))
    assert list(scores) == list(PER_QUERY)
    for metric, expected in PER_QUERY.items():
        assert list(scores[metric]) == list(QRELS), metric
        assert scores[metric] == pytest.approx(expected), metric


def test_evaluate_is_the_mean_over_every_judged_query() -> None:
    means = evaluate(QRELS, RUN, list(PER_QUERY))
    assert means == pytest.approx({metric: sum(values.values()) / 4 for metric, values in PER_QUERY.items()})
    assert means["mrr@10"] == pytest.approx(0.375)
    assert means["recall@3"] == pytest.approx(5 / 12)
    assert all(isinstance(value, float) for value in means.values())


def test_ndcg_uses_linear_gains() -> None:
    ndcg = evaluate_per_query(QRELS, RUN, ["ndcg@3"])["ndcg@3"]["q1"]
    assert ndcg == pytest.approx(Q1_NDCG3)
    assert ndcg != pytest.approx(Q1_NDCG3_EXPONENTIAL)


def test_mrr_cuts_at_k() -> None:
    qrels = {"q": {"d3": 1}}
    run = {"q": {"d1": 3.0, "d2": 2.0, "d3": 1.0}}
    assert evaluate(qrels, run, ["mrr@2", "mrr@3"]) == pytest.approx({"mrr@2": 0.0, "mrr@3": 1 / 3})


def test_single_and_repeated_metric_names() -> None:
    assert evaluate_per_query(QRELS, RUN, ["mrr@10", "mrr@10"]) == {"mrr@10": pytest.approx(PER_QUERY["mrr@10"])}


@pytest.mark.parametrize("metric", ["ndcg", "hits@10", "recall@0", "MRR@10", "ndcg_burges@10"])
def test_unknown_metric_is_an_error(metric: str) -> None:
    with pytest.raises(BackboneError, match="unknown metric"):
        evaluate(QRELS, RUN, [metric])


def test_nothing_to_evaluate_is_an_error() -> None:
    with pytest.raises(BackboneError, match="no query"):
        evaluate({}, RUN, ["mrr@10"])
    with pytest.raises(BackboneError, match="at least one metric"):
        evaluate(QRELS, RUN, [])


def test_repeated_calls_are_fast() -> None:
    qrels = {f"q{query}": {f"d{query}": 1} for query in range(1000)}
    run = {f"q{query}": {f"d{query + doc}": 1.0 / (doc + 1) for doc in range(100)} for query in range(1000)}
    metrics = ["recall@100", "ndcg@10", "mrr@10", "map@100", "precision@5"]
    evaluate(qrels, run, metrics)  # compiles, or loads numba's cache
    start = time.perf_counter()
    assert evaluate(qrels, run, metrics)["mrr@10"] == pytest.approx(1.0)
    assert time.perf_counter() - start < 2.0


def test_deepest_cutoff_reads_the_largest_k() -> None:
    assert deepest_cutoff(["recall@20", "ndcg@10", "recall@100", "mrr@10"]) == 100
    with pytest.raises(BackboneError):
        deepest_cutoff(["bleu@4"])


def test_the_figures_equal_ranx_evaluate_on_runs_without_ties() -> None:
    """metrics.py calls ranx's metric functions directly (docs/architecture.md says why); its public evaluate agrees."""
    rng = np.random.default_rng(0)
    qrels = {f"q{i}": {f"d{j}": int(rng.integers(1, 3)) for j in rng.choice(50, 3, replace=False)} for i in range(20)}
    scored = [zip(rng.choice(50, 30, replace=False), rng.permutation(30), strict=True) for _ in range(20)]
    run = {f"q{i}": {f"d{j}": float(score) for j, score in pairs} for i, pairs in enumerate(scored)}
    metrics = ["ndcg@10", "mrr@10", "recall@20", "precision@5", "map@10"]
    assert evaluate(qrels, run, metrics) == pytest.approx(ranx.evaluate(ranx.Qrels(qrels), ranx.Run(run), metrics))
