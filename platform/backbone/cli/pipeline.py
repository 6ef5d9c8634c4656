"""``backbone run`` and ``backbone compare``: run a recipe end to end, and A/B two releases offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from backbone.cli.registry import RegistryOption
from backbone.pipeline import run_pipeline
from backbone.ray_runtime import ensure_ray
from backbone.registry import Registry
from backbone.selection import compare_releases


def run(
    recipe: Annotated[Path, typer.Argument(help="The recipe's YAML file, e.g. jobs/recipes/stard-mini.yaml.")],
    registry: RegistryOption = None,
    workers: Annotated[int | None, typer.Option(help="Ray Train workers per stage (default: the recipe's).")] = None,
    gpu: Annotated[bool | None, typer.Option("--gpu/--no-gpu", help="Train on GPUs (default: the recipe's).")] = None,
    report_dir: Annotated[
        Path | None, typer.Option(help="Report folder (default: $BACKBONE_HOME/reports/<recipe name>).")
    ] = None,
    search_only: Annotated[
        bool, typer.Option("--search-only", help="Train nothing: search over stages already in the registry.")
    ] = False,
) -> None:
    """Prepare the data, train both curricula, search stage assignments end to end, write the release and report.

    Starts a private local Ray unless RAY_ADDRESS names a cluster. Everything already in the registry is reused.
    """
    selection = run_pipeline(
        recipe, registry_uri=registry, workers=workers, use_gpu=gpu, report_dir=report_dir, train=not search_only
    )
    typer.echo(selection.describe())


def compare(
    release_a: Annotated[str, typer.Argument(help="The control: NAME (its current version) or NAME@VERSION.")],
    release_b: Annotated[str, typer.Argument(help="The treatment: NAME or NAME@VERSION.")],
    split: Annotated[str, typer.Option(help="Evaluation split of the releases' dataset.")] = "dev",
    metric: Annotated[str, typer.Option(help="Per-query metric compared.")] = "ndcg@10",
    registry: RegistryOption = None,
) -> None:
    """Offline A/B of two releases on the same queries: wins, ties, losses, a paired test, latency difference."""
    ensure_ray()
    rows = compare_releases(Registry(registry), release_a, release_b, split=split, metric=metric)
    typer.echo(f"B = {release_b} against A = {release_a} on split {split!r}, per-query {metric}")
    typer.echo(
        "| application | A | B | B - A | wins | ties | losses | p (randomisation) | latency A ms | latency B ms |"
    )
    typer.echo("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        typer.echo(
            f"| {row.application} | {row.mean_a:.4f} | {row.mean_b:.4f} | {row.mean_b - row.mean_a:+.4f} | "
            f"{row.wins} | {row.ties} | {row.losses} | {row.p_value:.4f} | {row.latency_a_ms:.1f} | "
            f"{row.latency_b_ms:.1f} |"
        )
