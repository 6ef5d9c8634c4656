"""docs/cluster.md's flow against a head on loopback: the pipeline as a job, then deploy, search, roll back, status."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest
from head_node import RAY_AUTH, free_port, ray_env, submit
from tiny_pipeline import TinyPipeline
from typer.testing import CliRunner

from backbone.cli import app
from backbone.registry import Registry, Releases

pytestmark = pytest.mark.cluster


def backbone(*args: str) -> str:
    """Run a ``backbone`` command as the docs do; fail the test on a non-zero exit."""
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, f"backbone {' '.join(args)} failed: {result.output} {result.exception!r}"
    return result.output


def test_pipeline_job_then_deploy_search_rollback_status(
    tiny_pipeline: TinyPipeline, tiny_head: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the cluster's start commands and the user's shell set (docs/cluster.md): the registry, the dashboard
    # address, Ray's token auth on.
    env_vars = {"BACKBONE_HOME": str(tiny_pipeline.home), "BACKBONE_REGISTRY": str(tiny_pipeline.registry)}
    for name, value in {**env_vars, "RAY_DASHBOARD_ADDRESS": tiny_head, **RAY_AUTH}.items():
        monkeypatch.setenv(name, value)

    # ray job submit --address ... --working-dir . -- python jobs/pipeline.py --recipe RECIPE
    job = submit(
        tiny_head,
        ["python", "jobs/pipeline.py", "--recipe", str(tiny_pipeline.recipe)],
        json.dumps({"env_vars": env_vars}),
        ray_env(),
    )
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
    assert "release: tiny-pipeline v" in job.stdout and "model work: 0 corpus encodings" in job.stdout

    # A reranker promoted since (what a later run or `Releases.promote` writes): there is something to roll back to.
    releases = Releases(Registry(str(tiny_pipeline.registry)))
    chosen = releases.current("tiny-pipeline").reranker.checkpoint
    other = next(ckpt for ckpt in tiny_pipeline.first.outcome.checkpoints["reranker"].values() if ckpt != chosen)
    releases.promote("tiny-pipeline", "reranker", other, note="test: another reranker")

    # backbone deploy RELEASE  (registry from $BACKBONE_REGISTRY, documents: the dataset the pipeline prepared)
    port = free_port()
    try:
        _deploy_search_rollback_status(tiny_head, releases, port, chosen, other, tiny_pipeline.recipe)
    finally:
        # The head is shared with the other job tests: give its CPU back (`serve shutdown`, as docs/cluster.md ends).
        subprocess.run(["serve", "shutdown", "--address", tiny_head, "--yes"], env=ray_env(), check=True, timeout=120)


def _deploy_search_rollback_status(
    tiny_head: str, releases: Releases, port: int, chosen: str, other: str, recipe: Path
) -> None:
    deployed = backbone("deploy", "tiny-pipeline", "--port", str(port))
    assert f"reranker {other}" in deployed

    # curl -s 127.0.0.1:PORT/v1/search -d '{"query": ..., "application": "api"}'
    search = {"query": "合同的效力", "application": "api"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        answer = http.post("/v1/search", json=search).json()
        assert answer["release"] == "tiny-pipeline" and answer["reranked"] is True
        assert answer["versions"]["reranker"] == other and len(answer["results"]) == 3

        # backbone rollback reranker --rechoose-k --recipe RECIPE: back to the chosen reranker, and the applications'
        # K and weight chosen again for it (from the search's cached evidence) and served.
        rolled_back = backbone(
            "rollback", "reranker", "--note", "test: back to the chosen one", "--rechoose-k", "--recipe", str(recipe)
        )
        assert "rollback reranker to v" in rolled_back and chosen in rolled_back
        assert "model work: 0 corpus encodings" in rolled_back and "warning" not in rolled_back
        rechosen = releases.current("tiny-pipeline")
        assert f"serving v{rechosen.version}'s K and weight" in rolled_back
        assert http.post("/v1/search", json=search).json()["versions"]["reranker"] == chosen
        info = http.get("/v1/info").json()
        assert info["release_version"] == rechosen.version
        assert info["applications"]["api"]["k"] == rechosen.applications["api"].k

    # backbone status
    status = backbone("status")
    version = releases.current("tiny-pipeline").version
    assert f"tiny-pipeline v{version}: RUNNING" in status and f"checkpoint {chosen}" in status
    assert "Retriever  HEALTHY    replicas 1/1" in status
