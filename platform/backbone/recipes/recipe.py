"""A recipe: one YAML file that describes a backbone end to end.

Sections: the dataset, the two components with their curricula, training resources, evaluation, the search
space for stage assignment, and the downstream applications with their retrieval budgets.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from backbone.component_name import ComponentName
from backbone.metric_names import check_metric
from backbone.recipes.base import FieldError, StrictModel
from backbone.recipes.components import Reranker, Retriever
from backbone.recipes.inference import PrecisionSetting

_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_SPLIT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class Subset(StrictModel):
    """A deterministic subset for fast CPU runs: sampled queries, every document they judge, plus others."""

    seed: int = Field(13, description="Seed of every sample, recorded in the dataset's manifest.")
    queries: dict[str, int] = Field(description="Queries to sample per split, e.g. {train: 400, dev: 100}.")
    corpus_size: int = Field(
        5000, ge=1, description="Documents in the subset: all judged by the sampled queries, then random others."
    )

    @field_validator("queries")
    @classmethod
    def _positive_counts(cls, queries: dict[str, int]) -> dict[str, int]:
        for split, count in queries.items():
            if count < 1:
                raise FieldError(split, f"need at least 1 query (got {count})")
        if not queries:
            raise ValueError("name at least one split, e.g. {train: 400, dev: 100}")
        return queries


class SelectionSplit(StrictModel):
    """Queries carved out of the train split before training, on which the search chooses (never trained on)."""

    split: str = Field("selection", description="Name of the new split; must not be a split the dataset has.")
    queries: int = Field(ge=1, description="Train queries moved into it (all their judgments move with them).")
    seed: int = Field(13, description="Seed of the draw, recorded in the dataset's manifest.")

    @field_validator("split")
    @classmethod
    def _plain_name(cls, split: str) -> str:
        if not _SPLIT.match(split):
            raise ValueError(f"bad split name {split!r}: use letters, digits, '.', '_' and '-'")
        return split


class Dataset(StrictModel):
    """Which retrieval dataset to train and evaluate on."""

    loader: Literal["stard", "beir"] = Field(description="Source format: stard (upstream layout) or beir.")
    source: Path | None = Field(
        None,
        description="Local copy of the raw dataset, relative to the recipe file. Null: "
        "$BACKBONE_DATA_DIR/<loader>, else a download from the dataset's public source (stard only).",
    )
    subset: Subset | None = Field(None, description="Train and evaluate on a deterministic subset.")
    train_split: str = Field("train", description="Split whose judgments supervise training.")
    eval_split: str = Field(
        "dev",
        description="Split every stage evaluation is scored on, and the search's choices are reported on; with no "
        "selection split the search also chooses on it (then its figures are optimistic).",
    )
    selection: SelectionSplit | None = Field(
        None,
        description="Carve a selection split out of train_split (after any subset); the search chooses stages, K "
        "and weights on it, and eval_split is only reported. Null: the search chooses on eval_split.",
    )
    unknown_judgments: Literal["error", "drop"] = Field(
        "error",
        description="beir loader: a judgment naming a document the corpus lacks fails at its file:line (error) "
        "or is left out and counted per split in the manifest (drop). Unknown queries always fail.",
    )

    @model_validator(mode="after")
    def _subset_covers_splits(self) -> Dataset:
        if self.loader == "beir" and self.source is None:
            raise FieldError("source", "a beir dataset needs a local directory (it has no default download)")
        if self.loader != "beir" and self.unknown_judgments != "error":
            raise FieldError("unknown_judgments", f"only the beir loader can drop judgments, not {self.loader}")
        if self.subset is not None:
            for split in (self.train_split, self.eval_split):
                if split not in self.subset.queries:
                    raise FieldError("subset.queries", f"names no count for split {split!r}")
        if self.selection is not None:
            name = self.selection.split
            if name in (self.train_split, self.eval_split) or (self.subset and name in self.subset.queries):
                raise FieldError("selection.split", f"{name!r} is already a split of this dataset; name a new one")
            train_queries = self.subset.queries[self.train_split] if self.subset else None
            if train_queries is not None and self.selection.queries >= train_queries:
                raise FieldError(
                    "selection.queries",
                    f"{self.selection.queries} would leave no training query: the subset keeps {train_queries} "
                    f"queries of {self.train_split!r}",
                )
        return self

    def choice_split(self) -> str:
        """The split the search chooses on: the selection split when there is one, else the evaluation split."""
        return self.selection.split if self.selection is not None else self.eval_split


class Resources(StrictModel):
    """Ray Train resources per stage; the command line can override them."""

    workers: int = Field(1, ge=1, description="Ray Train workers (DDP ranks) per stage.")
    use_gpu: bool | Literal["auto"] = Field(
        "auto",
        description="One GPU per worker (nccl); false trains on CPU (gloo); auto: GPUs if the Ray cluster has any "
        "when the stage starts (see backbone.ray_runtime.resolve_use_gpu).",
    )
    cpus_per_worker: int = Field(1, ge=1, description="CPU cores, and torch threads, per worker.")
    train_precision: PrecisionSetting = Field(
        "fp32",
        description="Precision of the training steps' forward passes: fp32; bf16 (torch autocast, weights and "
        "optimizer fp32), for GPUs and CPUs that multiply bf16 natively (AMX, AVX512-BF16); auto: bf16 where native. "
        "Part of each stage's cache key. The model passes of evaluation and mining follow each component's inference.",
    )


class Evaluation(StrictModel):
    """How checkpoints and the whole pipeline are scored."""

    retriever_metrics: list[str] = Field(
        ["recall@20", "recall@60", "recall@100", "ndcg@10", "mrr@10"],
        description="Retriever metrics over the whole corpus.",
    )
    reranker_metrics: list[str] = Field(
        ["mrr@10", "ndcg@10"], description="Reranker metrics over a fixed candidate list."
    )
    end_to_end_metrics: list[str] = Field(
        ["recall@10", "mrr@10", "ndcg@10"], description="Metrics of retrieve top K, rerank, score the top 10."
    )
    rerank_candidates: int = Field(
        60, ge=1, description="Depth of the fixed candidate list a reranker checkpoint is scored on alone."
    )

    @field_validator("retriever_metrics", "reranker_metrics", "end_to_end_metrics")
    @classmethod
    def _known_metrics(cls, metrics: list[str]) -> list[str]:
        if not metrics:
            raise ValueError("name at least one metric")
        for metric in metrics:
            check_metric(metric)
        return metrics


class Search(StrictModel):
    """The space of stage assignments searched with Ray Tune."""

    retriever_stages: list[str] | None = Field(
        None, description="Retriever stages to try ('base' = untrained); null tries every stage."
    )
    reranker_stages: list[str] | None = Field(
        None, description="Reranker stages to try ('base' = untrained); null tries every stage."
    )
    k: list[int] = Field([20, 60, 100], description="Retrieval budgets K: candidates passed to the reranker.")
    weights: list[float] = Field(
        [1.0],
        description="Interpolation weights to try: a candidate's score is weight * norm(reranker) + (1 - weight) * "
        "norm(retriever), min-max normalised per query over the K candidates; 1 = the reranker's order, 0 = the "
        "retriever's.",
    )
    objective: str = Field(
        "ndcg@10", description="End-to-end metric to maximise on the selection split (else the evaluation split)."
    )
    algorithm: Literal["grid", "random"] = Field(
        "grid", description="grid tries every assignment; random samples `num_samples` of them."
    )
    num_samples: int = Field(20, ge=1, description="Assignments tried by the random search.")

    @field_validator("k")
    @classmethod
    def _budgets_ascending(cls, budgets: list[int]) -> list[int]:
        if not budgets or any(k < 1 for k in budgets) or sorted(set(budgets)) != budgets:
            raise ValueError(f"needs distinct positive budgets in ascending order (got {budgets})")
        return budgets

    @field_validator("weights")
    @classmethod
    def _weights_ascending(cls, weights: list[float]) -> list[float]:
        if not weights or any(not 0.0 <= w <= 1.0 for w in weights) or sorted(set(weights)) != weights:
            raise ValueError(f"needs distinct weights in [0, 1] in ascending order (got {weights})")
        return weights

    @field_validator("objective")
    @classmethod
    def _objective_is_metric(cls, objective: str) -> str:
        return check_metric(objective)


class Application(StrictModel):
    """A downstream application of the shared backbone, with its own retrieval budget."""

    name: str = Field(description="Application name used in requests (lowercase, digits, '-', '_').")
    description: str = Field("", description="Who uses it and why its budget is what it is.")
    k_range: tuple[int, int] | None = Field(
        None, description="Allowed retrieval budgets [min, max]; the search picks the best K inside."
    )
    latency_budget_ms: float | None = Field(
        None, gt=0, description="Per-query latency budget of retrieve plus rerank, in milliseconds."
    )
    top_n: int = Field(10, ge=1, le=1000, description="Results returned to the application.")
    rerank: bool = Field(True, description="Rerank the retrieved candidates (false: retriever ranking only).")
    without_reranker: Literal["retriever", "unavailable"] = Field(
        "retriever",
        description="When the reranker fails, misses its deadline or is busy: retriever: answer the retriever's "
        "ranking, marked and counted as degraded; unavailable: answer 503 (an unreranked answer is worse than none).",
    )

    @field_validator("name")
    @classmethod
    def _name_is_slug(cls, name: str) -> str:
        if not _SLUG.match(name):
            raise ValueError(f"invalid application name {name!r}: use lowercase letters, digits, '-' and '_'")
        return name

    @model_validator(mode="after")
    def _has_a_budget(self) -> Application:
        if self.k_range is None and self.latency_budget_ms is None:
            raise ValueError("give k_range, latency_budget_ms or both")
        if self.k_range is not None and not 1 <= self.k_range[0] <= self.k_range[1]:
            raise FieldError("k_range", f"needs 1 <= min <= max (got {list(self.k_range)})")
        return self


class Recipe(StrictModel):
    """A backbone, end to end. Load one with :func:`backbone.recipes.load_recipe`.

    Example:
        >>> from backbone.recipes import load_recipe
        >>> recipe = load_recipe("jobs/recipes/stard-mini.yaml")  # doctest: +SKIP
        >>> recipe.retriever.stage_names()  # doctest: +SKIP
        ['base', 'alignment', 'refinement', 'calibration']
    """

    name: str = Field(description="Recipe name; names the prepared dataset and the release by default.")
    description: str = Field("", description="What this backbone is for.")
    seed: int = Field(13, description="Seed of sampling, shuffling and initialisation.")
    dataset: Dataset = Field(description="The retrieval dataset.")
    retriever: Retriever = Field(description="The bi-encoder retriever and its curriculum.")
    reranker: Reranker = Field(description="The cross-encoder reranker and its curriculum.")
    resources: Resources = Field(default_factory=Resources, description="Ray Train resources per stage.")
    evaluation: Evaluation = Field(default_factory=Evaluation, description="Metrics and candidate depth.")
    search: Search = Field(default_factory=Search, description="Stage-assignment search space and objective.")
    applications: list[Application] = Field(
        default_factory=list, description="Downstream applications, each with its own budget."
    )

    @field_validator("name")
    @classmethod
    def _name_is_slug(cls, name: str) -> str:
        if not _SLUG.match(name):
            raise ValueError(f"invalid recipe name {name!r}: use lowercase letters, digits, '-' and '_'")
        return name

    @model_validator(mode="after")
    def _search_names_known_things(self) -> Recipe:
        for field, component in (("retriever_stages", self.retriever), ("reranker_stages", self.reranker)):
            known = component.stage_names()
            for index, stage in enumerate(getattr(self.search, field) or []):
                if stage not in known:
                    raise FieldError(
                        f"search.{field}[{index}]", f"unknown stage {stage!r}; choose from {', '.join(known)}"
                    )
        if self.search.objective not in self.evaluation.end_to_end_metrics:
            raise FieldError(
                "search.objective",
                f"{self.search.objective!r} is not among evaluation.end_to_end_metrics "
                f"({', '.join(self.evaluation.end_to_end_metrics)})",
            )
        seen: set[str] = set()
        for index, app in enumerate(self.applications):
            if app.name in seen:
                raise FieldError(f"applications[{index}].name", f"{app.name!r} is used twice")
            seen.add(app.name)
            if app.k_range and not any(app.k_range[0] <= k <= app.k_range[1] for k in self.search.k):
                raise FieldError(
                    f"applications[{index}].k_range",
                    f"{list(app.k_range)} contains none of search.k {self.search.k}",
                )
        return self

    def searched_stages(self, component: ComponentName) -> list[str]:
        """The stages of ``component`` the search tries: the recipe's list, or every stage and ``base``."""
        chosen = getattr(self.search, f"{component}_stages")
        return list(chosen) if chosen is not None else getattr(self, component).stage_names()
