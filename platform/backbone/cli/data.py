"""``backbone data``: prepare raw datasets, cut deterministic subsets, and describe prepared datasets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from backbone.data import (
    DatasetManifest,
    UnknownJudgments,
    build_recipe_dataset,
    build_subset,
    load_beir,
    load_dataset,
    load_stard,
    prepare_dataset,
    read_manifest,
    resolve_stard_source,
)
from backbone.errors import BackboneError
from backbone.recipes import load_recipe

app = typer.Typer(
    help="Prepare, subset and inspect retrieval datasets (corpus, queries, judgments, training pairs).",
    no_args_is_help=True,
)
prepare_app = typer.Typer(
    help="Check a raw dataset and write it prepared: Parquet tables, training pairs and a manifest.",
    no_args_is_help=True,
)
app.add_typer(prepare_app, name="prepare")

OutDir = Annotated[Path, typer.Option("--out", help="Prepared dataset directory to create.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace an existing prepared dataset at --out.")]
Name = Annotated[str | None, typer.Option("--name", help="Dataset name recorded in the manifest.")]


@prepare_app.command("stard")
def prepare_stard(
    out: OutDir,
    source: Annotated[
        Path | None,
        typer.Option(
            "--source",
            help="Local STARD copy (queries.json, corpus.jsonl, example/; or a clone with them under data/). "
            "Default: $BACKBONE_DATA_DIR/stard, else a download from GitHub.",
        ),
    ] = None,
    name: Name = None,
    overwrite: Overwrite = False,
) -> None:
    """Prepare STARD: every example/<split>.query.txt is a split judged by queries.json's match_id."""
    manifest = prepare_dataset(load_stard(resolve_stard_source(source)), out, name=name or "stard", overwrite=overwrite)
    typer.echo(f"wrote {out}\n{describe(manifest)}")


@prepare_app.command("beir")
def prepare_beir(
    source: Annotated[
        Path, typer.Option("--source", help="BEIR-format directory: corpus.jsonl, queries.jsonl, qrels/<split>.tsv.")
    ],
    out: OutDir,
    trec_qrels: Annotated[
        list[str] | None,
        typer.Option(
            "--trec-qrels",
            metavar="SPLIT=FILE",
            help="Add (or replace) a split from a TREC qrels file; repeatable.",
        ),
    ] = None,
    unknown_judgments: Annotated[
        UnknownJudgments,
        typer.Option(
            "--unknown-judgments",
            help="A judgment (qrels or --trec-qrels) naming a doc the corpus lacks: error stops at its file:line, "
            "drop leaves it out and counts it per split in the manifest. An unknown query is always an error.",
        ),
    ] = "error",
    name: Name = None,
    overwrite: Overwrite = False,
) -> None:
    """Prepare a BEIR-format dataset; each qrels/<split>.tsv (and each --trec-qrels) is a split."""
    qrels = {split: Path(file) for split, file in _assignments(trec_qrels or [], "--trec-qrels").items()}
    dataset = load_beir(source, qrels, unknown_judgments=unknown_judgments)
    manifest = prepare_dataset(dataset, out, name=name or source.resolve().name, overwrite=overwrite)
    typer.echo(f"wrote {out}\n{describe(manifest)}")


@app.command("subset")
def subset(
    dataset_dir: Annotated[Path, typer.Argument(metavar="IN", help="Prepared dataset to sample from.")],
    out: OutDir,
    queries: Annotated[
        list[str],
        typer.Option(
            "--queries",
            metavar="SPLIT=N",
            help="Queries to sample from a split; repeatable. Splits not named are left out.",
        ),
    ],
    seed: Annotated[int, typer.Option("--seed", help="Seed of every sample.")] = 13,
    corpus_size: Annotated[
        int, typer.Option("--corpus-size", help="Documents to keep: all judged by the sampled queries, then others.")
    ] = 5000,
    name: Name = None,
    overwrite: Overwrite = False,
) -> None:
    """Cut a deterministic subset of a prepared dataset and prepare it (same seed, same subset)."""
    counts = {}
    for split, value in _assignments(queries, "--queries").items():
        if not value.isdigit():
            raise BackboneError(f"--queries {split}={value}: N must be a whole number")
        counts[split] = int(value)
    parent = load_dataset(dataset_dir)
    small = build_subset(parent, seed=seed, queries=counts, corpus_size=corpus_size)
    manifest = prepare_dataset(small, out, name=name or f"{parent.source['name']}-subset", overwrite=overwrite)
    typer.echo(f"wrote {out}\n{describe(manifest)}")


@app.command("build")
def build(
    recipe_file: Annotated[Path, typer.Argument(metavar="RECIPE", help="Recipe whose dataset to prepare.")],
) -> None:
    """Prepare the dataset a recipe names (and its subset) under $BACKBONE_DATASETS_DIR; reuse it if done."""
    recipe = load_recipe(recipe_file)
    out = build_recipe_dataset(recipe.dataset, recipe.name)
    typer.echo(f"dataset of {recipe_file}: {out}\n{describe(read_manifest(out))}")


@app.command("show")
def show(
    dataset_dir: Annotated[Path, typer.Argument(metavar="DIR", help="Prepared dataset directory.")],
) -> None:
    """Describe a prepared dataset from its manifest: corpus size, splits, dropped judgments, tables, provenance."""
    typer.echo(describe(read_manifest(dataset_dir)))


def describe(manifest: DatasetManifest) -> str:
    """A small plain-text table of a manifest's counts, tables and source, as ``backbone data show`` prints it.

    Args:
        manifest: a prepared dataset's manifest.

    Example:
        >>> print(describe(read_manifest(Path("out/stard"))))  # doctest: +SKIP
        name     stard
        ...
    """
    counts = manifest.counts
    split_width = max([len("split"), *map(len, counts.splits)])
    unjudged = "" if counts.unjudged_queries is None else f" ({counts.unjudged_queries} without judgments, in no split)"
    lines = [
        f"name     {manifest.name}",
        f"created  {manifest.created_at.isoformat(timespec='seconds')}",
        f"corpus   {counts.corpus} docs",
        f"queries  {counts.queries}{unjudged}",
    ]
    dropped: dict[str, int] | None = manifest.source.get("dropped_judgments")
    if dropped is not None:
        per_split = ", ".join(f"{split} {count}" for split, count in dropped.items())
        lines.append(f"dropped  {sum(dropped.values())} judgments of docs not in the corpus ({per_split})")
    lines += [
        "",
        f"{'split':<{split_width}}  {'queries':>9}  {'judgments':>9}",
        *(
            f"{split:<{split_width}}  {split_counts.queries:>9}  {split_counts.judgments:>9}"
            for split, split_counts in counts.splits.items()
        ),
    ]
    if counts.tables:
        table_width = max(map(len, counts.tables))
        lines += ["", "tables", *(f"  {table:<{table_width}}  {rows} rows" for table, rows in counts.tables.items())]
    lines += ["", "source", json.dumps(manifest.source, ensure_ascii=False, indent=2)]
    return "\n".join(lines)


def _assignments(values: list[str], option: str) -> dict[str, str]:
    # Repeatable SPLIT=VALUE options; a split named twice is a mistake, not a silent override.
    parsed: dict[str, str] = {}
    for value in values:
        split, sep, rest = value.partition("=")
        if not sep or not split.strip() or not rest.strip():
            raise BackboneError(f"{option} expects SPLIT=VALUE, got {value!r}")
        if split.strip() in parsed:
            raise BackboneError(f"{option} names split {split.strip()!r} twice")
        parsed[split.strip()] = rest.strip()
    return parsed
