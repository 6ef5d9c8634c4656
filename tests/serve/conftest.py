"""One real Ray head on loopback for all serving tests, with the test release deployed through ``backbone deploy``.

The registry is on S3 (a local moto server): the release's checkpoints, index and release history are written through
``s3://`` and every replica reads them from there, so each serving test also checks the object-storage round trip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from ray.util.state import list_actors
from typer.testing import CliRunner

from backbone.cli import app
from cluster.head_node import free_port, head_node, ray_env
from s3_server import moto_s3
from serving_release import ServableRelease, build_servable_release

REGISTRY_URI = "s3://serving/registry"


@dataclass
class Served:
    """The deployed release, its HTTP client and the cluster's dashboard address."""

    release: ServableRelease
    dashboard: str
    http: httpx.Client
    config_path: Path

    def cli(self, *args: str) -> str:
        """Run a ``backbone`` command against this cluster; fail the test on a non-zero exit."""
        result = CliRunner().invoke(app, [*args, "--address", self.dashboard])
        assert result.exit_code == 0, f"backbone {' '.join(args)} failed: {result.output} {result.exception!r}"
        return result.output

    def deploy(self, *options: str) -> str:
        """``backbone deploy`` of the test release's current version on this cluster, with further ``options``.

        No ``--documents``: the replicas read the documents the index artifact carries from the S3 registry.
        """
        return self.cli(
            "deploy", self.release.record.name,
            "--registry", self.release.registry.uri,
            "--port", str(self.http.base_url.port),
            *options,
        )  # fmt: skip

    def replica_pids(self) -> dict[str, set[int]]:
        """The process ids of the live replicas of each deployment."""
        pids: dict[str, set[int]] = {}
        for actor in list_actors(address=self.dashboard, filters=[("state", "=", "ALIVE")], limit=1000):
            if actor.class_name.startswith("ServeReplica:backbone:"):
                pids.setdefault(actor.class_name.rsplit(":", 1)[1], set()).add(actor.pid)
        return pids

    def versions(self) -> dict[str, object]:
        info = self.http.get("/v1/info").json()
        return {
            "release_version": info["release_version"],
            "retriever": info["retriever"]["checkpoint"],
            "index": info["retriever"]["index"],
            "reranker": info["reranker"]["checkpoint"],
        }


@pytest.fixture(scope="session")
def served(tiny_encoder_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The tiny release, written to S3, served on a private head; Ray's token auth is on, for head and clients alike.

    The head starts inside the S3 server's environment, so its replicas get the AWS variables a real node's
    environment or instance profile gives: credentials never appear in a config.
    """
    saved = dict(os.environ)
    os.environ.update(ray_env())
    root = tmp_path_factory.mktemp("served")
    try:
        with moto_s3("serving"):
            release = build_servable_release(root, tiny_encoder_dir, registry_uri=REGISTRY_URI)
            with head_node() as dashboard, httpx.Client(base_url=f"http://127.0.0.1:{free_port()}", timeout=30) as http:
                served = Served(release, dashboard, http, root / "serve_config.yaml")
                served.deploy("--config-out", str(served.config_path))
                yield served
    finally:
        os.environ.clear()
        os.environ.update(saved)
