"""Cluster tests: a real local Ray on loopback, tiny models, and a small prepared subset of the real STARD data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import ray
from head_node import head_node, worker_pythonpath
from tiny_pipeline import TinyPipeline, write_tiny_pipeline_recipe

from backbone.data import build_subset, load_stard, prepare_dataset
from backbone.pipeline import run_pipeline
from backbone.registry import Registry


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


@pytest.fixture(scope="session")
def tiny_pipeline(local_ray: None, stard_dir: Path, tiny_encoder_dir: Path, tmp_path_factory) -> TinyPipeline:
    """``run_pipeline`` twice on tiny models: the first run trains and searches, the second finds everything."""
    home = tmp_path_factory.mktemp("pipeline-home")
    registry = home / "registry"
    recipe = write_tiny_pipeline_recipe(home, stard_dir, tiny_encoder_dir)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("BACKBONE_HOME", str(home))
        first = run_pipeline(recipe, registry_uri=str(registry))
        artifacts = [manifest.id for manifest in Registry(str(registry)).list()]
        second = run_pipeline(recipe, registry_uri=str(registry))
    return TinyPipeline(home, recipe, registry, first, second, artifacts)


@pytest.fixture(scope="session")
def tiny_head() -> str:
    """One ``ray start --head`` on loopback with one CPU, for the documented-flow test; its dashboard address.

    One CPU holds exactly the retriever's and the reranker's half-CPU Serve replicas.
    """
    with head_node(num_cpus=1) as address:
        yield address
