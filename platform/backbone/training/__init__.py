"""Training each component through its curriculum of stages on Ray Train."""

from backbone.training.curriculum import (
    StageResult,
    bm25_baselines,
    published_stages,
    results_table,
    train_component,
)
from backbone.training.stage import StageRun, dataset_checksum, run_stage, stage_cache_key

__all__ = [
    "StageResult",
    "StageRun",
    "bm25_baselines",
    "dataset_checksum",
    "published_stages",
    "results_table",
    "run_stage",
    "stage_cache_key",
    "train_component",
]
