"""Retrieve then rerank: the steps every search takes, shared by the gateway and the in-process pipeline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from backbone.serving.config import Batching
from backbone.serving.schemas import SearchHit


@dataclass(frozen=True)
class Candidate:
    """A document the retriever found for a query."""

    doc_id: str
    title: str
    text: str
    score: float


def ranked_hits(candidates: list[Candidate], rerank_scores: np.ndarray | None, top_n: int) -> list[SearchHit]:
    """The ``top_n`` best candidates: ordered by ``rerank_scores`` when given, else in the retriever's order.

    Args:
        candidates: the retriever's candidates, best first.
        rerank_scores: the reranker's logit of each candidate, or ``None`` when it did not score.
        top_n: results wanted.

    Example:
        >>> hits = ranked_hits([Candidate("a", "", "x", 0.9), Candidate("b", "", "y", 0.8)], np.array([0.1, 2.0]), 1)
        >>> hits[0].doc_id, hits[0].score
        ('b', 2.0)
    """
    scores = [candidate.score for candidate in candidates] if rerank_scores is None else rerank_scores.tolist()
    # A stable sort keeps the retriever's order among equal reranker scores.
    order = sorted(range(len(candidates)), key=lambda position: -scores[position])[:top_n]
    return [
        SearchHit(
            rank=rank,
            doc_id=candidates[position].doc_id,
            title=candidates[position].title,
            text=candidates[position].text,
            score=float(scores[position]),
            retriever_score=candidates[position].score,
        )
        for rank, position in enumerate(order, 1)
    ]


def configure_batching(batching: Batching, *batched_methods: Callable[..., Any]) -> None:
    """Size the ``@serve.batch`` queues of ``batched_methods`` by ``batching``.

    Example:
        >>> configure_batching(Batching(max_batch_size=32), self.search, self.embed)  # doctest: +SKIP
    """
    for method in batched_methods:
        method.set_max_batch_size(batching.max_batch_size)
        method.set_batch_wait_timeout_s(batching.batch_wait_timeout_s)
