"""The Serve application on a running Ray cluster: apply a config and wait until it serves, read what runs.

The cluster is reached through its dashboard's Serve REST API, as ``serve deploy`` reaches it.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from typing import Any

from ray.dashboard.modules.serve.sdk import ServeSubmissionClient

from backbone.errors import BackboneError
from backbone.serving.auth import API_KEYS_ENV, read_api_keys
from backbone.serving.serve_config import APP_NAME, config_versions, deployment_configs

DEFAULT_DASHBOARD = "http://127.0.0.1:8265"
_REFUSED = "401"
_REFUSED_FOR_S = 15.0  # how long apply() waits on 401s before it says the key is wrong


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
        expected = config_versions(config)
        url = f"http://{config['http_options']['host']}:{config['http_options']['port']}/v1/info"
        deadline = time.monotonic() + timeout_s
        expects_key = bool(deployment_configs(config)["Gateway"].get("api_key_hashes"))
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
        configs = deployment_configs(self.deployed())
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
