"""A component's whole curriculum: the base model, then each stage from the previous stage's checkpoint."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from backbone.component_name import ComponentName
from backbone.data import dataset_checksum
from backbone.errors import BackboneError
from backbone.evaluation import BM25, deepest_cutoff, evaluate
from backbone.recipes import Recipe
from backbone.registry import ArtifactManifest, Registry
from backbone.training.candidates import Bm25Candidates, CandidateSource
from backbone.training.inputs import build_stage_inputs
from backbone.training.stage import StageResult, StageRun, reranker_candidates, run_stage, stage_cache_key


def train_component(
    recipe: Recipe,
    component: ComponentName,
    dataset_dir: Path,
    registry: Registry,
    run: StageRun,
    stages: Sequence[str] | None = None,
) -> list[StageResult]:
    """Evaluate the base model and train the curriculum, publishing one checkpoint per stage.

    Every stage starts from the previous stage's checkpoint, so asking for a later stage runs (or reuses from the
    registry) every stage before it. A stage already published with the same recipe, parent and data is reused.

    Args:
        recipe: the recipe.
        component: ``retriever`` or ``reranker``.
        dataset_dir: the recipe's prepared dataset.
        registry: the artifact registry.
        run: workers and resources.
        stages: the stages wanted (default: all); the curriculum runs up to the last of them.

    Example:
        >>> train_component(recipe, "retriever", dataset_dir, Registry(), StageRun(workers=2))  # doctest: +SKIP
    """
    names = [stage.name for stage in getattr(recipe, component).stages]
    unknown = sorted(set(stages or ()) - set(names))
    if unknown:
        raise BackboneError(f"--stages: {component} has no stage {', '.join(unknown)}; it has {', '.join(names)}")
    last = max((names.index(name) for name in stages), default=-1) if stages else len(names) - 1
    results: list[StageResult] = []
    parent = None
    for name in ["base", *names[: last + 1]]:
        results.append(run_stage(recipe, component, name, parent, dataset_dir, registry, run))
        parent = results[-1].checkpoint
    return results


def published_stages(
    recipe: Recipe, component: ComponentName, dataset_dir: Path, registry: Registry, stages: Sequence[str]
) -> list[StageResult]:
    """The published checkpoints of ``stages`` (and every stage before them), found without training anything.

    Raises:
        BackboneError: a stage has not been trained for this recipe and dataset.

    Example:
        >>> published_stages(recipe, "retriever", dataset_dir, Registry(), ["base", "refinement"])  # doctest: +SKIP
    """
    names = getattr(recipe, component).stage_names()
    last = max(names.index(stage) for stage in stages)
    data = dataset_checksum(dataset_dir)
    results: list[StageResult] = []
    parent: ArtifactManifest | None = None
    for name in names[: last + 1]:
        parent = registry.find(
            "checkpoint", stage_cache_key(recipe, component, name, parent.id if parent else None, data)
        )
        if parent is None:
            raise BackboneError(
                f"{component} stage {name!r} of recipe {recipe.name!r} is not in registry {registry.uri}: "
                "train it first (python jobs/train.py --recipe ..., or backbone run RECIPE)"
            )
        results.append(StageResult(component, name, parent, reused=True, seconds=0.0))
    return results


def baseline_rows(
    recipe: Recipe, dataset_dir: Path, registry: Registry
) -> dict[ComponentName, list[tuple[str, dict[str, float]]]]:
    """The rows each component's table starts with, ``(label, metrics)``: what its stages must beat.

    The retriever's: BM25 over the whole corpus. The reranker's: the BM25 candidate list in BM25's order and, when
    the reranker reranks the retriever's candidates, those candidates in the retriever's own order (``retriever
    order``), the order its stages must improve on for reranking to add value.

    Raises:
        BackboneError: ``reranker.candidates: retriever`` and the retriever's base checkpoint is not published.

    Example:
        >>> dict(baseline_rows(recipe, dataset_dir, Registry())["reranker"])["retriever order"]  # doctest: +SKIP
        {'mrr@10': 0.63, 'ndcg@10': 0.7}
    """
    # The same inputs the stages see: the reranker's rows are the very candidate lists its stages rerank.
    evaluation = recipe.evaluation
    retriever = build_stage_inputs(recipe, recipe.retriever, None, dataset_dir)
    bm25 = BM25.build(retriever.corpus_ids, retriever.passages, language="auto")
    run = bm25.search(retriever.eval_queries, k=deepest_cutoff(evaluation.retriever_metrics))
    rows: dict[ComponentName, list[tuple[str, dict[str, float]]]] = {
        "retriever": [("bm25", evaluate(retriever.eval_qrels, run, evaluation.retriever_metrics))]
    }
    sources: dict[str, CandidateSource] = {"bm25": Bm25Candidates()}
    if recipe.reranker.candidates == "retriever":
        sources["retriever order"] = reranker_candidates(recipe, dataset_dir, registry)
    rows["reranker"] = []
    for label, source in sources.items():
        lists = build_stage_inputs(recipe, recipe.reranker, None, dataset_dir, source)
        rows["reranker"].append(
            (label, evaluate(lists.eval_qrels, lists.fixed_candidate_run(), evaluation.reranker_metrics))
        )
    return rows


def stage_tables(recipe: Recipe, dataset_dir: Path, registry: Registry, stages: Sequence[StageResult]) -> list[str]:
    """Each component's table (Markdown): its baselines, then each stage's metrics as recorded on its checkpoint.

    One table per component that ``stages`` holds, in the order they first appear.

    Args:
        recipe: the recipe (its evaluation metrics are the columns).
        dataset_dir: its prepared dataset (for the baselines).
        registry: the artifact registry (the reranker's ``retriever order`` row reads the retriever's base).
        stages: the stages trained or found, as :func:`train_component` and :func:`published_stages` return them.

    Example:
        >>> print(stage_tables(recipe, dataset_dir, Registry(), train_component(...))[0])  # doctest: +SKIP
        | retriever | recall@20 | ... |
    """
    baselines = baseline_rows(recipe, dataset_dir, registry)
    components = list(dict.fromkeys(result.component for result in stages))
    return [
        results_table(
            component,
            getattr(recipe.evaluation, f"{component}_metrics"),
            [
                *baselines[component],
                *(
                    (f"{result.stage} ({result.checkpoint.id})", result.checkpoint.metrics)
                    for result in stages
                    if result.component == component
                ),
            ],
        )
        for component in components
    ]


def results_table(component: ComponentName, metrics: list[str], rows: list[tuple[str, dict[str, float]]]) -> str:
    """A Markdown table of ``rows`` (label, metrics), one column per metric plus training throughput.

    Example:
        >>> print(results_table("retriever", ["recall@20"], [("bm25", {"recall@20": 0.5})]))
        | retriever | recall@20 | examples | examples/s |
        | --- | ---: | ---: | ---: |
        | bm25 | 0.5000 |  |  |
    """
    lines = [
        f"| {component} | {' | '.join(metrics)} | examples | examples/s |",
        f"| --- | {' | '.join('---:' for _ in metrics)} | ---: | ---: |",
    ]
    for label, values in rows:
        cells = [f"{values[metric]:.4f}" if metric in values else "" for metric in metrics]
        examples = f"{int(values['examples'])}" if values.get("examples") else ""
        speed = f"{values['examples_per_s']:.2f}" if values.get("examples_per_s") else ""
        lines.append(f"| {label} | {' | '.join(cells)} | {examples} | {speed} |")
    return "\n".join(lines)
