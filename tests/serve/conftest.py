"""One real Ray head on loopback for all serving tests, with the test release deployed through ``backbone deploy``."""

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
from serving_release import ServableRelease, build_servable_release


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
    """The tiny release served on a private head; Ray's token auth is off on both sides (see the Ray notes)."""
    saved = dict(os.environ)
    os.environ.update(ray_env())
    root = tmp_path_factory.mktemp("served")
    release = build_servable_release(root, tiny_encoder_dir)
    port = free_port()
    try:
        with head_node() as dashboard:
            config_path = root / "serve_config.yaml"
            result = CliRunner().invoke(
                app,
                [
                    "deploy", release.record.name,
                    "--registry", release.registry.uri,
                    "--documents", str(release.documents),
                    "--port", str(port),
                    "--config-out", str(config_path),
                    "--address", dashboard,
                ],
            )  # fmt: skip
            assert result.exit_code == 0, f"deploy failed: {result.output} {result.exception!r}"
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
                yield Served(release, dashboard, http, config_path)
    finally:
        os.environ.clear()
        os.environ.update(saved)
