"""``backbone run``, ``backbone train``, ``backbone evaluate`` and ``backbone compare``: run a recipe end to end,
train its curricula alone, score a release or a checkpoint on any prepared dataset, and A/B two releases offline."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from backbone.cli.registry import RegistryOption
from backbone.component_name import ComponentName
from backbone.registry import Registry

if TYPE_CHECKING:
    from backbone.selection import Evaluation, Scored

# Commands import the pipeline, selection and Ray when they run: `backbone --help` and the light commands start fast.


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
    from backbone.pipeline import run_pipeline

    finished = run_pipeline(
        recipe, registry_uri=registry, workers=workers, use_gpu=gpu, report_dir=report_dir, train=not search_only
    )
    typer.echo(finished.describe())


def train(
    recipe: Annotated[Path, typer.Argument(help="The recipe's YAML file, e.g. jobs/recipes/stard-mini.yaml.")],
    component: Annotated[
        Literal["retriever", "reranker", "all"],
        typer.Option(help="Which component to train; all: the retriever, then the reranker."),
    ] = "all",
    stages: Annotated[
        list[str] | None,
        typer.Option("--stage", help="Train up to this stage of each curriculum (repeatable; default: every stage)."),
    ] = None,
    registry: RegistryOption = None,
    workers: Annotated[int | None, typer.Option(help="Ray Train workers per stage (default: the recipe's).")] = None,
    gpu: Annotated[bool | None, typer.Option("--gpu/--no-gpu", help="Train on GPUs (default: the recipe's).")] = None,
    report: Annotated[Path | None, typer.Option(help="Also write the tables to this Markdown file.")] = None,
) -> None:
    """Prepare the data and train components through their curricula alone; print each per-stage table.

    Every stage already in the registry is reused. Starts a private local Ray unless RAY_ADDRESS names a cluster.
    """
    components: list[ComponentName] = ["retriever", "reranker"] if component == "all" else [component]
    from backbone.pipeline import train_recipe

    trained = train_recipe(
        recipe, components=components, stages=stages, registry_uri=registry, workers=workers, use_gpu=gpu
    )
    typer.echo("\n\n".join(trained.tables))
    if report is not None:
        report.write_text(trained.markdown(" ".join(["backbone", *sys.argv[1:]])), encoding="utf-8")


def compare(
    release_a: Annotated[str, typer.Argument(help="The control: NAME (its current version) or NAME@VERSION.")],
    release_b: Annotated[str, typer.Argument(help="The treatment: NAME or NAME@VERSION.")],
    split: Annotated[str, typer.Option(help="Evaluation split of the releases' dataset.")] = "dev",
    metric: Annotated[str, typer.Option(help="Per-query metric compared.")] = "ndcg@10",
    registry: RegistryOption = None,
) -> None:
    """Offline A/B of two releases on the same queries: wins, ties, losses, a paired test, latency difference."""
    from backbone.ray_runtime import ensure_ray
    from backbone.selection import compare_releases

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


def evaluate(
    target: Annotated[
        str, typer.Argument(help="A release (NAME, or NAME@VERSION) or the id of a retriever or reranker checkpoint.")
    ],
    dataset: Annotated[
        Path, typer.Option(help="A prepared dataset folder (backbone data prepare ...): its split is scored.")
    ],
    split: Annotated[str, typer.Option(help="The split whose judged queries are scored.")] = "test",
    metrics: Annotated[
        str, typer.Option(help="Comma-separated metric@k names (ranx's: ndcg, mrr, recall, precision, map, ...).")
    ] = "ndcg@10,mrr@10,recall@10,recall@100",
    k: Annotated[int, typer.Option(help="For a reranker checkpoint: how many candidates it reorders.")] = 20,
    candidates: Annotated[
        str | None,
        typer.Option(help="For a reranker checkpoint: the retriever checkpoint whose top K it reorders."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write each ranking as TREC and the per-query metrics as Parquet here.")
    ] = None,
    registry: RegistryOption = None,
) -> None:
    """Score what serves (or a checkpoint) on a split of any prepared dataset: each component and each application.

    Uses the search's own evaluation and caches; a corpus with no index yet is encoded first (said in the output).
    """
    from backbone.ray_runtime import ensure_ray
    from backbone.selection import evaluate_target, write_evaluation

    ensure_ray()
    names = [metric.strip() for metric in metrics.split(",") if metric.strip()]
    evaluation = evaluate_target(Registry(registry), target, dataset, split, names, k=k, candidates=candidates)
    typer.echo(_evaluation_text(evaluation))
    if out is not None:
        written = write_evaluation(evaluation, out)
        typer.echo(f"wrote {len(written)} files to {out}: " + ", ".join(path.name for path in written))


def _evaluation_text(evaluation: Evaluation) -> str:
    lines = [
        f"{evaluation.target} on split {evaluation.split!r} of {evaluation.dataset} ({evaluation.queries} queries)",
        *(f"note: {note}" for note in evaluation.notes),
        f"model work: {evaluation.work}",
        "",
        "Each component on its own",
        *_metrics_table("ranking", evaluation.components, evaluation.metrics),
    ]
    if evaluation.applications:
        lines += [
            "",
            "Each application end to end",
            *_metrics_table("application", evaluation.applications, evaluation.metrics),
        ]
    return "\n".join(lines)


def _metrics_table(first: str, rows: list[Scored], metrics: list[str]) -> list[str]:
    return [
        f"| {first} | how | " + " | ".join(metrics) + " |",
        "| --- | --- | " + " | ".join("---:" for _ in metrics) + " |",
        *(
            f"| {row.name} | {row.description} | " + " | ".join(f"{row.metrics[m]:.4f}" for m in metrics) + " |"
            for row in rows
        ),
    ]
