"""Retrieval metrics (recall, nDCG, MRR, precision, MAP at a cut-off) computed by ranx.

Names are the recipe's (``recall@20``, ``ndcg@10``, ``mrr@10``, ``precision@5``, ``map@100``), each computed
by ranx's metric function of that name (``mrr`` is ``reciprocal_rank``, ``map`` is ``average_precision``)
with grade 1 as the relevance threshold. Per query, with ``R`` the relevant documents (grade > 0) and the run
cut to its first ``k`` documents in :func:`~backbone.evaluation.ranking.ranking` order:

- ``recall@k``: relevant documents in the top ``k`` / ``|R|``.
- ``precision@k``: relevant documents in the top ``k`` / ``k``, even when fewer than ``k`` were retrieved.
- ``mrr@k``: 1 / rank of the first relevant document if it is in the top ``k``, else 0 (ranx's docstring
  says ``k`` is ignored, but its code cuts at ``k``; the tests pin the cut).
- ``map@k``: the sum of precision@rank over the relevant documents in the top ``k``, divided by ``|R|``
  (not by ``min(k, |R|)``).
- ``ndcg@k``: Järvelin & Kekäläinen's nDCG with LINEAR gains: DCG = sum of grade / log2(rank + 1) over the
  top ``k``, divided by the DCG of the ideal ordering of the judged grades cut at ``k``. This is ranx's
  ``ndcg`` and trec_eval's ``ndcg_cut`` (as BEIR reports it); the ``2^grade - 1`` gains of Burges et al.
  are ranx's ``ndcg_burges``, which is not used here. With binary grades (STARD) the two agree.

Every query of the qrels counts: a query the run has no results for scores 0 on every metric instead of
being dropped (ranx would refuse the mismatch), and queries of the run that the qrels lack are ignored.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numba.typed import List as TypedList
from ranx import metrics as ranx_metrics

from backbone.errors import BackboneError
from backbone.evaluation.ranking import Qrels, Run, ranking
from backbone.metric_names import check_metric

# Our metric names and the ranx functions that compute them; each takes (qrels, run, k, rel_lvl).
_RANX: dict[str, Callable[..., np.ndarray]] = {
    "recall": ranx_metrics.recall,
    "precision": ranx_metrics.precision,
    "mrr": ranx_metrics.reciprocal_rank,
    "map": ranx_metrics.average_precision,
    "ndcg": ranx_metrics.ndcg,
}
# Grades at or above this count as relevant.
_RELEVANT_GRADE = 1


def evaluate(qrels: Qrels, run: Run, metrics: list[str]) -> dict[str, float]:
    """The mean of each metric over the queries of ``qrels``.

    Args:
        qrels: query id -> document id -> grade; every query is scored, including those with no results.
        run: query id -> document id -> score (higher is better).
        metrics: metric names such as ``ndcg@10`` (see the module docstring for their exact definitions).

    Raises:
        BackboneError: an unknown metric name, or qrels with no query.

    Example:
        >>> evaluate({"q1": {"d1": 1}, "q2": {"d2": 1}}, {"q1": {"d0": 0.9, "d1": 0.8}}, ["mrr@10", "recall@1"])
        {'mrr@10': 0.25, 'recall@1': 0.0}
    """
    return {metric: float(np.mean(scores)) for metric, scores in _scores(qrels, run, metrics).items()}


def evaluate_per_query(qrels: Qrels, run: Run, metrics: list[str]) -> dict[str, dict[str, float]]:
    """Each metric for each query of ``qrels``, e.g. for a paired significance test between two runs.

    Args:
        qrels: query id -> document id -> grade; every query is scored, including those with no results.
        run: query id -> document id -> score (higher is better).
        metrics: metric names such as ``ndcg@10``.

    Returns:
        metric -> query id -> value, with the queries in the order of ``qrels``.

    Example:
        >>> evaluate_per_query({"q1": {"d1": 1}, "q2": {"d2": 1}}, {"q1": {"d1": 0.8}}, ["mrr@10"])
        {'mrr@10': {'q1': 1.0, 'q2': 0.0}}
    """
    return {
        metric: dict(zip(qrels, scores.tolist(), strict=True))
        for metric, scores in _scores(qrels, run, metrics).items()
    }


def deepest_cutoff(metrics: list[str]) -> int:
    """How many results per query the metrics read: the largest ``@k`` among them.

    Example:
        >>> deepest_cutoff(["recall@20", "ndcg@10", "recall@100"])
        100
    """
    return max(int(_checked(metric).split("@")[1]) for metric in metrics)


def _scores(qrels: Qrels, run: Run, metrics: list[str]) -> dict[str, np.ndarray]:
    names = list(dict.fromkeys(_checked(metric) for metric in metrics))
    if not names:
        raise BackboneError("name at least one metric")
    if not qrels:
        raise BackboneError("qrels have no query to evaluate")
    judged, retrieved = _typed_lists(qrels, run)
    # ranx compiles its metrics with numba on first use: about a minute on a fresh install, then about a
    # second per process from numba's on-disk cache, and milliseconds per call after that. The metric
    # functions on typed lists skip ranx.evaluate: its Qrels/Run dictionaries cost ten times as long to load
    # from that cache, and it raises KeyError for a single metric per query (ranx 0.3.21).
    scores = {}
    for name in names:
        metric, cutoff = name.split("@")
        scores[name] = _RANX[metric](judged, retrieved, int(cutoff), _RELEVANT_GRADE)
    return scores


def _checked(metric: str) -> str:
    try:
        return check_metric(metric)
    except ValueError as err:
        raise BackboneError(str(err)) from None


def _typed_lists(qrels: Qrels, run: Run) -> tuple[TypedList, TypedList]:
    """ranx's input: per query of ``qrels``, an ``(n, 2)`` array of (document number, grade or score).

    Documents are numbered here (exact in float64, unlike ranx's own float of Python's 64-bit hash).
    Judgments go in grade order, which ranx's ideal DCG relies on; results go in :func:`ranking` order,
    which ranx takes as given, so ties rank by document id; a query with no results gets an empty array.
    """
    numbers: dict[str, int] = {}

    def rows(pairs: list[tuple[str, float]]) -> np.ndarray:
        numbered = [(numbers.setdefault(doc_id, len(numbers)), value) for doc_id, value in pairs]
        return np.array(numbered, dtype=np.float64).reshape(-1, 2)

    judged = [rows(sorted(grades.items(), key=lambda item: -item[1])) for grades in qrels.values()]
    retrieved = [rows(ranking(run.get(query_id, {}))) for query_id in qrels]
    return TypedList(judged), TypedList(retrieved)
