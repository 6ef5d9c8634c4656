"""A local twin of ``cluster.yaml``: Ray's fake multi-node autoscaler with the same worker types, on loopback.

The twin is derived from the repository's ``cluster.yaml`` (read with Ray's own ``prepare_config``), so its worker
types, their ``min/max_workers`` and their resource kinds cannot drift from the real cluster. Three things differ,
each because this machine is one shared 2-core box:

- every node's CPU count is capped (1 by default): a fake node is a real raylet whose logical CPUs become worker
  processes, and 16 of them per node would swamp the machine. ``GPU`` stays a logical count: nothing here asks a
  fake GPU node for CUDA, and the scheduler places GPU requests exactly as on the real cluster;
- the idle timeout is seconds, not minutes, so a test sees nodes leave;
- the head is Ray's ``ray.head.default``: the fake provider tags its head with that type name.

Ray's own ``AutoscalingCluster`` starts and stops its head with ``ray stop --force``, which kills every Ray on the
machine (other engineers' tests included), and its base config is not shipped in the wheel; so the head here is the
tests' ``head_node`` (free ports, stopped by its process group), started with the fake provider's switches. The fake
provider starts worker nodes from the head's autoscaler process, so they are in that process group and stop with it.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest.mock import patch

import ray
from head_node import RAY_AUTH, REPO, free_port, head_node, worker_pythonpath
from ray.autoscaler._private.util import validate_config

from backbone.cluster import load_cluster_config

FAKE_HEAD_TYPE = "ray.head.default"


def twin_config(
    cluster: dict[str, Any], gcs_address: str, idle_timeout_minutes: float, cpus_per_node: int = 1
) -> dict[str, Any]:
    """The fake-provider config of a prepared cluster config: same worker types and limits, small nodes.

    Args:
        cluster: a config from :func:`backbone.cluster.load_cluster_config`.
        gcs_address: ``host:port`` of the fake head's control server, where the fake provider attaches new nodes.
        idle_timeout_minutes: how long a worker node may idle before the autoscaler removes it.
        cpus_per_node: the most CPUs any fake node gets.

    Example:
        >>> config = twin_config(load_cluster_config(REPO / "cluster.yaml"), "127.0.0.1:6379", 0.1)  # doctest: +SKIP
    """
    config = copy.deepcopy(cluster)
    head = cluster["head_node_type"]
    types = {}
    for name, node_type in cluster["available_node_types"].items():
        resources = dict(node_type["resources"])
        if "CPU" in resources:
            resources["CPU"] = min(resources["CPU"], cpus_per_node)
        types[FAKE_HEAD_TYPE if name == head else name] = {
            "node_config": {},
            "resources": resources,
            "min_workers": node_type["min_workers"],
            "max_workers": node_type["max_workers"],
        }
    config.update(
        provider={
            "type": "fake_multinode",
            "gcs_address": gcs_address,
            "disable_launch_config_check": True,  # nothing to launch: a fake node is a raylet on this machine
            "disable_node_updaters": True,  # no SSH, no setup commands
            # Every fake node has this machine's address: the autoscaler must tell them apart (and see each one's
            # idle time) by node id, or the always-busy head's address keeps every worker looking used.
            "use_node_id_as_ip": True,
            # Create as many nodes as the autoscaler asks for in one call (by default the fake provider makes one,
            # the autoscaler counts them all as pending, and later launches more than the demand needs).
            "launch_multiple": True,
        },
        available_node_types=types,
        head_node_type=FAKE_HEAD_TYPE,
        idle_timeout_minutes=idle_timeout_minutes,
        file_mounts={},
        **{key: [] for key in config if key.endswith("_commands")},
    )
    validate_config(config)
    return config


@dataclass
class Twin:
    """The running twin: its dashboard, and its alive nodes sampled once a second while it runs.

    Args:
        dashboard: the head's dashboard address (Serve's and the job API's), ``http://127.0.0.1:PORT``.
        samples: ``(seconds since start, alive nodes, of which with a GPU)``, in order; a test may clear it.
    """

    dashboard: str
    samples: list[tuple[float, int, int]] = field(default_factory=list)

    def nodes(self) -> list[int]:
        """The alive-node counts, in order."""
        return [nodes for _, nodes, _ in self.samples]

    def gpu_nodes(self) -> list[int]:
        """The counts of alive nodes with a GPU, in order."""
        return [gpus for _, _, gpus in self.samples]


def alive_nodes() -> list[dict[str, Any]]:
    """The connected cluster's alive nodes, as ``ray.nodes()`` reports them."""
    return [node for node in ray.nodes() if node["Alive"]]


