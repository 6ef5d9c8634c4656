"""The prepared dataset a recipe trains and evaluates on, built once and reused by every later run."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

from backbone import settings
from backbone.data.beir import load_beir
from backbone.data.dataset import RetrievalDataset
from backbone.data.prepare import prepare_dataset
from backbone.data.selection_split import carve_selection
from backbone.data.stard import load_stard, resolve_stard_source
from backbone.data.store import load_dataset, read_manifest
from backbone.data.subset import build_subset
from backbone.data.supervision import SUPERVISION_VERSION
from backbone.errors import DataError
from backbone.recipes import Dataset

log = logging.getLogger(__name__)


def build_recipe_dataset(spec: Dataset, name: str) -> Path:
    """Prepare the dataset ``spec`` describes (its subset, its selection split) under ``$BACKBONE_DATASETS_DIR``.

    The full dataset is prepared once per raw source (its folder name carries a fingerprint of the raw files'
    names, sizes and modification times, and the version of the training pairs' rules, ``SUPERVISION_VERSION``)
    and shared by every recipe that uses it; a subset and a selection split (carved out of the train split after
    the subset, so that the training pairs never hold its queries) are prepared once per (full dataset, subset
    parameters, selection parameters). A folder that already holds a complete dataset is reused as is.

    Args:
        spec: the recipe's ``dataset`` section.
        name: the recipe's name; names the subset's folder and manifest.

    Example:
        >>> recipe = load_recipe("jobs/recipes/stard-mini.yaml")  # doctest: +SKIP
        >>> build_recipe_dataset(recipe.dataset, recipe.name)  # doctest: +SKIP
        PosixPath('/root/.cache/backbone/datasets/stard-mini-3f2a9c1d0b7e')
    """
    raw = _raw_source(spec)
    # The key names the pairs tables' rules too, so a dataset prepared under older rules is prepared again.
    key = {
        "loader": spec.loader,
        "train_split": spec.train_split,
        "supervision": SUPERVISION_VERSION,
        "files": _fingerprint(raw),
    }
    if spec.unknown_judgments != "error":
        # Only a non-default policy changes what is prepared: datasets prepared before the policy existed stay valid.
        key["unknown_judgments"] = spec.unknown_judgments
    full_key = _digest(key)
    full_dir = settings.datasets_dir() / f"{spec.loader}-{full_key}"
    _prepare_once(full_dir, spec.loader, spec.train_split, lambda: _load_raw(spec, raw))
    if spec.subset is None and spec.selection is None:
        return full_dir
    identity: dict[str, object] = {"full": full_key}
    if spec.subset is not None:
        identity["subset"] = spec.subset.model_dump(mode="json")
    if spec.selection is not None:
        # Only when there is one: recipes without a selection split keep their prepared datasets.
        identity["selection"] = spec.selection.model_dump(mode="json")
    derived_dir = settings.datasets_dir() / f"{name}-{_digest(identity)}"
    _prepare_once(derived_dir, name, spec.train_split, lambda: _derive(spec, load_dataset(full_dir)))
    return derived_dir


def _derive(spec: Dataset, full: RetrievalDataset) -> RetrievalDataset:
    """The recipe's subset of the full dataset, then its selection split carved out of the train split."""
    dataset = full
    if spec.subset is not None:
        dataset = build_subset(
            dataset, seed=spec.subset.seed, queries=spec.subset.queries, corpus_size=spec.subset.corpus_size
        )
    if spec.selection is not None:
        dataset = carve_selection(
            dataset,
            train_split=spec.train_split,
            split=spec.selection.split,
            queries=spec.selection.queries,
            seed=spec.selection.seed,
        )
    return dataset


def _raw_source(spec: Dataset) -> Path:
    if spec.loader == "stard":
        return resolve_stard_source(spec.source)
    if spec.source is None:
        raise DataError("dataset.source", f"the {spec.loader} loader needs a local directory")
    return spec.source


def _prepare_once(out_dir: Path, name: str, train_split: str, load: Callable[[], RetrievalDataset]) -> None:
    if (out_dir / "manifest.json").is_file():
        log.info("reusing prepared dataset %s", out_dir)
        return
    dataset = load()
    if train_split not in dataset.splits():
        raise DataError(out_dir, f"train_split {train_split!r} is not a split of the dataset ({dataset.splits()})")
    try:
        prepare_dataset(dataset, out_dir, name=name, train_splits=[train_split])
    except Exception:
        # Another process may have prepared the same folder meanwhile: its complete dataset is as good as ours.
        if (out_dir / "manifest.json").is_file():
            read_manifest(out_dir)
            return
        raise
    log.info("prepared dataset %s", out_dir)


def _load_raw(spec: Dataset, raw: Path) -> RetrievalDataset:
    return load_stard(raw) if spec.loader == "stard" else load_beir(raw, unknown_judgments=spec.unknown_judgments)


def _fingerprint(raw: Path) -> list[tuple[str, int, int]]:
    if not raw.is_dir():
        raise DataError(raw, "dataset source is not a directory")
    return sorted(
        (str(path.relative_to(raw)), path.stat().st_size, path.stat().st_mtime_ns)
        for path in raw.rglob("*")
        if path.is_file()
    )


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:12]
