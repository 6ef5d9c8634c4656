"""The reranker's losses over a grid of scores: one row per query, its positive first, then its negatives.

Rows may hold fewer negatives than the widest one; ``valid`` marks the cells that hold a pair. With ``s`` the
reranker's logits of query i's list and ``t`` the retriever's inner products over the same list:

- ``bce``: mean over every pair of ``BCEWithLogits(s_ij, 1 if j is the positive else 0)``;
- ``listwise_ce``: mean over queries of ``-log softmax(s_i)[positive]``;
- ``distill_kl``: mean over queries of ``(1 - w) * KL(p_i || q_i) + w * -log q_i[positive]``, where
  ``p_i = softmax(t_i / T)`` (the teacher, temperature ``T``), ``q_i = softmax(s_i)`` and
  ``KL(p || q) = sum_j p_j (log p_j - log q_j)``; ``w`` is the stage's ``ce_weight``.

sentence-transformers' cross-encoder losses tokenize through ``model.preprocess``, which a DDP wrapper does not
have; each of these is a few torch calls, so they are written here (and checked against torch's own
``binary_cross_entropy_with_logits``, ``cross_entropy`` and ``kl_div`` in the tests).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor


def pointwise_bce(scores: Tensor, valid: Tensor) -> Tensor:
    """Binary cross-entropy of every pair: the first column is relevant, the others are not.

    Args:
        scores: ``(queries, width)`` logits (any value where not ``valid``).
        valid: ``(queries, width)`` booleans, the cells that hold a pair.

    Example:
        >>> round(float(pointwise_bce(torch.tensor([[0.0, 0.0]]), torch.tensor([[True, True]]))), 4)
        0.6931
    """
    labels = torch.zeros_like(scores)
    labels[:, 0] = 1.0
    return F.binary_cross_entropy_with_logits(scores[valid], labels[valid])


def listwise_ce(scores: Tensor, valid: Tensor) -> Tensor:
    """Softmax cross-entropy of each query's positive against its negatives.

    Example:
        >>> round(float(listwise_ce(torch.tensor([[0.0, 0.0]]), torch.tensor([[True, True]]))), 4)
        0.6931
    """
    return -_log_softmax(scores, valid)[:, 0].mean()


def distill_kl(scores: Tensor, teacher: Tensor, valid: Tensor, temperature: float, ce_weight: float = 0.0) -> Tensor:
    """Listwise KL divergence from the teacher's softmax to the reranker's, mixed with ``ce_weight`` of listwise CE.

    Args:
        scores: ``(queries, width)`` reranker logits.
        teacher: ``(queries, width)`` retriever scores (inner products) of the same pairs.
        valid: ``(queries, width)`` booleans, the cells that hold a pair.
        temperature: the teacher's scores are divided by it before the softmax.
        ce_weight: weight of :func:`listwise_ce` (0: pure distillation).

    Example:
        >>> valid = torch.tensor([[True, True]])
        >>> float(distill_kl(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.05, 0.0]]), valid, temperature=0.05))
        0.0
    """
    student = _log_softmax(scores, valid)
    target = _log_softmax(teacher / temperature, valid)
    # Padding cells hold -inf in both; zeroing them before the difference keeps NaN out of values and gradients.
    gap = target.masked_fill(~valid, 0.0) - student.masked_fill(~valid, 0.0)
    kl = (target.exp() * gap).sum(dim=1).mean()
    if not ce_weight:
        return kl
    return (1.0 - ce_weight) * kl + ce_weight * -student[:, 0].mean()


def _log_softmax(scores: Tensor, valid: Tensor) -> Tensor:
    """Row-wise log-softmax over the valid cells; other cells come out ``-inf``."""
    return torch.log_softmax(scores.masked_fill(~valid, float("-inf")), dim=1)
