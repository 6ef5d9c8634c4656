"""Mining rules: which examples a stage keeps, and which negatives it picks, from a model's ranking."""

from __future__ import annotations

import random

import numpy as np
import pytest

from backbone.recipes import Negatives, QuerySelection
from backbone.training.negatives import (
    NegativeChoice,
    NegativeCounts,
    QueryRanking,
    choose_negatives,
    false_negative_ceiling,
    in_batch_negatives,
    keeps_query,
)
from backbone.training.query_rankings import candidate_rankings, dense_rankings
from backbone.training.sharding import sharded_map

RANKING = QueryRanking(
    top=[("n1", 0.95), ("p1", 0.9), ("n2", 0.88), ("n3", 0.6), ("n4", 0.5), ("n5", 0.4)],
    relevant_scores={"p1": 0.9},
    best_relevant_rank=2,
)
CORPUS = ["p1", "n1", "n2", "n3", "n4", "n5", *[f"r{i}" for i in range(50)]]


def test_failing_queries_are_those_ranked_below_the_threshold() -> None:
    assert keeps_query(RANKING, "p1", QuerySelection(mode="failing", rank_threshold=1))
    assert not keeps_query(RANKING, "p1", QuerySelection(mode="failing", rank_threshold=2))
    assert keeps_query(RANKING, "p1", QuerySelection(mode="all"))


def test_ambiguous_queries_have_a_small_margin_or_several_relevant_documents() -> None:
    assert keeps_query(RANKING, "p1", QuerySelection(mode="ambiguous", margin=0.1))  # 0.9 - 0.95 < 0.1
    clear = QueryRanking([("p1", 0.9), ("n1", 0.2)], {"p1": 0.9}, 1)
    assert not keeps_query(clear, "p1", QuerySelection(mode="ambiguous", margin=0.1))
    several = QueryRanking([("p1", 0.9), ("p2", 0.8), ("n1", 0.1)], {"p1": 0.9, "p2": 0.8}, 1)
    assert keeps_query(several, "p1", QuerySelection(mode="ambiguous", margin=0.1, min_relevant=2))


def test_negatives_skip_relevant_and_too_close_candidates() -> None:
    spec = Negatives(policy="mined", count=2, rank_range=(1, 6), margin=0.05, random_fraction=0.0)
    # n1 (0.95) and n2 (0.88) score above 0.9 - 0.05: likely false negatives; p1 is relevant.
    assert choose_negatives(RANKING, "p1", spec, CORPUS, random.Random(0)) == NegativeChoice(
        ["n3", "n4"], mined=2, dropped=2
    )


def test_negatives_respect_the_rank_range() -> None:
    spec = Negatives(policy="mined", count=2, rank_range=(5, 6), margin=0.0, random_fraction=0.0)
    assert choose_negatives(RANKING, "p1", spec, CORPUS, random.Random(0)).documents == ["n4", "n5"]


def test_random_share_and_shortfall_are_filled_from_the_corpus() -> None:
    spec = Negatives(policy="mined", count=4, rank_range=(1, 6), margin=0.05, random_fraction=0.5)
    choice = choose_negatives(RANKING, "p1", spec, CORPUS, random.Random(0))
    chosen = choice.documents
    assert chosen[:2] == ["n3", "n4"] and len(chosen) == 4 and len(set(chosen)) == 4
    assert "p1" not in chosen and (choice.mined, choice.dropped, choice.random) == (2, 2, 2)
    short = Negatives(policy="mined", count=5, rank_range=(1, 6), margin=0.05, random_fraction=0.0)
    filled = choose_negatives(RANKING, "p1", short, CORPUS, random.Random(0))
    assert filled.documents[:3] == ["n3", "n4", "n5"] and len(filled.documents) == 5 and "p1" not in filled.documents
    assert (filled.mined, filled.dropped, filled.random) == (3, 2, 2)
    assert choose_negatives(RANKING, "p1", spec, CORPUS, random.Random(7)) == choose_negatives(
        RANKING, "p1", spec, CORPUS, random.Random(7)
    )


# A failing query: its positive p1 is ranked 6th; the five candidates above it are the hard ones.
FAILING = QueryRanking(
    top=[("n1", 0.90), ("n2", 0.88), ("n3", 0.80), ("n4", 0.75), ("n5", 0.72), ("p1", 0.70), ("n6", 0.5)],
    relevant_scores={"p1": 0.70},
    best_relevant_rank=6,
)


def test_the_positive_reference_drops_every_hard_candidate_of_a_failing_query() -> None:
    spec = Negatives(policy="mined", count=3, rank_range=(1, 7), margin=0.05, random_fraction=0.0)
    choice = choose_negatives(FAILING, "p1", spec, CORPUS, random.Random(0))
    assert choice.documents[0] == "n6" and choice.mined == 1 and choice.dropped == 5 and choice.random == 2


