"""Retrieval datasets: load them from their public formats, check them, subset them, and store them prepared.

A :class:`RetrievalDataset` is three Arrow tables (corpus, queries, graded judgments by split). Loaders
(:func:`load_stard`, :func:`load_beir`) report every problem with the file and line it comes from;
:func:`prepare_dataset` writes a dataset with its training pairs atomically, and :func:`load_dataset`
reads it back with checksums verified.
"""

from backbone.data.beir import load_beir
from backbone.data.builder import DatasetBuilder, UnknownJudgments
from backbone.data.dataset import CORPUS_SCHEMA, JUDGMENTS_SCHEMA, QUERIES_SCHEMA, RetrievalDataset
from backbone.data.for_recipe import build_recipe_dataset
from backbone.data.prepare import WEAK_TABLE, pairs_table, prepare_dataset
from backbone.data.selection_split import carve_selection
from backbone.data.stard import fetch_stard, load_stard, resolve_stard_source
from backbone.data.store import (
    DatasetManifest,
    dataset_checksum,
    find_dataset,
    load_dataset,
    read_manifest,
    read_table,
    save_dataset,
)
from backbone.data.subset import build_subset
from backbone.data.supervision import LABELLED_PAIRS_SCHEMA, WEAK_PAIRS_SCHEMA, labelled_pairs, weak_pairs
from backbone.data.trec import read_trec_qrels

__all__ = [
    "CORPUS_SCHEMA",
    "JUDGMENTS_SCHEMA",
    "LABELLED_PAIRS_SCHEMA",
    "QUERIES_SCHEMA",
    "WEAK_PAIRS_SCHEMA",
    "WEAK_TABLE",
    "DatasetBuilder",
    "DatasetManifest",
    "RetrievalDataset",
    "UnknownJudgments",
    "build_recipe_dataset",
    "build_subset",
    "carve_selection",
    "dataset_checksum",
    "fetch_stard",
    "find_dataset",
    "labelled_pairs",
    "load_beir",
    "load_dataset",
    "load_stard",
    "pairs_table",
    "prepare_dataset",
    "read_manifest",
    "read_table",
    "read_trec_qrels",
    "resolve_stard_source",
    "save_dataset",
    "weak_pairs",
]
