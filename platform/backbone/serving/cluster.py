"""The Serve application on a running Ray cluster: apply a config and wait until it serves, read what runs.

The cluster is reached only through its dashboard's Serve REST API, as ``serve deploy`` and ``serve status`` reach
it (Ray's ``ServeSubmissionClient``, which also sends the cluster's auth token): a laptop tunnelled to the dashboard
can deploy, roll back and wait, without reaching the HTTP port the application serves on.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from ray.dashboard.modules.serve.sdk import ServeSubmissionClient

from backbone.errors import BackboneError
from backbone.serving.serve_config import APP_NAME, deployment_configs

DEFAULT_DASHBOARD = "http://127.0.0.1:8265"


class ServeCluster:
    """The Serve application on a running Ray cluster, reached through its dashboard (as ``serve deploy`` does).

    Args:
        address: the dashboard's HTTP address; default ``$RAY_DASHBOARD_ADDRESS``, else ``http://127.0.0.1:8265``.

    Example:
        >>> ServeCluster().deployed()["applications"][0]["name"]  # doctest: +SKIP
        'backbone'
    """

    def __init__(self, address: str | None = None) -> None:
        self.address = address or os.environ.get("RAY_DASHBOARD_ADDRESS", DEFAULT_DASHBOARD)
        try:
            self._client = ServeSubmissionClient(self.address)
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise BackboneError(
                f"no Ray dashboard at {self.address} ({err}); start one with `ray start --head`"
            ) from None

    def apply(self, config: dict[str, Any], timeout_s: float = 300) -> None:
        """Apply ``config`` and wait until Serve says every deployment runs it.

        Serve's own view decides: the application ``RUNNING`` and each deployment ``HEALTHY`` with ``config``'s
        settings as its target. A deployment is ``HEALTHY`` only once all its replicas run its target version
        (``user_config`` included, where the artifacts are), so this waits for every replica's ``reconfigure()``.

        Raises:
            BackboneError: the application failed to deploy, or did not run ``config`` within ``timeout_s``.
        """
        self._client.deploy_applications(config)
        deadline = time.monotonic() + timeout_s
        waiting_for: str | None = "the application"
        while time.monotonic() < deadline:
            app = self._client.get_serve_details().get("applications", {}).get(APP_NAME, {})
            if app.get("status") == "DEPLOY_FAILED":
                raise BackboneError(f"deploy failed: {app.get('message', '')}")
            waiting_for = not_yet_running(config, app)
            if waiting_for is None:
                return
            time.sleep(1)
        raise BackboneError(
            f"{waiting_for} did not run the applied config within {timeout_s:.0f} s; see `backbone status`"
        )

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


def not_yet_running(config: dict[str, Any], app: dict[str, Any]) -> str | None:
    """What of ``config`` Serve does not run yet, by ``app``'s details (``serve status``); ``None`` when all of it.

    Args:
        config: an applied Serve config (one application).
        app: that application's entry in Serve's details (``ServeSubmissionClient.get_serve_details()``).

    Example:
        >>> not_yet_running(config, {"status": "DEPLOYING", "deployments": {}})  # doctest: +SKIP
        'the application (DEPLOYING)'
    """
    if app.get("status") != "RUNNING":
        return f"the application ({app.get('status', 'not deployed')})"
    details = app.get("deployments", {})
    # The config as the REST API receives it (JSON), to compare with what Serve reports back.
    for deployment in json.loads(json.dumps(config["applications"][0]["deployments"])):
        running = details.get(deployment["name"], {})
        if running.get("status") != "HEALTHY":
            return f"deployment {deployment['name']} ({running.get('status', 'not deployed')})"
        # Until Serve's control loop takes a new config, the deployment is HEALTHY on its previous target.
        if not _within(deployment, running.get("deployment_config", {})):
            return f"deployment {deployment['name']} (still on its previous config)"
    return None


def _within(applied: Any, target: Any) -> bool:
    """Whether ``target`` holds ``applied``: equal, or for dicts each applied key equal within (Serve adds defaults)."""
    if isinstance(applied, dict) and isinstance(target, dict):
        return all(key in target and _within(value, target[key]) for key, value in applied.items())
    return bool(applied == target)