def test_relative_margin_as_sentence_transformers_defines_it() -> None:
    spec = Negatives(policy="mined", count=2, rank_range=(1, 6), relative_margin=0.05, random_fraction=0.0)
    # 0.9 - |0.9| x 0.05 = 0.855: n1 (0.95) and n2 (0.88) are dropped; `margin` is not applied on top.
    assert false_negative_ceiling(RANKING, "p1", spec) == pytest.approx(0.855)
    assert choose_negatives(RANKING, "p1", spec, CORPUS, random.Random(0)) == NegativeChoice(
        ["n3", "n4"], mined=2, dropped=2
    )
    negative = QueryRanking([("n1", -1.0), ("n2", -2.05), ("p1", -2.0)], {"p1": -2.0}, 3)
    # A negative reference (a reranker's logit) moves the ceiling down, never up: -2 - 2 x 0.05 = -2.1.
    assert false_negative_ceiling(negative, "p1", spec) == pytest.approx(-2.1)


def test_the_best_reference_keeps_the_hard_candidates_of_a_failing_query() -> None:
    spec = Negatives(
        policy="mined", count=3, rank_range=(1, 7), relative_margin=0.05, margin_reference="best", random_fraction=0.0
    )
    # The reference is the top score 0.9: 0.9 - 0.045 = 0.855 drops n1 and n2 only; n3, n4, n5 are kept.
    assert choose_negatives(FAILING, "p1", spec, CORPUS, random.Random(0)) == NegativeChoice(
        ["n3", "n4", "n5"], mined=3, dropped=2
    )
    absolute = Negatives(policy="mined", count=3, rank_range=(1, 7), margin=0.05, margin_reference="best")
    assert false_negative_ceiling(FAILING, "p1", absolute) == pytest.approx(0.85)
    # Where the positive ranks first the best reference is the positive's: the same rule as before.
    positive_first = QueryRanking([("p1", 0.9), ("n1", 0.87), ("n2", 0.5)], {"p1": 0.9}, 1)
    assert false_negative_ceiling(positive_first, "p1", absolute) == false_negative_ceiling(
        positive_first, "p1", Negatives(policy="mined", count=3, margin=0.05)
    )


def test_counts_add_up_over_examples_and_epochs() -> None:
    choices = [NegativeChoice(["a", "b", "c"], mined=1, dropped=4), NegativeChoice(["d"], mined=1, dropped=0)]
    counts = NegativeCounts.of(choices)
    assert counts == NegativeCounts(mined=2, dropped=4, random=2)
    assert (counts + counts).metrics() == {"negatives_mined": 4, "negatives_dropped": 8, "negatives_random": 4}


def test_in_batch_negatives_for_a_cross_encoder() -> None:
    positives = ["a", "b", "c", "d"]
    relevant = [["a"], ["b", "c"], ["c"], ["d"]]
    assert in_batch_negatives(positives, relevant, 2) == [["b", "c"], ["d", "a"], ["d", "a"], ["a", "b"]]


def test_dense_rankings_are_exact() -> None:
    rng = np.random.default_rng(0)
    corpus = rng.normal(size=(30, 8)).astype(np.float32)
    queries = rng.normal(size=(3, 8)).astype(np.float32)
    ids = [f"d{i}" for i in range(30)]
    relevant = [["d3"], ["d7", "d8"], ["d29"]]
    rankings = dense_rankings(queries, corpus, ids, relevant, depth=5)
    scores = queries @ corpus.T
    for row, ranking, docs in zip(scores, rankings, relevant, strict=True):
        order = np.argsort(-row)
        assert [doc for doc, _ in ranking.top] == [ids[i] for i in order[:5]]
        best = min(int(np.where(order == ids.index(doc))[0][0]) for doc in docs) + 1
        assert ranking.best_relevant_rank == best
        assert ranking.relevant_scores == {doc: float(row[ids.index(doc)]) for doc in docs}


def test_candidate_rankings_score_candidates_and_relevant_documents() -> None:
    calls = []

    def score(pairs: list[tuple[int, str]]) -> np.ndarray:
        calls.append(pairs)
        return np.array([{"a": 0.1, "b": 0.7, "c": 0.3, "z": 0.5}[doc] for _, doc in pairs])

    rankings = candidate_rankings([["a", "b"], ["c"]], [["z"], ["c"]], score)
    assert len(calls) == 1
    assert rankings[0].top == [("b", 0.7), ("z", 0.5), ("a", 0.1)]
    assert rankings[0].best_relevant_rank == 2
    assert rankings[1].top == [("c", 0.3)] and rankings[1].best_relevant_rank == 1


def test_sharded_map_without_a_process_group_runs_once() -> None:
    assert sharded_map([1, 2, 3], lambda items: np.array(items) * 2).tolist() == [2, 4, 6]
