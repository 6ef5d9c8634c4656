"""``backbone registry`` and ``backbone release``: inspect artifacts, and the releases that serve them."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from backbone import settings
from backbone.component_name import ComponentName
from backbone.errors import BackboneError
from backbone.registry import (
    ArtifactKind,
    ArtifactManifest,
    Registry,
    ReleaseRecord,
    Releases,
    delete_garbage,
    find_garbage,
)

app = typer.Typer(help="Inspect the artifacts in the registry.", no_args_is_help=True)
release_app = typer.Typer(
    help="Inspect releases (which artifacts serve, and their history) and promote a checkpoint into one.",
    no_args_is_help=True,
)

RegistryOption = Annotated[
    str | None,
    typer.Option(
        "--registry",
        help="Registry root, a path or s3:// / gs:// URI. Default: $BACKBONE_REGISTRY, else $BACKBONE_HOME/registry.",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
RechooseKOption = Annotated[
    bool,
    typer.Option(
        "--rechoose-k",
        help="Then choose each application's K and weight again for the pair now served, from the search's cached "
        "evidence (model work only for what it lacks); needs --recipe.",
    ),
]
RechooseRecipeOption = Annotated[
    Path | None, typer.Option(help="The recipe the release was searched with (for --rechoose-k).")
]


@app.command("list")
def list_artifacts(
    kind: Annotated[ArtifactKind | None, typer.Option(help="Only artifacts of this kind.")] = None,
    registry: RegistryOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the published artifacts, oldest first."""
    store = Registry(registry)
    manifests = store.list(kind)
    if as_json:
        typer.echo(json.dumps([manifest.model_dump(mode="json") for manifest in manifests], indent=2))
        return
    if not manifests:
        typer.echo(f"no {f'{kind} ' if kind else ''}artifacts in {store.uri}")
        return
    rows = [
        (m.id, m.kind, m.name, _time(m), _size(m), ", ".join(f"{k}={v:.4g}" for k, v in sorted(m.metrics.items())))
        for m in manifests
    ]
    typer.echo(_table(("id", "kind", "name", "created", "size", "metrics"), rows))


