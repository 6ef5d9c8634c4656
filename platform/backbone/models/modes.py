"""Scoring with a model in the middle of training without leaving it in evaluation mode."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """Put ``model`` in evaluation mode for the block, then back in the mode it was in.

    ``SentenceTransformer.encode`` and ``CrossEncoder.predict`` call ``eval()`` and leave it so; a stage that
    mines negatives with its current model between steps would otherwise go on training without dropout.

    Args:
        model: any module.

    Example:
        >>> with evaluating(model):  # doctest: +SKIP
        ...     embeddings = model.encode(texts)
    """
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)