def wait_for_nodes(count: int, timeout_s: float) -> float:
    """Wait until exactly ``count`` nodes are alive; return the seconds it took, or raise after ``timeout_s``."""
    start = time.monotonic()
    while len(alive_nodes()) != count:
        if time.monotonic() - start > timeout_s:
            raise TimeoutError(f"{len(alive_nodes())} nodes alive after {timeout_s:.0f} s, waiting for {count}")
        time.sleep(1)
    return time.monotonic() - start


@contextmanager
def fake_cluster(idle_timeout_minutes: float = 0.1, cpus_per_node: int = 1) -> Iterator[Twin]:
    """Start the twin of ``cluster.yaml``, connect this process to it, and sample its node count until it stops.

    Args:
        idle_timeout_minutes: the twin's idle timeout (``cluster.yaml`` has minutes; tests want seconds).
        cpus_per_node: the most CPUs any fake node gets.

    Example:
        >>> with fake_cluster() as twin:  # doctest: +SKIP
        ...     ray.get(ray.remote(num_cpus=1)(lambda: 1).remote())  # the autoscaler adds a cpu_worker
    """
    if ray.is_initialized():
        # One process attaches to one Ray: this driver must join the twin, not the tests' session-wide local Ray.
        raise RuntimeError(
            "fake_cluster() needs a process not yet attached to Ray: run it before tests that use the local_ray "
            "fixture (pytest's default order runs tests/cluster/test_autoscaling.py first)"
        )
    gcs = free_port()
    config = twin_config(
        load_cluster_config(REPO / "cluster.yaml"), f"127.0.0.1:{gcs}", idle_timeout_minutes, cpus_per_node
    )
    head_cpus = config["available_node_types"][FAKE_HEAD_TYPE]["resources"].get("CPU", 0)
    with tempfile.TemporaryDirectory(prefix="backbone-fake-cluster-") as folder:
        config_file = Path(folder) / "autoscaling.json"
        config_file.write_text(json.dumps(config), encoding="utf-8")
        fake_env = {"RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1"}
        with head_node(head_cpus, gcs, [f"--autoscaling-config={config_file}"], fake_env) as dashboard:
            # This driver sends the head's token, as every client does (see head_node.RAY_AUTH).
            driver_env = patch.dict(os.environ, {**RAY_AUTH, "RAY_USAGE_STATS_ENABLED": "0"})
            driver_env.start()
            ray.init(
                address=f"127.0.0.1:{gcs}",
                _node_ip_address="127.0.0.1",
                log_to_driver=False,
                runtime_env={"env_vars": {"PYTHONPATH": worker_pythonpath()}},
            )
            twin, stop = Twin(dashboard), threading.Event()
            sampler = threading.Thread(target=_sample, args=(twin, stop), daemon=True)
            sampler.start()
            try:
                yield twin
            finally:
                stop.set()
                sampler.join()
                ray.shutdown()
                driver_env.stop()


def _sample(twin: Twin, stop: threading.Event) -> None:
    start = time.monotonic()
    while not stop.is_set():
        nodes = alive_nodes()
        with_gpu = sum(1 for node in nodes if node["Resources"].get("GPU"))
        twin.samples.append((round(time.monotonic() - start, 1), len(nodes), with_gpu))
        stop.wait(1.0)
