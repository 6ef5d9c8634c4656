"""Rerank the top candidates of a run with a pairwise scorer, such as a cross-encoder."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from backbone.errors import BackboneError
from backbone.evaluation.ranking import Run, ranking, top_k

ScoreFn = Callable[[list[str], list[str]], np.ndarray]
"""Scores a batch of pairs: ``score_fn(queries, passages)`` -> one score per pair, higher is more relevant."""


def rerank(
    run: Run,
    score_fn: ScoreFn,
    query_texts: dict[str, str],
    doc_texts: dict[str, str],
    depth: int,
    batch_size: int = 64,
) -> Run:
    """Rescore the first ``depth`` documents of each query of ``run`` with ``score_fn``.

    Each distinct (query text, passage text) pair is scored once, however many query or document ids
    share those texts; pairs go to ``score_fn`` in batches of ``batch_size``, in the order of the run.

    Args:
        run: the candidates: query id -> document id -> first-stage score.
        score_fn: ``score_fn(queries, passages)`` -> array of one score per pair.
        query_texts: query id -> the text ``score_fn`` sees.
        doc_texts: document id -> the passage ``score_fn`` sees (title and text as the model expects).
        depth: candidates per query to rescore (in :func:`~backbone.evaluation.ranking.ranking` order);
            the others are dropped.
        batch_size: pairs per call of ``score_fn``.

    Returns:
        query id -> document id -> ``score_fn`` score, for the first ``depth`` documents of each query, in
        their new rank order.

    Raises:
        BackboneError: a query or document without text, ``depth`` or ``batch_size`` below 1, or a
            ``score_fn`` that returns other than one score per pair.

    Example:
        >>> overlap = lambda queries, passages: np.array([len(set(q) & set(p)) for q, p in zip(queries, passages)])
        >>> rerank({"q1": {"d1": 0.9, "d2": 0.1}}, overlap, {"q1": "abc"}, {"d1": "xyz", "d2": "cab"}, depth=2)
        {'q1': {'d2': 3.0, 'd1': 0.0}}
    """
    if batch_size < 1:
        raise BackboneError(f"batch_size must be at least 1, got {batch_size}")
    candidates = top_k(run, depth)
    # query id -> document id -> the (query, passage) pair score_fn sees.
    texts: dict[str, dict[str, tuple[str, str]]] = {}
    for query_id, docs in candidates.items():
        query = _text(query_texts, query_id, "query")
        texts[query_id] = {doc_id: (query, _text(doc_texts, doc_id, "document")) for doc_id in docs}
    pairs = list(dict.fromkeys(pair for docs in texts.values() for pair in docs.values()))
    scores: dict[tuple[str, str], float] = {}
    for start in range(0, len(pairs), batch_size):
        batch = pairs[start : start + batch_size]
        batch_scores = np.asarray(score_fn([query for query, _ in batch], [passage for _, passage in batch]))
        if batch_scores.shape != (len(batch),):
            raise BackboneError(f"score_fn returned shape {batch_scores.shape} for {len(batch)} pairs")
        scores.update(zip(batch, batch_scores.astype(np.float64).tolist(), strict=True))
    return {
        query_id: dict(ranking({doc_id: scores[pair] for doc_id, pair in docs.items()}))
        for query_id, docs in texts.items()
    }


def _text(texts: dict[str, str], key: str, what: str) -> str:
    if key not in texts:
        raise BackboneError(f"no text for {what} {key!r}")
    return texts[key]
