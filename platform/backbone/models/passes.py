"""One model pass over many inputs, in batches cut by a token budget, with progress and the input order kept.

Inputs are sorted longest first and grouped so that each forward pass reads at most ``max_batch_tokens`` tokens,
padding included (items x the batch's longest item), and at most ``max_batch_size`` items: a pass over short
queries takes many at once, one over long passages few (TEI's ``--max-batch-tokens``). Each batch is one call of the
model and one step on a :func:`backbone.progress.progress` bar; the rows come back in the order of the inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

from backbone.progress import progress

Item = TypeVar("Item")


def token_batches(lengths: Sequence[int], max_batch_tokens: int, max_batch_size: int) -> list[list[int]]:
    """Positions of the items grouped into batches, longest first, each within the token and size budgets.

    An item longer than ``max_batch_tokens`` on its own is a batch of one (the model cuts it to its own limit).

    Args:
        lengths: tokens of each item (special tokens included).
        max_batch_tokens: most tokens a batch may hold once padded to its longest item.
        max_batch_size: most items in a batch.

    Example:
        >>> token_batches([10, 40, 20, 40], max_batch_tokens=80, max_batch_size=8)
        [[1, 3], [2, 0]]
    """
    order = sorted(range(len(lengths)), key=lambda position: -lengths[position])  # stable: ties keep input order
    batches: list[list[int]] = []
    for position in order:
        batch = batches[-1] if batches else None
        # Sorted longest first: the batch's first item sets its padded width.
        if batch and len(batch) < max_batch_size and (len(batch) + 1) * max(lengths[batch[0]], 1) <= max_batch_tokens:
            batch.append(position)
        else:
            batches.append([position])
    return batches


def batched_pass(
    items: Sequence[Item],
    lengths: Sequence[int],
    run: Callable[[list[Item]], np.ndarray],
    *,
    max_batch_tokens: int,
    max_batch_size: int,
    label: str | None,
    unit: str,
) -> np.ndarray:
    """``run`` over ``items`` batch by batch (see :func:`token_batches`), the rows in the order of ``items``.

    Args:
        items: the inputs (texts, pairs).
        lengths: tokens of each item, as the model will read it.
        run: the model's forward pass over one batch; returns one row per item, in the batch's order.
        max_batch_tokens: token budget of one forward pass, padding included.
        max_batch_size: most items in one forward pass.
        label: what the progress lines call the work; None shows none.
        unit: what is counted.

    Example:
        >>> batched_pass(["bb", "a", "ccc"], [2, 1, 3], lambda batch: np.array([len(t) for t in batch]),
        ...              max_batch_tokens=4, max_batch_size=8, label=None, unit="texts")
        array([2, 1, 3])
    """
    parts = []
    order: list[int] = []
    with progress(len(items), label, unit) as bar:
        for batch in token_batches(lengths, max_batch_tokens, max_batch_size):
            parts.append(run([items[position] for position in batch]))
            order.extend(batch)
            bar.update(len(batch))
    if not parts:
        return run([])
    rows = np.concatenate(parts)
    restored = np.empty_like(rows)
    restored[np.asarray(order)] = rows
    return restored
