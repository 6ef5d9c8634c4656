"""Retrieve then rerank: the steps every search takes, shared by the gateway and the benchmarks' in-process search."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backbone.evaluation import interpolate
from backbone.serving.schemas import SearchHit


@dataclass(frozen=True)
class Candidate:
    """A document the retriever found for a query."""

    doc_id: str
    title: str
    text: str
    score: float


def ranked_hits(
    candidates: list[Candidate], rerank_scores: np.ndarray | None, top_n: int, weight: float = 1.0
) -> list[SearchHit]:
    """The ``top_n`` best candidates: by the interpolated score when reranked, else in the retriever's order.

    The order is :func:`backbone.evaluation.interpolate`'s, the very function the search scored the
    application's weight with: ``weight`` times the reranker's min-max normalised logit plus ``1 - weight`` times
    the retriever's, ties by document id.

    Args:
        candidates: the retriever's candidates, best first.
        rerank_scores: the reranker's logit of each candidate, or ``None`` when it did not score.
        top_n: results wanted.
        weight: the application's interpolation weight (1: the reranker's order, 0: the retriever's).

    Example:
        >>> hits = ranked_hits([Candidate("a", "", "x", 0.9), Candidate("b", "", "y", 0.8)], np.array([0.1, 2.0]), 1)
        >>> hits[0].doc_id, hits[0].score, hits[0].reranker_score
        ('b', 1.0, 2.0)
    """
    by_id = {candidate.doc_id: candidate for candidate in candidates}
    if rerank_scores is None:
        return [_hit(rank, by_id[c.doc_id], c.score, None) for rank, c in enumerate(candidates[:top_n], 1)]
    logits = dict(zip(by_id, rerank_scores.astype(np.float64).tolist(), strict=True))
    combined = interpolate({doc: c.score for doc, c in by_id.items()}, logits, weight)
    return [
        _hit(rank, by_id[doc], score, logits[doc])
        for rank, (doc, score) in enumerate(list(combined.items())[:top_n], 1)
    ]


def _hit(rank: int, candidate: Candidate, score: float, reranker_score: float | None) -> SearchHit:
    return SearchHit(
        rank=rank,
        doc_id=candidate.doc_id,
        title=candidate.title,
        text=candidate.text,
        score=float(score),
        retriever_score=candidate.score,
        reranker_score=reranker_score,
    )
