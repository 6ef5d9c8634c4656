"""A selection split carved out of the train split, so that choices are made on queries training never saw."""

from __future__ import annotations

import random

import pyarrow as pa
import pyarrow.compute as pc

from backbone.data.dataset import RetrievalDataset
from backbone.errors import BackboneError


def carve_selection(
    dataset: RetrievalDataset, *, train_split: str, split: str, queries: int, seed: int
) -> RetrievalDataset:
    """Move ``queries`` seeded train queries, with every judgment they have there, into a new split ``split``.

    The queries are drawn from the sorted ids of ``train_split`` with a generator seeded by ``seed``, so the
    result depends only on the dataset's contents and the arguments, never on row order. Their judgments leave
    ``train_split``: labelled training pairs made from it afterwards never contain a selection query. Corpus and
    queries tables are unchanged; ``source["selection"]`` records what was done.

    Args:
        dataset: the (full or subset) dataset.
        train_split: the split to carve from.
        split: the new split's name; must not be a split the dataset has.
        queries: how many train queries to move; at least one must stay in ``train_split``.
        seed: seed of the draw.

    Raises:
        BackboneError: an unknown train split, a name already taken, or too many queries asked.

    Example:
        >>> carved = carve_selection(  # doctest: +SKIP
        ...     dataset, train_split="train", split="selection", queries=150, seed=13
        ... )
        >>> len(carved.query_ids("selection")), carved.splits()  # doctest: +SKIP
        (150, ['dev', 'selection', 'train'])
    """
    if train_split not in dataset.splits():
        raise BackboneError(f"no split {train_split!r} to carve a selection split from; have: {dataset.splits()}")
    if split in dataset.splits():
        raise BackboneError(f"selection split {split!r} is already a split of the dataset; name a new one")
    train_ids = dataset.query_ids(train_split)
    if not 1 <= queries < len(train_ids):
        raise BackboneError(
            f"selection split {split!r}: asked for {queries} queries, but {train_split!r} has {len(train_ids)}; "
            "ask for at least 1 and leave at least 1 to train on"
        )
    chosen = sorted(random.Random(f"{seed}:selection:{split}").sample(train_ids, queries))
    judgments = dataset.judgments
    moved = pc.and_(
        pc.equal(judgments["split"], train_split),
        pc.is_in(judgments["query_id"], value_set=pa.array(chosen, pa.string())),
    )
    splits = pc.if_else(moved, pa.scalar(split, pa.string()), judgments["split"])
    judgments = judgments.set_column(judgments.schema.get_field_index("split"), "split", splits)
    carved = RetrievalDataset(
        corpus=dataset.corpus,
        queries=dataset.queries,
        judgments=judgments.sort_by([("split", "ascending"), ("query_id", "ascending"), ("doc_id", "ascending")]),
        source={
            **dataset.source,
            "selection": {"from": train_split, "split": split, "queries": queries, "seed": seed},
        },
    )
    if not carved.relevant(split) or not carved.relevant(train_split):
        raise BackboneError(f"selection split {split!r}: the carve leaves a split without a relevant judgment")
    return carved
