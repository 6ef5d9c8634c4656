"""A whole recipe over tiny models (one stage per component, two budgets, three applications), as a YAML file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from backbone.pipeline import PipelineRun
from backbone.selection import Selection


def write_tiny_pipeline_recipe(folder: Path, stard_dir: Path, model_dir: Path, name: str = "tiny-pipeline") -> Path:
    """Write the recipe into ``folder`` and return its path; tiny models, a 60-document subset of real STARD."""
    stage = {"data": {"tables": ["train"], "max_examples": 16}, "batch_size": 8, "learning_rate": 1e-3}
    recipe = {
        "name": name,
        "dataset": {
            "loader": "stard",
            "source": str(stard_dir),
            "subset": {"seed": 3, "queries": {"train": 16, "dev": 8}, "corpus_size": 60},
        },
        "retriever": {
            "model": str(model_dir),
            "max_query_length": 16,
            "max_passage_length": 32,
            "stages": [{"name": "align", "loss": "infonce", **stage}],
        },
        "reranker": {
            "model": str(model_dir),
            "max_length": 48,
            "max_query_length": 16,
            "stages": [{"name": "align", "loss": "bce", "negatives": {"policy": "in_batch", "count": 1}, **stage}],
        },
        "resources": {"workers": 1},
        "evaluation": {
            "retriever_metrics": ["recall@10", "ndcg@10"],
            "reranker_metrics": ["ndcg@10"],
            "end_to_end_metrics": ["recall@10", "ndcg@10"],
            "rerank_candidates": 10,
        },
        "search": {"k": [5, 10, 20], "objective": "ndcg@10"},
        "applications": [
            {"name": "api", "k_range": [5, 5], "top_n": 3},
            {"name": "search", "k_range": [5, 10], "top_n": 5},
            {"name": "research", "k_range": [20, 20], "top_n": 10, "rerank": False},
        ],
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe, allow_unicode=True), encoding="utf-8")
    return path


@dataclass(frozen=True)
class TinyPipeline:
    """Two runs of the whole pipeline on the tiny recipe, in one private home and registry."""

    home: Path
    recipe: Path
    registry: Path
    first_run: PipelineRun
    second_run: PipelineRun
    artifacts_after_first: list[str]

    @property
    def first(self) -> Selection:
        """What the first run's search chose."""
        return self.first_run.selection

    @property
    def second(self) -> Selection:
        """What the second run's search chose (everything found in the registry)."""
        return self.second_run.selection

    @property
    def dataset(self) -> Path:
        """The prepared dataset the recipe trained and searched on (the home also holds the whole STARD it was cut
        from)."""
        (folder,) = (self.home / "datasets").glob(f"{self.recipe.stem}-*/manifest.json")
        return folder.parent