@app.command()
def show(
    artifact_id: Annotated[str, typer.Argument(metavar="ID", help="The artifact's id.")],
    registry: RegistryOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show an artifact's manifest: kind, lineage, metrics, settings and files."""
    manifest = Registry(registry).get(artifact_id)
    if as_json:
        typer.echo(manifest.model_dump_json(indent=2))
        return
    lineage = manifest.lineage
    lines = [
        f"id:         {manifest.id}",
        f"kind:       {manifest.kind}",
        f"name:       {manifest.name}",
        f"created:    {_time(manifest)}",
        f"parents:    {', '.join(lineage.parents) or '-'}",
        f"recipe:     {lineage.recipe_hash or '-'}",
        f"dataset:    {lineage.dataset_checksum or '-'}",
        f"code:       {lineage.code_version}",
        f"cache key:  {manifest.cache_key or '-'}",
        "metrics:" + ("" if manifest.metrics else "    -"),
        *(f"  {key}: {value:g}" for key, value in sorted(manifest.metrics.items())),
        "params:" + ("" if manifest.params else "     -"),
        *(f"  {key}: {json.dumps(value)}" for key, value in sorted(manifest.params.items())),
        f"files:      {len(manifest.files)}, {_size(manifest)}",
        *(f"  {entry.sha256[:12]}  {entry.size:>12}  {path}" for path, entry in sorted(manifest.files.items())),
    ]
    typer.echo("\n".join(lines))


@app.command()
def verify(
    artifact_id: Annotated[str, typer.Argument(metavar="ID", help="The artifact's id.")],
    registry: RegistryOption = None,
) -> None:
    """Hash every stored file of an artifact and check it against its manifest (exit 2 on a mismatch)."""
    manifest = Registry(registry).verify(artifact_id)
    typer.echo(f"{manifest.id}: {len(manifest.files)} files intact ({_size(manifest)})")


@app.command()
def gc(
    older_than: Annotated[
        float, typer.Option(min=0.0, help="Only what is at least this many hours old (keep it above your longest run).")
    ] = 24.0,
    downloads: Annotated[
        bool, typer.Option(help="Also delete local copies of remote artifacts ($BACKBONE_HOME/cache).")
    ] = False,
    run_state: Annotated[
        bool,
        typer.Option(
            help="Also delete Ray Train's and Ray Tune's resume state under the registry (ray-train/, ray-tune/): "
            "an older interrupted stage or search then starts again instead of resuming."
        ),
    ] = False,
    dry_run: Annotated[bool, typer.Option(help="List what would be deleted; delete nothing.")] = False,
    registry: RegistryOption = None,
) -> None:
    """Delete what no artifact or release needs: unpublished artifact folders, temporary files, drafts, and more.

    Published artifacts and release versions are never touched.
    """
    store = Registry(registry)
    garbage = find_garbage(store, timedelta(hours=older_than), downloads=downloads, run_state=run_state)
    if not garbage:
        typer.echo(f"nothing to delete in {store.uri} or {settings.backbone_home()} older than {older_than:g} h")
        return
    rows = [(item.kind, item.location, _bytes(item.size)) for item in garbage]
    typer.echo(_table(("kind", "location", "size"), rows))
    total = _bytes(sum(item.size for item in garbage))
    if dry_run:
        typer.echo(f"would free {total} (--dry-run: nothing deleted)")
        return
    delete_garbage(store, garbage)
    typer.echo(f"deleted {len(garbage)}, freed {total}")


@release_app.command("show")
def show_release(
    name: Annotated[str, typer.Argument(help="The release's name.")],
    version: Annotated[int | None, typer.Option(help="Show this version instead of the current one.")] = None,
    registry: RegistryOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show what a release serves: its retriever (checkpoint, index), reranker, and application settings."""
    releases = Releases(Registry(registry))
    record = releases.current(name) if version is None else releases.get(name, version)
    if as_json:
        typer.echo(record.model_dump_json(indent=2))
        return
    lines = [
        f"release:    {record.name} v{record.version}" + (" (current)" if version is None else ""),
        f"created:    {record.created_at.isoformat(timespec='seconds')}",
        f"change:     {record.change}",
        f"note:       {record.note or '-'}",
        f"retriever:  {record.retriever.checkpoint}",
        f"  index:    {record.retriever.index or '-'}",
        f"reranker:   {record.reranker.checkpoint}",
        "applications:" + ("" if record.applications else " -"),
        *(
            f"  {app_name}: k={settings.k} top_n={settings.top_n} rerank={'yes' if settings.rerank else 'no'} "
            f"weight={settings.weight:g}"
            for app_name, settings in sorted(record.applications.items())
        ),
        "chosen for: "
        + (
            f"retriever {chosen.retriever}, reranker {chosen.reranker}"
            if (chosen := record.settings_chosen_for)
            else "- (set by hand)"
        ),
    ]
    typer.echo("\n".join(lines))
    warn_stale_settings(record)


@release_app.command()
def promote(
    name: Annotated[str, typer.Argument(help="The release.")],
    component: Annotated[ComponentName, typer.Argument(help="retriever or reranker.")],
    artifact: Annotated[str, typer.Argument(metavar="ARTIFACT", help="Id of the checkpoint to serve.")],
    index: Annotated[
        str | None,
        typer.Option(
            help="For a retriever: the index to serve with it. Default: keep the index served now if it was built "
            "with the checkpoint's document encoder (an index-compatible retriever), else serve without one.",
            show_default=False,
        ),
    ] = None,
    note: Annotated[str, typer.Option(help="Why, kept in the release history.")] = "",
    rechoose_k: RechooseKOption = False,
    recipe: RechooseRecipeOption = None,
    registry: RegistryOption = None,
) -> None:
    """Append a version of a release that serves ARTIFACT as its COMPONENT; the other component is unchanged.

    This changes the registry only: a running deployment picks it up with `backbone deploy NAME`.
    """
    rechoose_with = recipe_to_rechoose_with(rechoose_k, recipe)
    releases = Releases(Registry(registry))
    record = releases.promote(name, component, artifact, index=index, note=note)
    typer.echo(f"{record.name} v{record.version}: {record.change}")
    if rechoose_with is not None:
        rechoose_release(releases, name, rechoose_with)
    else:
        warn_stale_settings(record)


@release_app.command()
def rechoose(
    name: Annotated[str, typer.Argument(help="The release.")],
    recipe: Annotated[Path, typer.Option(help="The recipe the release was searched with.")],
    registry: RegistryOption = None,
) -> None:
    """Choose each application's K and weight again for the pair the release serves now (after a promotion or a
    rollback), as the search would, from its cached evidence; append the version if anything changed."""
    rechoose_release(Releases(Registry(registry)), name, recipe)


def recipe_to_rechoose_with(rechoose_k: bool, recipe: Path | None) -> Path | None:
    """The recipe of ``--rechoose-k --recipe R`` (None without ``--rechoose-k``), checked before anything changes.

    Raises:
        BackboneError: ``--rechoose-k`` without ``--recipe``.
    """
    if rechoose_k and recipe is None:
        raise BackboneError("--rechoose-k needs --recipe: the recipe the release was searched with")
    return recipe if rechoose_k else None


def rechoose_release(releases: Releases, name: str, recipe: Path) -> ReleaseRecord:
    """Choose each application's K and weight again for the pair release ``name`` serves now, record the new
    version, print what changed, and return it (``backbone release rechoose`` and every ``--rechoose-k``)."""
    from backbone.data import build_recipe_dataset
    from backbone.ray_runtime import ensure_ray
    from backbone.recipes import load_recipe
    from backbone.selection import rechoose_settings

    loaded = load_recipe(recipe)
    dataset_dir = build_recipe_dataset(loaded.dataset, loaded.name)
    ensure_ray()
    settings, work = rechoose_settings(loaded, dataset_dir, releases.registry, releases.current(name))
    rechosen = releases.set_settings(name, settings, note=f"re-chosen with recipe {recipe}")
    typer.echo(f"model work: {work}")
    typer.echo(f"{rechosen.name} v{rechosen.version}: {rechosen.change}")
    return rechosen


def warn_stale_settings(record: ReleaseRecord) -> None:
    """Print, on stderr, :meth:`ReleaseRecord.stale_settings`' warning if there is one."""
    if (warning := record.stale_settings()) is not None:
        typer.echo(f"warning: {warning}", err=True)


@release_app.command()
def history(
    name: Annotated[str, typer.Argument(help="The release's name.")],
    registry: RegistryOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show every version of a release, oldest first: what served, and what each version changed."""
    records = Releases(Registry(registry)).history(name)
    if as_json:
        typer.echo(json.dumps([record.model_dump(mode="json") for record in records], indent=2))
        return
    headers = ("version", "created", "retriever checkpoint", "index", "reranker checkpoint", "change")
    typer.echo(_table(headers, [_history_row(record) for record in records]))


def _history_row(record: ReleaseRecord) -> tuple[str, ...]:
    return (
        f"v{record.version}",
        record.created_at.isoformat(timespec="seconds"),
        record.retriever.checkpoint,
        record.retriever.index or "-",
        record.reranker.checkpoint,
        record.change + (f" ({record.note})" if record.note else ""),
    )


def _time(manifest: ArtifactManifest) -> str:
    return manifest.created_at.isoformat(timespec="seconds")


def _size(manifest: ArtifactManifest) -> str:
    """The artifact's total size, human readable."""
    return _bytes(sum(entry.size for entry in manifest.files.values()))


def _bytes(size: int) -> str:
    """``size`` bytes, human readable."""
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    exponent = min(int(math.log(size, 1024)) if size else 0, len(units) - 1)
    return f"{size} B" if exponent == 0 else f"{size / 1024**exponent:.1f} {units[exponent]}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """``rows`` as left-aligned columns under ``headers``, two spaces apart."""
    cells = [[str(cell) for cell in row] for row in (headers, *rows)]
    widths = [max(len(row[column]) for row in cells) for column in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in cells
    )
