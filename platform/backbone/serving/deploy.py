"""From a registry release to a running Serve application, and back: deploy, status, rollback.

A Serve config (the file ``serve deploy`` and ``serve run`` read) is written from a release: each component's
artifacts go into its own deployment's ``user_config``, so applying a config in which only one component changed
makes Serve call ``reconfigure()`` on that deployment's replicas alone. Configs are applied through the Ray
dashboard's Serve API, exactly as ``serve deploy`` applies them.
"""

from __future__ import annotations

import copy
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import yaml
from pydantic import ValidationError
from ray.dashboard.modules.serve.sdk import ServeSubmissionClient

from backbone.data import find_dataset
from backbone.errors import BackboneError
from backbone.registry import Component, Registry, ReleaseRecord, Releases
from backbone.serving.auth import API_KEYS_ENV, check_exposure, hash_api_key, read_api_keys
from backbone.serving.config import GatewayConfig, RerankerConfig, RetrieverConfig, ServingScaling
from backbone.settings import datasets_dir

APP_NAME = "backbone"
IMPORT_PATH = "backbone.serving.app:build_app"
DEFAULT_DASHBOARD = "http://127.0.0.1:8265"
_DEPLOYMENT = {"retriever": "Retriever", "reranker": "Reranker", "gateway": "Gateway"}
_REFUSED = "401"
_REFUSED_FOR_S = 15.0  # how long apply() waits on 401s before it says the key is wrong


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
    documents: Path,
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
        documents: the prepared dataset whose corpus the retriever's index holds.
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
    index = _index_of(record)
    if not record.applications:
        raise BackboneError(f"release {record.name} v{record.version} defines no applications to serve")
    user_configs = {
        "Retriever": RetrieverConfig(
            registry=registry.uri,
            checkpoint=record.retriever.checkpoint,
            index=index,
            documents=str(documents.resolve()),
        ),
        "Reranker": RerankerConfig(registry=registry.uri, checkpoint=record.reranker.checkpoint),
        "Gateway": GatewayConfig(
            release=record.name,
            release_version=record.version,
            applications=record.applications,
            api_key_hashes=[hash_api_key(key) for key in api_keys],
        ),
    }
    scaling = scaling or ServingScaling()
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


class ServeCluster:
    """The Serve application on a running Ray cluster, reached through its dashboard (as ``serve deploy`` does).

    Args:
        address: the dashboard's HTTP address; default ``$RAY_DASHBOARD_ADDRESS``, else ``http://127.0.0.1:8265``.
        api_key: the key :meth:`apply` sends while it waits on ``/v1/info`` of a gateway that asks for keys;
            default the first of ``$BACKBONE_API_KEYS``.

    Example:
        >>> ServeCluster().deployed()["applications"][0]["name"]  # doctest: +SKIP
        'backbone'
    """

    def __init__(self, address: str | None = None, api_key: str | None = None) -> None:
        self.address = address or os.environ.get("RAY_DASHBOARD_ADDRESS", DEFAULT_DASHBOARD)
        self.api_key = api_key or next(iter(read_api_keys()), None)
        try:
            self._client = ServeSubmissionClient(self.address)
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise BackboneError(
                f"no Ray dashboard at {self.address} ({err}); start one with `ray start --head`"
            ) from None

    def apply(self, config: dict[str, Any], timeout_s: float = 300) -> None:
        """Apply ``config`` and wait until every component serves the versions it names.

        Raises:
            BackboneError: the application failed to deploy, did not serve them within ``timeout_s``, or its
                gateway refused :attr:`api_key` for ``_REFUSED_FOR_S`` s in a row.
        """
        self._client.deploy_applications(config)
        expected = _versions(config)
        url = f"http://{config['http_options']['host']}:{config['http_options']['port']}/v1/info"
        deadline = time.monotonic() + timeout_s
        expects_key = bool(_user_configs(config)["Gateway"].get("api_key_hashes"))
        refused_since = None  # a 401 can come from the gateway's previous keys until it takes the new config
        while time.monotonic() < deadline:
            app = self._client.get_serve_details().get("applications", {}).get(APP_NAME, {})
            if app.get("status") == "DEPLOY_FAILED":
                raise BackboneError(f"deploy failed: {app.get('message', '')}")
            if app.get("status") == "RUNNING":
                # The gateway has the new config once it asks for a key exactly when the config has keys.
                asks_key, served = _served_state(url, self.api_key)
                if asks_key == expects_key and served == expected:
                    return
                wrong_key = asks_key and expects_key and served == _REFUSED
                refused_since = (refused_since or time.monotonic()) if wrong_key else None
                if refused_since is not None and time.monotonic() - refused_since > _REFUSED_FOR_S:
                    raise BackboneError(
                        f"the config was applied, but {url} answers 401 to "
                        f"{'the API key given' if self.api_key else 'a request without a key'}, so whether it serves "
                        f"is unknown: set ${API_KEYS_ENV} to one of the keys the gateway was deployed with"
                    )
            time.sleep(1)
        raise BackboneError(f"the application did not serve {expected} within {timeout_s:.0f} s; see `backbone status`")

    def deployed(self) -> dict[str, Any]:
        """The config the cluster runs now (as applied), for status and rollback.

        Raises:
            BackboneError: no backbone application is deployed there.
        """
        details = self._client.get_serve_details()
        app = details.get("applications", {}).get(APP_NAME)
        if not app or not app.get("deployed_app_config"):
            raise BackboneError(f"no {APP_NAME!r} application on the cluster at {self.address}; run `backbone deploy`")
        return {
            "proxy_location": details.get("proxy_location") or "HeadOnly",
            "http_options": {key: details["http_options"][key] for key in ("host", "port")},
            "logging_config": {"enable_access_log": False},
            "applications": [app["deployed_app_config"]],
        }

    def status(self) -> dict[str, Any]:
        """The application's status; each deployment's status, running and target replicas, and artifacts."""
        details = self._client.get_serve_details()
        app = details.get("applications", {}).get(APP_NAME)
        if not app:
            raise BackboneError(f"no {APP_NAME!r} application on the cluster at {self.address}; run `backbone deploy`")
        configs = _user_configs(self.deployed())
        return {
            "status": app["status"],
            "url": f"http://{details['http_options']['host']}:{details['http_options']['port']}",
            "release": configs["Gateway"]["release"],
            "release_version": configs["Gateway"]["release_version"],
            "deployments": {
                name: {
                    "status": deployment["status"],
                    "replicas": sum(replica["state"] == "RUNNING" for replica in deployment.get("replicas", [])),
                    # What Serve is scaling to: above the running count while added replicas start.
                    "target_replicas": deployment["target_num_replicas"],
                    "serves": {key: configs[name][key] for key in ("checkpoint", "index") if key in configs[name]},
                }
                for name, deployment in app.get("deployments", {}).items()
            },
        }


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
        documents: the indexed documents; default the prepared dataset the index's lineage names.
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
    folder = documents or find_documents(registry, _index_of(record))
    config = serve_config(record, registry, folder, host=host, port=port, scaling=scaling, api_keys=api_keys)
    if config_out is not None:
        write_config(config, config_out)
    cluster.apply(config)
    return record, config


