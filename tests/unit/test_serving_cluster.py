"""When `backbone deploy` and `rollback` stop waiting: Serve's own details say every deployment runs the config.

The details here have the shape `serve status` / the dashboard's `GET /api/serve/applications/` report; the same rule
against a real cluster runs in every serving test's deploy (tests/serve) and on the multi-node twin
(tests/cluster/test_autoscaling.py).
"""

from __future__ import annotations

from typing import Any

from backbone.serving.cluster import not_yet_running

CONFIG: dict[str, Any] = {
    "applications": [
        {
            "name": "backbone",
            "deployments": [
                {
                    "name": "Retriever",
                    "user_config": {"checkpoint": "checkpoint-b", "index": "index-b", "shape": (2, 3)},
                    "ray_actor_options": {"num_cpus": 0.5, "num_gpus": 0},
                    "num_replicas": 1,
                },
                {"name": "Gateway", "user_config": {"release_version": 2}, "ray_actor_options": {"num_cpus": 0}},
            ],
        }
    ]
}


def _details() -> dict[str, Any]:
    """Serve's details of an application running ``CONFIG``, with the defaults Serve fills in."""
    retriever = {
        "name": "Retriever",
        "user_config": {"checkpoint": "checkpoint-b", "index": "index-b", "shape": [2, 3]},
        "ray_actor_options": {"num_cpus": 0.5, "num_gpus": 0.0, "runtime_env": {}},
        "num_replicas": 1,
        "max_ongoing_requests": 5,
    }
    gateway = {"name": "Gateway", "user_config": {"release_version": 2}, "ray_actor_options": {"num_cpus": 0.0}}
    return {
        "status": "RUNNING",
        "deployments": {
            "Retriever": {"status": "HEALTHY", "deployment_config": retriever},
            "Gateway": {"status": "HEALTHY", "deployment_config": gateway},
        },
    }


def test_an_application_running_the_config_with_serves_defaults_is_running_it() -> None:
    assert not_yet_running(CONFIG, _details()) is None


def test_a_deploying_application_or_updating_deployment_is_not() -> None:
    assert not_yet_running(CONFIG, {**_details(), "status": "DEPLOYING"}) == "the application (DEPLOYING)"
    assert not_yet_running(CONFIG, {}) == "the application (not deployed)"
    updating = _details()
    updating["deployments"]["Retriever"]["status"] = "UPDATING"
    assert not_yet_running(CONFIG, updating) == "deployment Retriever (UPDATING)"
    upscaling = _details()  # an update that autoscaling interrupts reads UPSCALING: HEALTHY is the only "done"
    upscaling["deployments"]["Gateway"]["status"] = "UPSCALING"
    assert not_yet_running(CONFIG, upscaling) == "deployment Gateway (UPSCALING)"
    missing = _details()
    del missing["deployments"]["Gateway"]
    assert not_yet_running(CONFIG, missing) == "deployment Gateway (not deployed)"


def test_a_healthy_deployment_on_its_previous_config_is_not() -> None:
    """Right after the REST call, before Serve's control loop takes the config, every deployment is still HEALTHY."""
    previous = _details()
    previous["deployments"]["Retriever"]["deployment_config"]["user_config"]["checkpoint"] = "checkpoint-a"
    assert not_yet_running(CONFIG, previous) == "deployment Retriever (still on its previous config)"
    fewer_cpus = _details()
    fewer_cpus["deployments"]["Retriever"]["deployment_config"]["ray_actor_options"]["num_cpus"] = 1.0
    assert not_yet_running(CONFIG, fewer_cpus) == "deployment Retriever (still on its previous config)"
    no_user_config = _details()
    del no_user_config["deployments"]["Gateway"]["deployment_config"]["user_config"]
    assert not_yet_running(CONFIG, no_user_config) == "deployment Gateway (still on its previous config)"
