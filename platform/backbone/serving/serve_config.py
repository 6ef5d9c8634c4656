"""Serve configs from a registry release: what ``serve deploy`` and ``serve run`` read, built without a cluster.

Each component's artifacts go into its own deployment's ``user_config``, so applying a config in which only one
component changed makes Serve call ``reconfigure()`` on that deployment's replicas alone. Applying a config to a
cluster is :mod:`backbone.serving.cluster`; deploy and rollback are :mod:`backbone.serving.deploy`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from backbone.data import find_dataset
from backbone.errors import BackboneError
from backbone.registry import Registry, ReleaseRecord
from backbone.serving.auth import hash_api_key
from backbone.serving.config import GatewayConfig, RerankerConfig, RetrieverConfig, ServingScaling
from backbone.settings import datasets_dir

APP_NAME = "backbone"
IMPORT_PATH = "backbone.serving.app:build_app"


def find_documents(registry: Registry, index_id: str) -> Path:
    """The prepared dataset under ``$BACKBONE_DATASETS_DIR`` that the index ``index_id`` was built on.

    Raises:
        BackboneError: the index records no dataset, or no prepared dataset there has its checksum.

    Example:
        >>> find_documents(Registry(), "index-20250301T120500Z-1a2b3c4d")  # doctest: +SKIP
        PosixPath('/root/.cache/backbone/datasets/stard-mini')
    """
    wanted = registry.get(index_id).lineage.dataset_checksum
    if wanted is None:
        raise BackboneError(f"index {index_id} records no dataset: name its documents with --documents DIR")
    found = find_dataset(wanted, datasets_dir())
    if found is not None:
        return found
    raise BackboneError(
        f"no prepared dataset in {datasets_dir()} has checksum {wanted} (the dataset index {index_id} was built on): "
        "prepare it again or name it with --documents DIR"
    )


def serve_config(
    record: ReleaseRecord,
    registry: Registry,
    documents: Path | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    scaling: ServingScaling | None = None,
    api_keys: Sequence[str] = (),
) -> dict[str, Any]:
    """The Serve config of release version ``record``: one application, three deployments.

    Args:
        record: the release version to serve.
        registry: the registry holding its artifacts.
        documents: a prepared dataset folder whose corpus the retriever's index holds, on every replica's node;
            default none: the replicas read the documents the index artifact carries, from the registry.
        host: the address Serve's HTTP proxy binds (loopback unless you mean to expose it).
        port: its port.
        scaling: replicas (fixed or autoscaled), resources and queue bounds of the deployments; default one
            replica each, half a CPU, no GPU, bounded queues (``ServingScaling``).
        api_keys: the keys requests must send (``Authorization: Bearer KEY``); only their hashes go in the config.
            None: no key asked.

    Raises:
        BackboneError: the release has no retriever index, or no applications.

    Example:
        >>> config = serve_config(Releases().current("legal-search"), Registry(), Path("datasets/stard-mini"))
        ...  # doctest: +SKIP
    """
    index = served_index(record)
    if not record.applications:
        raise BackboneError(f"release {record.name} v{record.version} defines no applications to serve")
    scaling = scaling or ServingScaling()
    user_configs = {
        "Retriever": RetrieverConfig(
            registry=registry.uri,
            checkpoint=record.retriever.checkpoint,
            index=index,
            documents=str(documents.resolve()) if documents is not None else None,
            inference=scaling.retriever.inference,
            threads=scaling.retriever.threads,
            batching=scaling.retriever.batching,
        ),
        "Reranker": RerankerConfig(
            registry=registry.uri,
            checkpoint=record.reranker.checkpoint,
            inference=scaling.reranker.inference,
            threads=scaling.reranker.threads,
            batching=scaling.reranker.batching,
        ),
        "Gateway": GatewayConfig(
            release=record.name,
            release_version=record.version,
            applications=record.applications,
            api_key_hashes=[hash_api_key(key) for key in api_keys],
        ),
    }
    options = {
        "Retriever": scaling.retriever.deployment_options(scaling.retry_after_s),
        "Reranker": scaling.reranker.deployment_options(scaling.retry_after_s),
        "Gateway": scaling.gateway.deployment_options(scaling.retry_after_s),
    }
    return {
        "proxy_location": "HeadOnly",
        "http_options": {"host": host, "port": port, "request_timeout_s": scaling.gateway.request_timeout_s},
        "logging_config": {"enable_access_log": False},  # per-request log lines cost throughput
        "applications": [
            {
                "name": APP_NAME,
                "route_prefix": "/",
                "import_path": IMPORT_PATH,
                "deployments": [
                    {"name": name, **options.get(name, {}), "user_config": config.model_dump(mode="json")}
                    for name, config in user_configs.items()
                ],
            }
        ],
    }


def load_scaling(path: Path) -> ServingScaling:
    """Read a :class:`ServingScaling` from the YAML file ``path``.

    Raises:
        BackboneError: the file is unreadable, not YAML, or a field is wrong (named with the file).

    Example:
        >>> load_scaling(Path("serve_configs/scaling.yaml")).retriever.autoscaling.max_replicas  # doctest: +SKIP
        4
    """
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise BackboneError(f"{path}: cannot read the scaling file: {err}") from None
    try:
        return ServingScaling.model_validate(raw)
    except ValidationError as err:
        problems = [f"{'.'.join(map(str, problem['loc'])) or '(top)'}: {problem['msg']}" for problem in err.errors()]
        raise BackboneError(f"{path}: " + "; ".join(problems)) from None


def write_config(config: dict[str, Any], path: Path) -> Path:
    """Write ``config`` as YAML to ``path``, with a comment naming the commands that read it.

    Example:
        >>> write_config(config, Path("serve_configs/legal-search.yaml"))  # doctest: +SKIP
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (
        f"# Written by `backbone deploy`. Apply: serve deploy {path}  (or run in the foreground: serve run {path})\n"
    )
    path.write_text(header + yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def served_index(record: ReleaseRecord) -> str:
    """The index ``record``'s retriever searches.

    Raises:
        BackboneError: the release names none.
    """
    if record.retriever.index is None:
        raise BackboneError(f"release {record.name} v{record.version} has no retriever index to search")
    return record.retriever.index


def deployment_configs(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each deployment's ``user_config`` in ``config``, by deployment name (the same dicts: edits go into it)."""
    return {deployment["name"]: deployment["user_config"] for deployment in config["applications"][0]["deployments"]}
