"""One model pass over many inputs in chunks, so that long passes show progress.

sentence-transformers' ``encode`` and ``predict`` sort their inputs by length and batch them; one call over a whole
corpus says nothing until it ends. :func:`chunked_pass` sorts once (longest first, as they do), hands the model a
chunk of a few batches at a time, counts each chunk on a :func:`backbone.progress.progress` bar and puts the rows
back in input order: the batches, and so the numbers, are the ones one call would have made, up to chunk borders.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

from backbone.progress import progress

Item = TypeVar("Item")

CHUNK_BATCHES = 8
"""Batches per chunk: one progress step every few seconds on 2 cores at the default batch sizes."""


def chunked_pass(
    items: Sequence[Item],
    lengths: Sequence[int],
    run: Callable[[list[Item]], np.ndarray],
    *,
    batch_size: int,
    label: str | None,
    unit: str,
) -> np.ndarray:
    """``run`` over ``items`` chunk by chunk, longest first, with the result rows in the order of ``items``.

    Args:
        items: the inputs (texts, pairs).
        lengths: a length per item to sort by (characters are enough: sentence-transformers sorts by them too).
        run: the model pass over one chunk; returns one row per item, in the chunk's order.
        batch_size: items per forward pass; a chunk is ``CHUNK_BATCHES`` batches.
        label: what the progress lines call the work; None shows none.
        unit: what is counted.

    Example:
        >>> chunked_pass(["bb", "a", "ccc"], [2, 1, 3], lambda chunk: np.array([len(t) for t in chunk]),
        ...              batch_size=1, label=None, unit="texts")
        array([2, 1, 3])
    """
    order = sorted(range(len(items)), key=lambda position: -lengths[position])  # stable: ties keep input order
    size = batch_size * CHUNK_BATCHES
    parts = []
    with progress(len(items), label, unit) as bar:
        for start in range(0, len(order), size):
            chunk = [items[position] for position in order[start : start + size]]
            parts.append(run(chunk))
            bar.update(len(chunk))
    if not parts:
        return run([])
    rows = np.concatenate(parts)
    restored = np.empty_like(rows)
    restored[np.asarray(order)] = rows
    return restored
