"""Runs and qrels, and the one order every part of evaluation ranks a run's documents in.

A run maps each query id to its retrieved documents and their scores (higher is better); qrels map each
query id to its judged documents and their grades (> 0 is relevant). Scores tie often (BM25 on short
queries, rerankers that saturate), so ranking breaks ties by document id: the metrics, the written run
files and every cut to the top k then agree on one order, whatever the order of the dictionaries.
"""

from __future__ import annotations

from typing import TypeAlias

from backbone.errors import BackboneError

Run: TypeAlias = dict[str, dict[str, float]]
Qrels: TypeAlias = dict[str, dict[str, int]]


def ranking(results: dict[str, float]) -> list[tuple[str, float]]:
    """One query's documents in rank order: score descending, then document id ascending.

    Args:
        results: document id -> score, for one query of a run.

    Example:
        >>> ranking({"d2": 0.5, "d3": 0.9, "d1": 0.5})
        [('d3', 0.9), ('d1', 0.5), ('d2', 0.5)]
    """
    return sorted(results.items(), key=lambda item: (-item[1], item[0]))


def top_k(run: Run, k: int) -> Run:
    """The first ``k`` documents of each query of ``run`` in :func:`ranking` order; queries keep their order.

    Args:
        run: query id -> document id -> score.
        k: documents to keep per query (at least 1); a query with fewer keeps all of them.

    Example:
        >>> top_k({"q1": {"d1": 0.2, "d2": 0.7, "d3": 0.5}}, 2)
        {'q1': {'d2': 0.7, 'd3': 0.5}}
    """
    if k < 1:
        raise BackboneError(f"k must be at least 1, got {k}")
    return {query_id: dict(ranking(results)[:k]) for query_id, results in run.items()}
