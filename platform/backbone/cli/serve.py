"""``backbone deploy``, ``backbone status`` and ``backbone rollback``: serving a release on Ray Serve."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from backbone.cli.registry import (
    JsonOption,
    RechooseKOption,
    RechooseRecipeOption,
    RegistryOption,
    rechoose_release,
    recipe_to_rechoose_with,
    warn_stale_settings,
)
from backbone.component_name import ComponentName
from backbone.registry import Registry, Releases

AddressOption = Annotated[
    str | None,
    typer.Option(
        "--address",
        help="Ray dashboard address. Default: $RAY_DASHBOARD_ADDRESS, else http://127.0.0.1:8265.",
        show_default=False,
    ),
]


def deploy(
    release: Annotated[str, typer.Argument(help="The release whose current version to serve.")],
    registry: RegistryOption = None,
    documents: Annotated[
        Path | None,
        typer.Option(
            help="Prepared dataset holding the indexed documents, on every replica's node. Default: the documents "
            "the index artifact carries, read from the registry (an older index without them: the dataset under "
            "$BACKBONE_DATASETS_DIR whose checksum its lineage records).",
            show_default=False,
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address Serve's HTTP proxy binds; 0.0.0.0 exposes it.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of Serve's HTTP proxy.")] = 8000,
    scaling: Annotated[
        Path | None,
        typer.Option(
            help="YAML file of the deployments' replicas (fixed or autoscaling), CPUs/GPUs per replica and queue "
            "bounds (see serve_configs/scaling/autoscaling.yaml). Default: one replica each, half a CPU, no GPU, "
            "bounded queues.",
            show_default=False,
        ),
    ] = None,
    config_out: Annotated[
        Path | None, typer.Option(help="Also write the Serve config here (for `serve deploy` / `serve run`).")
    ] = None,
    api_keys_file: Annotated[
        Path | None,
        typer.Option(
            help="API keys requests must send as 'Authorization: Bearer KEY', one a line. Default: "
            "$BACKBONE_API_KEYS (comma-separated), else none. Only their SHA-256 hashes are deployed.",
            show_default=False,
        ),
    ] = None,
    allow_unauthenticated: Annotated[
        bool,
        typer.Option(
            "--allow-unauthenticated",
            help="Serve without API keys on a non-loopback --host, or turn off the keys the served gateway asks for.",
        ),
    ] = False,
    address: AddressOption = None,
) -> None:
    """Serve a release's current version on the running Ray cluster; wait until Serve runs it."""
    # Serve and the models load only when a command runs.
    from backbone.serving import auth, cluster, serve_config
    from backbone.serving import deploy as serving

    keys = auth.read_api_keys(api_keys_file)
    record, _ = serving.deploy(
        release,
        Registry(registry),
        cluster.ServeCluster(address),
        documents=documents,
        host=host,
        port=port,
        scaling=serve_config.load_scaling(scaling) if scaling else None,
        config_out=config_out,
        api_keys=keys,
        allow_unauthenticated=allow_unauthenticated,
    )
    typer.echo(
        f"serving {record.name} v{record.version} at http://{host}:{port} "
        f"(retriever {record.retriever.checkpoint}, index {record.retriever.index}, "
        f"reranker {record.reranker.checkpoint}; {f'{len(keys)} API key(s)' if keys else 'no API key'} asked)"
    )


def status(address: AddressOption = None, as_json: JsonOption = False) -> None:
    """Show what serves now: the release version, each component's artifacts, status and replicas."""
    from backbone.serving.cluster import ServeCluster  # Serve loads only when a command runs

    report = ServeCluster(address).status()
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    lines = [f"{report['release']} v{report['release_version']}: {report['status']} at {report['url']}"]
    for name, deployment in report["deployments"].items():
        serves = ", ".join(f"{key} {value}" for key, value in deployment["serves"].items())
        replicas = f"{deployment['replicas']}/{deployment['target_replicas']}"  # running / what Serve scales to
        lines.append(f"  {name:<10} {deployment['status']:<10} replicas {replicas}  {serves}".rstrip())
    typer.echo("\n".join(lines))


def rollback(
    component: Annotated[ComponentName, typer.Argument(help="retriever or reranker.")],
    to: Annotated[
        int | None,
        typer.Option("--to", help="Release version whose component to serve again. Default: the previous one."),
    ] = None,
    note: Annotated[str, typer.Option(help="Why, kept in the release history.")] = "",
    rechoose_k: RechooseKOption = False,
    recipe: RechooseRecipeOption = None,
    address: AddressOption = None,
) -> None:
    """Roll one component of the served release back; the other keeps its replicas running.

    With --rechoose-k the re-chosen K and weights are served at once (only the gateway's config changes).
    """
    from backbone.serving import deploy as serving  # Serve and the models load only when a command runs
    from backbone.serving.cluster import ServeCluster

    rechoose_with = recipe_to_rechoose_with(rechoose_k, recipe)
    cluster = ServeCluster(address)
    record = serving.rollback(component, cluster, to_version=to, note=note)
    typer.echo(f"{record.name} v{record.version}: {record.change}")
    if rechoose_with is not None:
        rechosen = rechoose_release(Releases(Registry(serving.served_registry(cluster))), record.name, rechoose_with)
        serving.serve_settings(rechosen, cluster)
        typer.echo(f"serving v{rechosen.version}'s K and weight of every application")
    else:
        warn_stale_settings(record)
