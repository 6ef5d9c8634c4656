"""The current model's ranking of each training query: what mining and query selection read."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from backbone.training.negatives import QueryRanking

_QUERY_CHUNK = 256  # bounds the query x corpus score matrix held at once (256 x 55,605 floats = 57 MB)


def dense_rankings(
    query_embeddings: np.ndarray,
    corpus_embeddings: np.ndarray,
    corpus_ids: list[str],
    relevant: list[list[str]],
    depth: int,
) -> list[QueryRanking]:
    """Rank the whole corpus for each query by inner product of L2-normalised embeddings (exact search).

    Args:
        query_embeddings: one row per query.
        corpus_embeddings: one row per document, in ``corpus_ids`` order.
        corpus_ids: the documents' ids.
        relevant: each query's judged relevant documents (at least one, all in the corpus).
        depth: how many best documents to keep per query.

    Example:
        >>> rankings = dense_rankings(np.eye(2), np.eye(2), ["a", "b"], [["b"]], depth=2)  # doctest: +SKIP
    """
    position = {doc: index for index, doc in enumerate(corpus_ids)}
    depth = min(depth, len(corpus_ids))
    rankings: list[QueryRanking] = []
    for start in range(0, len(query_embeddings), _QUERY_CHUNK):
        scores = query_embeddings[start : start + _QUERY_CHUNK] @ corpus_embeddings.T
        for row, docs in zip(scores, relevant[start : start + _QUERY_CHUNK], strict=True):
            best = np.argpartition(-row, depth - 1)[:depth]
            best = best[np.argsort(-row[best], kind="stable")]
            relevant_scores = {doc: float(row[position[doc]]) for doc in docs}
            rankings.append(
                QueryRanking(
                    top=[(corpus_ids[index], float(row[index])) for index in best],
                    relevant_scores=relevant_scores,
                    best_relevant_rank=1 + int((row > max(relevant_scores.values())).sum()),
                )
            )
    return rankings


def candidate_rankings(
    candidates: list[list[str]],
    relevant: list[list[str]],
    score_pairs: Callable[[list[tuple[int, str]]], np.ndarray],
) -> list[QueryRanking]:
    """Rank each query's candidates (plus its relevant documents) by a pair scorer such as a cross-encoder.

    Args:
        candidates: each query's candidate documents from a first-stage retriever.
        relevant: each query's judged relevant documents.
        score_pairs: scores ``(query index, doc id)`` pairs, one score per pair.

    Example:
        >>> rankings = candidate_rankings([["a", "b"]], [["b"]], lambda pairs: np.array([0.1, 0.9]))
        >>> rankings[0].top, rankings[0].best_relevant_rank
        ([('b', 0.9), ('a', 0.1)], 1)
    """
    pools = [list(dict.fromkeys([*docs, *rel])) for docs, rel in zip(candidates, relevant, strict=True)]
    pairs = [(query, doc) for query, pool in enumerate(pools) for doc in pool]
    scores = iter(score_pairs(pairs).tolist())
    rankings = []
    for pool, docs in zip(pools, relevant, strict=True):
        scored = sorted(zip(pool, (next(scores) for _ in pool), strict=True), key=lambda pair: -pair[1])
        relevant_scores = {doc: score for doc, score in scored if doc in docs}
        rank = next(index for index, (doc, _) in enumerate(scored, 1) if doc in relevant_scores)
        rankings.append(QueryRanking(top=scored, relevant_scores=relevant_scores, best_relevant_rank=rank))
    return rankings
