"""The metric names every layer shares: ``recall@20``, ``ndcg@10``, ``mrr@10``, ``precision@5``, ``map@100``.

A leaf module, so that a recipe can be checked without importing the evaluation stack (ranx, numba, faiss:
seconds to import) that computes the metrics (:mod:`backbone.evaluation.metrics`).
"""

from __future__ import annotations

import re

_METRIC = re.compile(r"^(recall|ndcg|mrr|precision|map)@([1-9][0-9]*)$")


def check_metric(metric: str) -> str:
    """Validate a metric name and return it.

    Args:
        metric: a name such as ``ndcg@10``: ``recall``, ``ndcg``, ``mrr``, ``precision`` or ``map``, ``@``, a cut-off.

    Raises:
        ValueError: the name is not of that form (the message lists the forms).

    Example:
        >>> check_metric("ndcg@10")
        'ndcg@10'
    """
    if not _METRIC.match(metric):
        raise ValueError(f"unknown metric {metric!r}; use recall@N, ndcg@N, mrr@N, precision@N or map@N")
    return metric
