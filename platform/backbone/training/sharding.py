"""Model work split across the Ray Train workers of a stage: each encodes or scores its share, all get the whole."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
import torch.distributed as dist

Item = TypeVar("Item")


def sharded_map(items: Sequence[Item], compute: Callable[[list[Item]], np.ndarray]) -> np.ndarray:
    """Run ``compute`` on this worker's share of ``items`` (every world-size-th item) and gather every share.

    Every worker must call it with the same items; every worker gets the rows of all items in their order.
    Outside a process group (one worker, or a plain process) it simply runs ``compute(items)``.

    Args:
        items: what to encode or score, the same on every worker.
        compute: maps a list of items to an array with one row (or value) per item.

    Example:
        >>> sharded_map(["a", "bb"], lambda texts: np.array([len(t) for t in texts]))
        array([1, 2])
    """
    if not dist.is_available() or not dist.is_initialized() or dist.get_world_size() == 1:
        return compute(list(items))
    rank, world = dist.get_rank(), dist.get_world_size()
    mine = list(items[rank::world])
    shares: list[np.ndarray | None] = [None] * world
    dist.all_gather_object(shares, compute(mine) if mine else None)
    sample = next(share for share in shares if share is not None)
    gathered = np.empty((len(items), *sample.shape[1:]), dtype=sample.dtype)
    for offset, share in enumerate(shares):
        if share is not None:
            gathered[offset::world] = share
    return gathered
