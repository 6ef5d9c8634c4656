"""Cluster tests: a real local Ray on loopback, tiny models, and a small prepared subset of the real STARD data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import ray
from head_node import worker_pythonpath

from backbone.data import build_subset, load_stard, prepare_dataset


@pytest.fixture(scope="session")
def local_ray() -> None:
    """A private two-CPU Ray for the whole session, on loopback, stopped at the end (workers: see worker_pythonpath)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(
        address="local",
        num_cpus=2,
        _node_ip_address="127.0.0.1",
        dashboard_host="127.0.0.1",  # Ray Train's placement-group cleaner polls the state API it serves
        runtime_env={"env_vars": {"PYTHONPATH": worker_pythonpath()}},
    )
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def small_dataset(stard_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 train and 8 dev queries of real STARD over a 120-document corpus."""
    subset = build_subset(load_stard(stard_dir), seed=1, queries={"train": 24, "dev": 8}, corpus_size=120)
    out = tmp_path_factory.mktemp("datasets") / "tiny"
    prepare_dataset(subset, out, name="tiny")
    return out
