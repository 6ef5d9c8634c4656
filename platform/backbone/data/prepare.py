"""Prepare a dataset for training: save it together with the training pairs every recipe stage draws from."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from backbone.data.dataset import RetrievalDataset
from backbone.data.store import DatasetManifest, save_dataset
from backbone.data.supervision import labelled_pairs, weak_pairs

WEAK_TABLE = "pairs/weak"


def pairs_table(split: str) -> str:
    """The name of the labelled-pairs table of ``split`` in a prepared dataset, e.g. ``"pairs/train"``.

    Example:
        >>> pairs_table("train")
        'pairs/train'
    """
    return f"pairs/{split}"


def prepare_dataset(
    dataset: RetrievalDataset,
    out_dir: Path,
    *,
    name: str,
    train_splits: Sequence[str] | None = None,
    overwrite: bool = False,
) -> DatasetManifest:
    """Save ``dataset`` to ``out_dir`` with ``pairs/weak`` and one ``pairs/<split>`` per training split.

    Only training splits get labelled pairs: a table of evaluation queries next to the training tables
    would be one recipe line away from training on the test set.

    Args:
        dataset: the (full or subset) dataset.
        out_dir: the dataset directory to create (see :func:`~backbone.data.store.save_dataset`).
        name: the dataset's name, recorded in the manifest.
        train_splits: the splits to make labelled pairs from; ``None`` takes every split whose name
            starts with ``train``.
        overwrite: replace an existing dataset directory.

    Example:
        >>> prepare_dataset(load_stard(Path("stard")), Path("out/stard"), name="stard").counts.tables  # doctest: +SKIP
        {'pairs/weak': 53072, 'pairs/train': 2205}
    """
    if train_splits is None:
        train_splits = [split for split in dataset.splits() if split.startswith("train")]
    extra_tables = {WEAK_TABLE: weak_pairs(dataset)}
    extra_tables.update({pairs_table(split): labelled_pairs(dataset, split) for split in train_splits})
    return save_dataset(dataset, out_dir, name=name, extra_tables=extra_tables, overwrite=overwrite)
