"""Training each component through its curriculum of stages on Ray Train."""

from backbone.training.curriculum import (
    baseline_rows,
    published_stages,
    results_table,
    stage_tables,
    train_component,
)
from backbone.training.stage import StageResult, StageRun, reranker_candidates, run_stage, stage_cache_key

__all__ = [
    "StageResult",
    "StageRun",
    "baseline_rows",
    "published_stages",
    "reranker_candidates",
    "results_table",
    "run_stage",
    "stage_cache_key",
    "stage_tables",
    "train_component",
]
