"""The whole method in one call: prepare the dataset, train both curricula, search stage assignments, release;
and its training half alone (:func:`train_recipe`, ``backbone train`` and ``jobs/train.py``).

Every step reuses what the registry already holds (prepared dataset, stage checkpoints, indexes, runs, pair
scores, the Tune experiment, the release), so running it again does no model work.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tqdm import tqdm

from backbone.component_name import ComponentName
from backbone.data import build_recipe_dataset
from backbone.errors import BackboneError
from backbone.ray_runtime import ensure_ray
from backbone.recipes import load_recipe
from backbone.registry import Registry
from backbone.selection import Selection, select_backbone
from backbone.settings import backbone_home
from backbone.training import StageResult, StageRun, published_stages, stage_tables, train_component


@dataclass(frozen=True)
class PipelineRun:
    """What one :func:`run_pipeline` call did.

    Args:
        selection: what the search chose, the release and the report.
        stages: every stage of both curricula, base first, each trained by this run or reused from the registry.
        phases: wall seconds of each phase, in order (prepare data, train retriever, train reranker, search and
            release).
    """

    selection: Selection
    stages: list[StageResult]
    phases: dict[str, float]

    def describe(self) -> str:
        """The selection's lines, then a closing summary: what was trained or reused, time per phase, the report.

        Example:
            >>> print(run_pipeline(Path("jobs/recipes/stard-mini.yaml")).describe())  # doctest: +SKIP
            ...
            run summary:
              trained: retriever/alignment (06:12), ...
              reused: retriever/base, reranker/base
              prepare data 00:02, train retriever 14:40, train reranker 11:05, search and release 03:30; total 29:17
              report: /root/.cache/backbone/reports/stard-mini/report.md
        """
        trained = [
            f"{s.component}/{s.stage} ({'evaluated, ' if s.stage == 'base' else ''}{tqdm.format_interval(s.seconds)})"
            for s in self.stages
            if not s.reused
        ]
        reused = [f"{s.component}/{s.stage}" for s in self.stages if s.reused]
        phases = ", ".join(f"{phase} {tqdm.format_interval(seconds)}" for phase, seconds in self.phases.items())
        return "\n".join(
            [
                self.selection.describe(),
                "run summary:",
                f"  trained: {', '.join(trained) or 'nothing'}",
                f"  reused: {', '.join(reused) or 'nothing'}",
                f"  {phases}; total {tqdm.format_interval(sum(self.phases.values()))}",
                f"  report: {self.selection.report}",
            ]
        )


def run_pipeline(
    recipe_path: Path,
    *,
    registry_uri: str | None = None,
    workers: int | None = None,
    use_gpu: bool | None = None,
    report_dir: Path | None = None,
    train: bool = True,
) -> PipelineRun:
    """Run a recipe end to end and return what the search chose, what was trained or reused, and the time taken.

    Args:
        recipe_path: the recipe's YAML file.
        registry_uri: the artifact registry (default: ``$BACKBONE_REGISTRY``).
        workers: Ray Train workers per stage (default: the recipe's).
        use_gpu: train on GPUs (default: the recipe's).
        report_dir: where the report goes (default: ``$BACKBONE_HOME/reports/<recipe name>``).
        train: false: only search, over stages already in the registry (what ``jobs/tune.py`` does).

    Raises:
        BackboneError: a bad recipe, missing data or models, or (``train=False``) a stage not trained yet.

    Example:
        >>> run = run_pipeline(Path("jobs/recipes/stard-mini.yaml"))  # doctest: +SKIP
        >>> run.selection.report  # doctest: +SKIP
        PosixPath('/root/.cache/backbone/reports/stard-mini/report.md')
    """
    phases: dict[str, float] = {}
    started = time.perf_counter()
    recipe = load_recipe(recipe_path)
    dataset_dir = build_recipe_dataset(recipe.dataset, recipe.name)
    registry = Registry(registry_uri)
    ensure_ray()
    phases["prepare data"] = time.perf_counter() - started
    stages: list[StageResult] = []
    for component in ("retriever", "reranker"):
        started = time.perf_counter()
        if train:
            run = StageRun.from_recipe(recipe.resources, workers, use_gpu)
            stages += train_component(recipe, component, dataset_dir, registry, run)
        else:
            stages += published_stages(recipe, component, dataset_dir, registry, recipe.searched_stages(component))
        phases[f"{'train' if train else 'find'} {component}"] = time.perf_counter() - started
    checkpoints = {
        component: {result.stage: result.checkpoint.id for result in stages if result.component == component}
        for component in ("retriever", "reranker")
    }
    started = time.perf_counter()
    selection = select_backbone(
        recipe,
        dataset_dir,
        registry,
        checkpoints,
        report_dir or backbone_home() / "reports" / recipe.name,
        stage_tables=stage_tables(recipe, dataset_dir, registry, stages),
    )
    phases["search and release"] = time.perf_counter() - started
    return PipelineRun(selection, stages, phases)


@dataclass(frozen=True)
class Trained:
    """What :func:`train_recipe` trained, as tables.

    Args:
        recipe: the recipe's name.
        run: the workers and resources each stage ran with.
        tables: each component's per-stage table (Markdown), baselines first.
    """

    recipe: str
    run: StageRun
    tables: list[str]

    def markdown(self, command: str) -> str:
        """The tables as a Markdown page that names the command regenerating it, the machine and the date."""
        machine = f"{os.cpu_count()} CPU cores" + (", GPU" if self.run.use_gpu else "")
        return (
            f"# Per-stage results: {self.recipe}\n\n"
            f"Regenerate with `{command}` ({self.run.workers} Ray Train workers, {machine}, "
            f"{datetime.now(UTC):%Y-%m-%d}). Metrics are on the recipe's evaluation split; the retriever's over the "
            "whole corpus, the reranker's over its fixed candidate lists (BM25's or the untrained retriever's, as "
            "`reranker.candidates` says).\n\n" + "\n\n".join(self.tables) + "\n"
        )


def train_recipe(
    recipe_path: Path,
    *,
    components: Sequence[ComponentName] = ("retriever", "reranker"),
    stages: Sequence[str] | None = None,
    registry_uri: str | None = None,
    workers: int | None = None,
    use_gpu: bool | None = None,
) -> Trained:
    """Train components of a recipe through their curricula; return each one's per-stage table (Markdown).

    Each table starts with what the stages must beat (BM25; for the reranker also the retriever's own order when
    it reranks the retriever's candidates) and then the base model and every stage trained or reused.

    Args:
        recipe_path: the recipe's YAML file.
        components: which components to train, in order.
        stages: train each component up to these stages of its curriculum (default: every stage).
        registry_uri: the artifact registry (default: ``$BACKBONE_REGISTRY``).
        workers: Ray Train workers per stage (default: the recipe's).
        use_gpu: train on GPUs (default: the recipe's).

    Raises:
        BackboneError: a bad recipe, missing data or models, or a stage name a component's curriculum lacks.

    Example:
        >>> print(train_recipe(Path("jobs/recipes/stard-mini.yaml"), components=["retriever"]).tables[0])
        ... # doctest: +SKIP
        | retriever | recall@20 | ... |
    """
    recipe = load_recipe(recipe_path)
    dataset_dir = build_recipe_dataset(recipe.dataset, recipe.name)
    registry = Registry(registry_uri)
    ensure_ray()
    run = StageRun.from_recipe(recipe.resources, workers, use_gpu)
    trained = [
        result
        for component in components
        for result in train_component(recipe, component, dataset_dir, registry, run, stages)
    ]
    # After training: the reranker's "retriever order" row reads the retriever's published base checkpoint.
    return Trained(recipe.name, run, stage_tables(recipe, dataset_dir, registry, trained))


def job_main(argv: list[str] | None, *, train: bool, description: str) -> int:
    """The command line of ``jobs/pipeline.py`` (``train=True``) and ``jobs/tune.py`` (``train=False``).

    Example:
        >>> job_main(["--recipe", "jobs/recipes/stard-mini.yaml"], train=False, description="search")  # doctest: +SKIP
        0
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--recipe", type=Path, required=True, help="The recipe's YAML file.")
    parser.add_argument("--registry", help="Artifact registry URI (default: $BACKBONE_REGISTRY).")
    parser.add_argument("--report-dir", type=Path, help="Report folder (default: $BACKBONE_HOME/reports/<recipe>).")
    if train:
        parser.add_argument("--workers", type=int, help="Ray Train workers per stage (default: the recipe's).")
        parser.add_argument(
            "--gpu", action=argparse.BooleanOptionalAction, default=None, help="Train on GPUs (default: the recipe's)."
        )
    args = parser.parse_args(argv)
    try:
        finished = run_pipeline(
            args.recipe,
            registry_uri=args.registry,
            workers=getattr(args, "workers", None),
            use_gpu=getattr(args, "gpu", None),
            report_dir=args.report_dir,
            train=train,
        )
    except BackboneError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(finished.describe())
    return 0
