"""Starting or joining Ray the same way from every entry point (CLI, jobs, tests)."""

from __future__ import annotations

import os
from typing import Literal

import ray


def ensure_ray(num_cpus: int | None = None) -> None:
    """Join the cluster a ``ray job submit`` runs in, or start a private local Ray on loopback.

    Under ``ray job submit`` (``RAY_ADDRESS`` is set) ``ray.init()`` joins that cluster. Otherwise a local Ray starts
    bound to 127.0.0.1, with usage reporting off, and stops when the process exits.

    Args:
        num_cpus: CPUs the local Ray may use (default: all); ignored when joining a cluster.

    Example:
        >>> ensure_ray()  # doctest: +SKIP
    """
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if os.environ.get("RAY_ADDRESS"):
        ray.init()
        return
    # address="local": a fresh instance, never one that /tmp/ray/ray_current_cluster happens to name (a head started
    # by `ray start` leaves that file behind). The dashboard stays on: Ray Train's cleaner polls its state API.
    ray.init(address="local", num_cpus=num_cpus, _node_ip_address="127.0.0.1", dashboard_host="127.0.0.1")


def resolve_use_gpu(use_gpu: bool | Literal["auto"]) -> bool:
    """Whether training uses GPUs: as asked, or for ``"auto"``, whether the connected Ray cluster has any now.

    So one recipe trains on GPUs on a cluster with GPU nodes and on CPUs elsewhere, with no change. ``"auto"`` sees
    the nodes that are up: on an autoscaling cluster whose GPU workers start at zero (``cluster.yaml``), ask for
    GPUs with ``true`` (``--gpu``) and the autoscaler adds GPU nodes for the stage.

    Args:
        use_gpu: ``True``, ``False`` or ``"auto"``; call after :func:`ensure_ray` for ``"auto"``.

    Example:
        >>> resolve_use_gpu(False)
        False
        >>> resolve_use_gpu("auto")  # doctest: +SKIP
        True
    """
    if use_gpu != "auto":
        return use_gpu
    return ray.cluster_resources().get("GPU", 0) > 0