def rollback(
    component: Component, cluster: ServeCluster, *, to_version: int | None = None, note: str = ""
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
    user_configs = _user_configs(config)
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
    component: Component,
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
    _user_configs(serving_before)["Gateway"]["release_version"] = reverted.version
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
    return _user_configs(cluster.deployed())[_DEPLOYMENT["retriever"]]["registry"]


def serve_settings(record: ReleaseRecord, cluster: ServeCluster) -> None:
    """Serve ``record``'s application settings (K, top_n, rerank, weight): a version that changed only them.

    Only the gateway's config changes, so neither component's replicas restart.

    Raises:
        BackboneError: ``record`` is another release than the served one, or serves other checkpoints.

    Example:
        >>> serve_settings(Releases(Registry()).current("stard-mini"), ServeCluster())  # doctest: +SKIP
    """
    config = cluster.deployed()
    user_configs = _user_configs(config)
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


def _index_of(record: ReleaseRecord) -> str:
    if record.retriever.index is None:
        raise BackboneError(f"release {record.name} v{record.version} has no retriever index to search")
    return record.retriever.index


def _user_configs(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each deployment's ``user_config`` in ``config``, by deployment name (the same dicts: edits go into it)."""
    return {deployment["name"]: deployment["user_config"] for deployment in config["applications"][0]["deployments"]}


def _versions(config: dict[str, Any]) -> dict[str, Any]:
    configs = _user_configs(config)
    return {
        "release_version": configs["Gateway"]["release_version"],
        "retriever": configs["Retriever"]["checkpoint"],
        "index": configs["Retriever"]["index"],
        "reranker": configs["Reranker"]["checkpoint"],
    }


def _served_key_hashes(cluster: ServeCluster) -> list[str]:
    """The API key hashes the served gateway asks for (none when nothing is deployed)."""
    try:
        return _user_configs(cluster.deployed())["Gateway"].get("api_key_hashes", [])
    except BackboneError:
        return []


def _served_state(url: str, api_key: str | None) -> tuple[bool, dict[str, Any] | str | None]:
    """Whether the gateway asks for a key, and what ``/v1/info`` answers (with ``api_key`` when it asks)."""
    without_key = _served_versions(url, None)
    if without_key != _REFUSED:
        return False, without_key
    return True, _served_versions(url, api_key) if api_key else _REFUSED


def _served_versions(url: str, api_key: str | None) -> dict[str, Any] | str | None:
    """The versions ``/v1/info`` reports, ``_REFUSED`` on a 401, or ``None`` while it does not answer."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as response:
            info = json.load(response)
    except urllib.error.HTTPError as err:
        return _REFUSED if err.code == 401 else None
    except (OSError, json.JSONDecodeError):
        return None
    return {
        "release_version": info["release_version"],
        "retriever": info["retriever"]["checkpoint"],
        "index": info["retriever"]["index"],
        "reranker": info["reranker"]["checkpoint"],
    }
