"""The end-to-end score of a reranked candidate: the reranker's and the retriever's scores interpolated.

Both scores are min-max normalised per query over the K candidates, then mixed::

    score = weight * norm(reranker score) + (1 - weight) * norm(retriever score)

so ``weight=1`` is the reranker's order and ``weight=0`` the retriever's, whatever the two scores' scales. A
query whose candidates all have the same score of one component normalises them all to 0. Ties are broken as
everywhere in evaluation, by document id (:func:`~backbone.evaluation.ranking.ranking`). Selection and serving
both rank with :func:`interpolate`, so the order the search scored is the order the gateway answers.

The retriever's order is :func:`ranking`'s of its scores (ties by document id), the order the search evaluates a
retriever run in; the gateway's candidates may come from the index with equal scores in another order, and are then
put in this one. Why weight 0 gives the retriever's order exactly: ``norm`` is non-decreasing under IEEE rounding,
``1.0 * x`` and ``x + 0.0 * y`` are exact, and equal retriever scores are ordered by document id in both orders;
distinct scores stay distinct after normalising because the models' scores are float32 values, far coarser than
float64.
"""

from __future__ import annotations

from collections.abc import Mapping

from backbone.errors import BackboneError
from backbone.evaluation.ranking import ranking


def interpolate(retriever: Mapping[str, float], reranker: Mapping[str, float], weight: float) -> dict[str, float]:
    """One query's candidates with their interpolated scores, in rank order (score descending, then document id).

    Args:
        retriever: document id -> the retriever's score, for the query's K candidates.
        reranker: document id -> the reranker's score, for the same documents.
        weight: the reranker's share in [0, 1]; 1 is the reranker's order, 0 the retriever's.

    Raises:
        BackboneError: a weight outside [0, 1], or the two mappings name different documents.

    Example:
        >>> retriever, reranker = {"d1": 1.0, "d2": 0.5, "d3": 0.0}, {"d1": 0.0, "d2": 4.0, "d3": 2.0}
        >>> interpolate(retriever, reranker, 0.5)
        {'d2': 0.75, 'd1': 0.5, 'd3': 0.25}
        >>> list(interpolate(retriever, reranker, 0.0)), list(interpolate(retriever, reranker, 1.0))
        (['d1', 'd2', 'd3'], ['d2', 'd3', 'd1'])
    """
    if not 0.0 <= weight <= 1.0:
        raise BackboneError(f"interpolation weight must be in [0, 1], got {weight}")
    if retriever.keys() != reranker.keys():
        raise BackboneError("the retriever's and the reranker's scores must be of the same documents")
    dense, cross = _normalised(retriever), _normalised(reranker)
    return dict(ranking({doc: weight * cross[doc] + (1.0 - weight) * dense[doc] for doc in retriever}))


def _normalised(scores: Mapping[str, float]) -> dict[str, float]:
    """Min-max normalisation to [0, 1]; all equal (or a single candidate): all 0."""
    if not scores:
        return {}
    low, high = min(scores.values()), max(scores.values())
    spread = high - low
    return {doc: (score - low) / spread if spread > 0 else 0.0 for doc, score in scores.items()}
