"""Deploy a registry release to a Serve cluster, and roll one component back, keeping the release history true.

The release history is the record of what serves: every change is a version, written before the cluster applies
it, and a change the cluster fails to apply is undone by one more version. Configs are built by
:mod:`backbone.serving.serve_config` and applied by :class:`backbone.serving.cluster.ServeCluster`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from backbone.component_name import ComponentName
from backbone.errors import BackboneError
from backbone.registry import DOCUMENTS_FILE, Registry, ReleaseRecord, Releases
from backbone.serving.auth import API_KEYS_ENV, check_exposure
from backbone.serving.cluster import ServeCluster
from backbone.serving.config import GatewayConfig, ServingScaling
from backbone.serving.serve_config import (
    deployment_configs,
    find_documents,
    serve_config,
    served_index,
    write_config,
)

_DEPLOYMENT = {"retriever": "Retriever", "reranker": "Reranker", "gateway": "Gateway"}


def deploy(
    release: str,
    registry: Registry,
    cluster: ServeCluster,
    *,
    documents: Path | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    scaling: ServingScaling | None = None,
    config_out: Path | None = None,
    api_keys: Sequence[str] = (),
    allow_unauthenticated: bool = False,
) -> tuple[ReleaseRecord, dict[str, Any]]:
    """Serve the current version of ``release`` on ``cluster``; write its Serve config to ``config_out`` too.

    Deploying again after a promotion changes only the promoted component's deployment. Deploying again with other
    ``scaling`` changes replica counts in place; a changed ``num_cpus``/``num_gpus`` replaces that deployment's
    replicas.

    Args:
        release: the release whose current version to serve.
        registry: the registry holding it.
        cluster: where to serve it.
        documents: a prepared dataset folder holding the indexed documents on every replica's node; default the
            documents the index artifact carries (for an index published without them, the prepared dataset
            under ``$BACKBONE_DATASETS_DIR`` whose checksum its lineage names).
        host: the address Serve's HTTP proxy binds.
        port: its port.
        scaling: replicas and resources of the retriever and the reranker (see :func:`serve_config`).
        config_out: also write the Serve config here.
        api_keys: the keys requests must send; none: no key asked (refused on a non-loopback ``host``, and when the
            served gateway asks for keys, unless ``allow_unauthenticated``).
        allow_unauthenticated: serve without keys on any host, and turn off the keys a served gateway asks for.

    Raises:
        BackboneError: no keys on a non-loopback host, or no keys where the served gateway asks for some, without
            ``allow_unauthenticated``; or the release cannot be served (see :func:`serve_config`).

    Example:
        >>> deploy("legal-search", Registry(), ServeCluster(), api_keys=read_api_keys())  # doctest: +SKIP
    """
    check_exposure(host, api_keys, allow_unauthenticated)
    if not api_keys and not allow_unauthenticated and _served_key_hashes(cluster):
        raise BackboneError(
            f"the served gateway asks for API keys and this deploy names none: set ${API_KEYS_ENV} or "
            "--api-keys-file, or pass --allow-unauthenticated to turn the keys off"
        )
    record = Releases(registry).current(release)
    folder = documents
    if folder is None and DOCUMENTS_FILE not in registry.get(served_index(record)).files:
        folder = find_documents(registry, served_index(record))  # an index published before it held its documents
    config = serve_config(record, registry, folder, host=host, port=port, scaling=scaling, api_keys=api_keys)
    if config_out is not None:
        write_config(config, config_out)
    cluster.apply(config)
    return record, config


def rollback(
    component: ComponentName, cluster: ServeCluster, *, to_version: int | None = None, note: str = ""
) -> ReleaseRecord:
    """Roll ``component`` of the served release back, record it in the release history, and apply only it.

    The release and registry are the ones the running application serves. The other component's deployment
    keeps its config, so its replicas keep running untouched.

    Args:
        component: ``"retriever"`` or ``"reranker"``.
        cluster: where the release serves.
        to_version: the release version whose component to serve again; default the previous different one.
        note: why, kept in the release history.

    Example:
        >>> rollback("reranker", ServeCluster()).change  # doctest: +SKIP
        'rollback reranker to v1: checkpoint-20250201T090000Z-99aa88bb'
    """
    config = cluster.deployed()
    serving_before = copy.deepcopy(config)
    user_configs = deployment_configs(config)
    gateway = GatewayConfig.model_validate(user_configs["Gateway"])
    component_config = user_configs[_DEPLOYMENT[component]]
    releases = Releases(Registry(component_config["registry"]))
    record = releases.rollback(gateway.release, component, to_version=to_version, note=note)
    component_config.update(record.slot(component).model_dump(exclude_none=True))
    user_configs["Gateway"]["release_version"] = record.version
    try:
        cluster.apply(config)
    except BackboneError as err:
        _revert_failed_rollback(releases, record, component, err, cluster, serving_before)
    return record


def _revert_failed_rollback(
    releases: Releases,
    failed: ReleaseRecord,
    component: ComponentName,
    err: BackboneError,
    cluster: ServeCluster,
    serving_before: dict[str, Any],
) -> NoReturn:
    """After ``failed`` could not be applied: a version serving the earlier ``component`` again, applied; raise.

    The release history then ends with what serves: the rollback, and the version that undid it with the reason.
    """
    reverted = releases.rollback(
        failed.name, component, to_version=failed.previous_version, note=f"v{failed.version} failed to apply: {err}"
    )
    deployment_configs(serving_before)["Gateway"]["release_version"] = reverted.version
    try:
        cluster.apply(serving_before)
    except BackboneError as again:
        raise BackboneError(
            f"rolling {component} back (release {failed.name} v{failed.version}) failed to apply: {err}; restoring "
            f"what served before (v{reverted.version}) failed too: {again}. See `backbone status`."
        ) from again
    raise BackboneError(
        f"rolling {component} back (release {failed.name} v{failed.version}) failed to apply: {err}. The {component} "
        f"of v{failed.previous_version} serves again, recorded as v{reverted.version}."
    ) from err


def served_registry(cluster: ServeCluster) -> str:
    """The registry URI the served release is read from (the retriever deployment's).

    Example:
        >>> served_registry(ServeCluster())  # doctest: +SKIP
        '/root/.cache/backbone/registry'
    """
    return deployment_configs(cluster.deployed())[_DEPLOYMENT["retriever"]]["registry"]


def serve_settings(record: ReleaseRecord, cluster: ServeCluster) -> None:
    """Serve ``record``'s application settings (K, top_n, rerank, weight): a version that changed only them.

    Only the gateway's config changes, so neither component's replicas restart.

    Raises:
        BackboneError: ``record`` is another release than the served one, or serves other checkpoints.

    Example:
        >>> serve_settings(Releases(Registry()).current("stard-mini"), ServeCluster())  # doctest: +SKIP
    """
    config = cluster.deployed()
    user_configs = deployment_configs(config)
    gateway = GatewayConfig.model_validate(user_configs["Gateway"])
    for component in ("retriever", "reranker"):
        served = user_configs[_DEPLOYMENT[component]]["checkpoint"]
        if gateway.release != record.name or served != record.slot(component).checkpoint:
            raise BackboneError(
                f"release {record.name} v{record.version} is not what serves ({gateway.release}, {component} "
                f"{served}): deploy it instead"
            )
    user_configs["Gateway"]["applications"] = {
        name: settings.model_dump(mode="json") for name, settings in record.applications.items()
    }
    user_configs["Gateway"]["release_version"] = record.version
    cluster.apply(config)


def _served_key_hashes(cluster: ServeCluster) -> list[str]:
    """The API key hashes the served gateway asks for (none when nothing is deployed)."""
    try:
        return deployment_configs(cluster.deployed())["Gateway"].get("api_key_hashes", [])
    except BackboneError:
        return []
