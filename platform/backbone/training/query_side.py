"""The contrastive loss of a query-side retriever stage: queries against passage embeddings already in the index.

With ``document_encoder: frozen`` the passage tower never changes, so a passage's embedding is a row of the shared
corpus index: no passage goes through the model. Each query of the global batch is scored against every positive
of the global batch and every mined negative (many negatives cost almost nothing), or, with ``contrast: corpus``,
against every passage of the index (the full-corpus softmax); a candidate judged relevant to the query, other than
its own positive, is masked out: a query never learns to push away its own relevant
articles. Every worker holds the global batch's candidates, so each scores its share of the queries against all of
them; the per-worker means, averaged by DDP's gradient all-reduce, are the one-worker loss on the global batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn.functional import cross_entropy


@dataclass(frozen=True)
class Candidates:
    """The passages a global batch's queries are scored against, as rows of the corpus embeddings.

    Args:
        rows: corpus positions: the batch's positives in batch order, then every mined negative; ``None`` for every
            row of the corpus embeddings, in order.
        own: for each query of the batch, the column of its own positive.
        masked: ``[queries, candidates]``, true where the candidate is judged relevant to the query but is not
            its own positive.
    """

    rows: list[int] | None
    own: list[int]
    masked: np.ndarray


def batch_candidates(
    positives: list[str], negatives: list[list[str]], relevant: list[list[str]], position: dict[str, int]
) -> Candidates:
    """The candidates of a global batch: its positives and mined negatives, with each query's judged ones masked.

    Args:
        positives: each example's positive document, in batch order.
        negatives: each example's mined negatives (empty lists with in-batch negatives only).
        relevant: each example's query's judged relevant documents.
        position: each document id's row in the corpus embeddings.

    Example:
        >>> found = batch_candidates(["a", "b"], [["c"], []], [["a", "b"], ["b"]], {"a": 0, "b": 1, "c": 2})
        >>> found.rows, found.own, found.masked.tolist()
        ([0, 1, 2], [0, 1], [[False, True, False], [False, False, False]])
    """
    docs = [*positives, *(doc for row in negatives for doc in row)]
    masked = np.array([[doc in judged for doc in docs] for judged in map(set, relevant)], dtype=bool).reshape(
        len(relevant), len(docs)
    )
    own = list(range(len(positives)))
    masked[own, own] = False
    return Candidates([position[doc] for doc in docs], own, masked)


def corpus_candidates(positives: list[str], relevant: list[list[str]], position: dict[str, int]) -> Candidates:
    """Every passage of the corpus as a candidate of every query, each query's judged ones but its positive masked.

    Args:
        positives: each example's positive document, in batch order.
        relevant: each example's query's judged relevant documents.
        position: each document id's row in the corpus embeddings (all of them).

    Example:
        >>> found = corpus_candidates(["b"], [["a", "b"]], {"a": 0, "b": 1, "c": 2})
        >>> found.rows, found.own, found.masked.tolist()
        (None, [1], [[True, False, False]])
    """
    masked = np.zeros((len(positives), len(position)), dtype=bool)
    for row, (positive, judged) in enumerate(zip(positives, relevant, strict=True)):
        masked[row, [position[doc] for doc in judged if doc != positive]] = True
    return Candidates(None, [position[doc] for doc in positives], masked)


def query_side_infonce(
    queries: torch.Tensor, candidates: torch.Tensor, own: torch.Tensor, masked: torch.Tensor, temperature: float
) -> torch.Tensor:
    """InfoNCE of unit query embeddings against fixed unit candidate embeddings, masked candidates left out.

    Args:
        queries: ``[n, dim]`` embeddings of this worker's queries (with gradient).
        candidates: ``[m, dim]`` passage embeddings (constants).
        own: ``[n]`` the column of each query's positive.
        masked: ``[n, m]`` candidates to leave out of each query's softmax.
        temperature: similarities are divided by it.

    Example:
        >>> query_side_infonce(torch.eye(2), torch.eye(2), torch.tensor([0, 1]), torch.zeros(2, 2, dtype=torch.bool),
        ...                    1.0).item()  # doctest: +ELLIPSIS
        0.31326...
    """
    scores = (queries @ candidates.T / temperature).masked_fill(masked, float("-inf"))
    return cross_entropy(scores, own)
