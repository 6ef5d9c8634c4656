"""Mining rules: which examples a stage keeps, and which negatives it picks, from a model's ranking."""

from __future__ import annotations

import random

import numpy as np

from backbone.recipes import Negatives, QuerySelection
from backbone.training.negatives import QueryRanking, choose_negatives, in_batch_negatives, keeps_query
from backbone.training.ranking import candidate_rankings, dense_rankings
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
    assert choose_negatives(RANKING, "p1", spec, CORPUS, random.Random(0)) == ["n3", "n4"]


def test_negatives_respect_the_rank_range() -> None:
    spec = Negatives(policy="mined", count=2, rank_range=(5, 6), margin=0.0, random_fraction=0.0)
    assert choose_negatives(RANKING, "p1", spec, CORPUS, random.Random(0)) == ["n4", "n5"]


def test_random_share_and_shortfall_are_filled_from_the_corpus() -> None:
    spec = Negatives(policy="mined", count=4, rank_range=(1, 6), margin=0.05, random_fraction=0.5)
    chosen = choose_negatives(RANKING, "p1", spec, CORPUS, random.Random(0))
    assert chosen[:2] == ["n3", "n4"] and len(chosen) == 4 and len(set(chosen)) == 4
    assert "p1" not in chosen
    short = Negatives(policy="mined", count=5, rank_range=(1, 6), margin=0.05, random_fraction=0.0)
    filled = choose_negatives(RANKING, "p1", short, CORPUS, random.Random(0))
    assert filled[:3] == ["n3", "n4", "n5"] and len(filled) == 5 and "p1" not in filled
    assert choose_negatives(RANKING, "p1", spec, CORPUS, random.Random(7)) == choose_negatives(
        RANKING, "p1", spec, CORPUS, random.Random(7)
    )


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
