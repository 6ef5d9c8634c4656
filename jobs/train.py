"""Train a recipe's components through their curricula on Ray Train; print the per-stage metrics.

Run directly (starts a private local Ray):
    python jobs/train.py --recipe jobs/recipes/stard-mini.yaml --component all
or on a cluster:
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \
        python jobs/train.py --recipe jobs/recipes/stard-mini.yaml --component all
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from backbone.data import build_recipe_dataset
from backbone.errors import BackboneError
from backbone.ray_runtime import ensure_ray
from backbone.recipes import load_recipe
from backbone.registry import Registry
from backbone.training import StageRun, baseline_rows, results_table, train_component


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", type=Path, required=True, help="The recipe's YAML file.")
    parser.add_argument(
        "--component", choices=["retriever", "reranker", "all"], default="all", help="Which component to train."
    )
    parser.add_argument("--stages", nargs="+", help="Train up to these stages (default: every stage).")
    parser.add_argument("--workers", type=int, help="Ray Train workers per stage (default: the recipe's).")
    parser.add_argument(
        "--gpu",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Train on GPUs, or not (default: the recipe's; auto: if the cluster has any).",
    )
    parser.add_argument("--registry", help="Artifact registry URI (default: $BACKBONE_REGISTRY).")
    parser.add_argument("--report", type=Path, help="Also write the tables to this Markdown file.")
    args = parser.parse_args(argv)
    try:
        recipe = load_recipe(args.recipe)
        dataset_dir = build_recipe_dataset(recipe.dataset, recipe.name)
        registry = Registry(args.registry)
        ensure_ray()
        run = StageRun.from_recipe(recipe.resources, args.workers, args.gpu)
        components = ["retriever", "reranker"] if args.component == "all" else [args.component]
        trained = {
            component: train_component(recipe, component, dataset_dir, registry, run, args.stages)
            for component in components
        }
        # After training: the reranker's "retriever order" row reads the retriever's published base checkpoint.
        baselines = baseline_rows(recipe, dataset_dir, registry)
        tables = []
        for component, results in trained.items():
            metrics = getattr(recipe.evaluation, f"{component}_metrics")
            rows = list(baselines[component])
            rows += [(f"{r.stage} ({r.checkpoint.id})", r.checkpoint.metrics) for r in results]
            tables.append(results_table(component, metrics, rows))
    except BackboneError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print("\n\n".join(tables))
    if args.report:
        args.report.write_text(_report(argv, recipe.name, run, tables), encoding="utf-8")
    return 0


def _report(argv: list[str] | None, recipe: str, run: StageRun, tables: list[str]) -> str:
    command = " ".join(["python jobs/train.py", *(sys.argv[1:] if argv is None else argv)])
    machine = f"{os.cpu_count()} CPU cores" + (", GPU" if run.use_gpu else "")
    return (
        f"# Per-stage results: {recipe}\n\n"
        f"Regenerate with `{command}` ({run.workers} Ray Train workers, {machine}, "
        f"{datetime.now(UTC):%Y-%m-%d}). Metrics are on the recipe's evaluation split; the retriever's over the "
        "whole corpus, the reranker's over its fixed candidate lists (BM25's or the untrained retriever's, as "
        "`reranker.candidates` says).\n\n" + "\n\n".join(tables) + "\n"
    )


if __name__ == "__main__":
    sys.exit(main())
