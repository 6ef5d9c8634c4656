"""rerank with a counting toy scorer: each distinct pair scored once, depth and batch size respected; top_k."""

from __future__ import annotations

import numpy as np
import pytest

from backbone.errors import BackboneError
from backbone.evaluation import rerank, top_k

QUERY_TEXTS = {"q1": "contract law", "q2": "marriage", "q3": "contract law"}  # q3 repeats q1's text
DOC_TEXTS = {"d1": "contract", "d2": "marriage law", "d3": "contract law", "d4": "inheritance", "d5": "contract"}
RUN = {
    "q1": {"d1": 0.9, "d2": 0.8, "d3": 0.7, "d4": 0.6},
    "q2": {"d2": 0.5, "d4": 0.4, "d5": 0.3},
    "q3": {"d3": 0.9, "d1": 0.8, "d5": 0.7},  # d5 has d1's text
}


class WordOverlap:
    """Scores a pair by the words query and passage share, and records every batch it is given."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[str, str]]] = []

    def __call__(self, queries: list[str], passages: list[str]) -> np.ndarray:
        self.batches.append(list(zip(queries, passages, strict=True)))
        return np.array([len(set(q.split()) & set(p.split())) for q, p in zip(queries, passages, strict=True)])

    @property
    def pairs(self) -> list[tuple[str, str]]:
        return [pair for batch in self.batches for pair in batch]


def test_rerank_rescores_the_top_depth_candidates() -> None:
    scorer = WordOverlap()
    reranked = rerank(RUN, scorer, QUERY_TEXTS, DOC_TEXTS, depth=3)
    assert reranked == {
        "q1": {"d1": 1.0, "d2": 1.0, "d3": 2.0},  # d4 is beyond the depth
        "q2": {"d2": 1.0, "d4": 0.0, "d5": 0.0},
        "q3": {"d3": 2.0, "d1": 1.0, "d5": 1.0},
    }
    assert all(isinstance(score, float) for docs in reranked.values() for score in docs.values())
    assert list(reranked["q1"]) == ["d3", "d1", "d2"]  # new rank order, ties by document id


def test_each_distinct_pair_is_scored_once() -> None:
    scorer = WordOverlap()
    rerank(RUN, scorer, QUERY_TEXTS, DOC_TEXTS, depth=3, batch_size=2)
    # q1's 3 pairs, q2's 3, and nothing new for q3: same query text, and d5 reads like d1.
    assert len(scorer.pairs) == len(set(scorer.pairs)) == 6
    assert ("contract law", "inheritance") not in scorer.pairs  # q1's d4 is beyond the depth
    assert [len(batch) for batch in scorer.batches] == [2, 2, 2]


def test_depth_one_scores_only_the_first_candidate() -> None:
    scorer = WordOverlap()
    assert rerank(RUN, scorer, QUERY_TEXTS, DOC_TEXTS, depth=1) == {
        "q1": {"d1": 1.0},
        "q2": {"d2": 1.0},
        "q3": {"d3": 2.0},
    }


def test_missing_text_is_an_error() -> None:
    with pytest.raises(BackboneError, match="no text for document 'd4'"):
        rerank(RUN, WordOverlap(), QUERY_TEXTS, {k: v for k, v in DOC_TEXTS.items() if k != "d4"}, depth=4)
    with pytest.raises(BackboneError, match="no text for query 'q2'"):
        rerank(RUN, WordOverlap(), {"q1": "x", "q3": "y"}, DOC_TEXTS, depth=4)


def test_score_fn_must_return_one_score_per_pair() -> None:
    with pytest.raises(BackboneError, match=r"score_fn returned shape \(1,\) for 2 pairs"):
        rerank(RUN, lambda queries, passages: np.zeros(1), QUERY_TEXTS, DOC_TEXTS, depth=2, batch_size=2)


@pytest.mark.parametrize(("depth", "batch_size", "message"), [(0, 4, "k must be"), (3, 0, "batch_size must be")])
def test_bad_depth_or_batch_size_is_an_error(depth: int, batch_size: int, message: str) -> None:
    with pytest.raises(BackboneError, match=message):
        rerank(RUN, WordOverlap(), QUERY_TEXTS, DOC_TEXTS, depth=depth, batch_size=batch_size)


def test_top_k_ranks_by_score_then_doc_id() -> None:
    run = {"q1": {"b": 0.5, "c": 0.9, "a": 0.5}, "q2": {"x": 1.0}, "q3": {}}
    assert top_k(run, 2) == {"q1": {"c": 0.9, "a": 0.5}, "q2": {"x": 1.0}, "q3": {}}
    assert list(top_k(run, 2)["q1"]) == ["c", "a"]
