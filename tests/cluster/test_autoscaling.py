"""On the local twin of cluster.yaml, a training stage makes the autoscaler add worker nodes, which leave when idle;
a release serves from replicas on such workers.

The registry, and so Ray Train's storage, is on S3 (a local moto server) as on the cluster: the stage's workers write
their checkpoints into the bucket, and the stage publishes its checkpoint and index there; the serving replicas read
the release's artifacts from there.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow.fs as pafs
import pytest
import ray
from fake_cluster import Twin, alive_nodes, fake_cluster, wait_for_nodes
from head_node import free_port
from ray import serve
from ray.autoscaler.sdk import request_resources
from ray.util.state import list_actors
from sentence_transformers import SentenceTransformer
from tiny_recipe import tiny_recipe

from backbone.evaluation import DenseIndex
from backbone.ray_runtime import resolve_use_gpu
from backbone.registry import Registry, find_index
from backbone.serving.cluster import ServeCluster
from backbone.serving.deploy import deploy
from backbone.training import StageRun, run_stage
from s3_server import moto_s3
from serving_release import build_servable_release

pytestmark = pytest.mark.cluster

STAGE = {
    "name": "refine",
    "data": {"tables": ["train"], "max_examples": 16},
    "loss": "infonce",
    "epochs": 1,
    "learning_rate": 1e-3,
    "batch_size": 4,
}
IDLE_TIMEOUT_S = 6
URI = "s3://backbone/registry"


@pytest.fixture(scope="module")
def twin() -> Iterator[Twin]:
    """The twin of cluster.yaml: a head without CPUs, so all work lands on autoscaled workers.

    Every node gets the S3 server's AWS environment, as an instance profile gives a real node.
    """
    with moto_s3("backbone"), fake_cluster(idle_timeout_minutes=IDLE_TIMEOUT_S / 60) as running:
        yield running


def test_training_stage_on_s3_adds_cpu_workers_and_they_leave_when_idle(
    twin: Twin, stard_dir: Path, tiny_encoder_dir: Path, small_dataset: Path, private_backbone_home: Path
) -> None:
    assert len(alive_nodes()) == 1 and ray.cluster_resources().get("CPU", 0) == 0  # only the head, no CPUs to train
    twin.samples.clear()
    reranker_stage = {**STAGE, "loss": "listwise_ce", "negatives": {"policy": "in_batch", "count": 2}}
    recipe = tiny_recipe(stard_dir, tiny_encoder_dir, STAGE, reranker_stage)
    registry = Registry(URI)
    assert isinstance(registry.root.fs, pafs.S3FileSystem)
    checkpoint = run_stage(recipe, "retriever", "refine", None, small_dataset, registry, StageRun(workers=2)).checkpoint
    trained_at = time.monotonic()
    wait_for_nodes(1, timeout_s=IDLE_TIMEOUT_S + 60)
    gone_after = time.monotonic() - trained_at
    time.sleep(1.5)  # one more sample of the shrunk cluster

    counts = twin.nodes()
    print(f"alive nodes once a second: {counts}; workers gone {gone_after:.0f} s after training")
    # Two workers of one CPU each on a head without CPUs: the autoscaler added (at least) two cpu_worker nodes, and
    # never a GPU node for CPU work.
    assert max(counts) >= 3 and max(twin.gpu_nodes()) == 0
    assert counts[0] == 1 and counts[-1] == 1  # rose from the head alone, and fell back to it
    assert gone_after >= IDLE_TIMEOUT_S - 1
    # Batches of 4 without conflicts: every one of the 16 examples is trained or counted as left out.
    assert checkpoint.metrics["steps"] * 4 + checkpoint.metrics["examples_left_out"] == 16
    assert checkpoint.metrics["steps"] >= 3 and checkpoint.params["workers"] == 2

    # Ray Train's workers wrote their epoch checkpoint into the bucket, under the registry's ray-train folder.
    train_files = registry.root.list_files("ray-train")
    assert any("/checkpoint_" in path and path.endswith("model.safetensors") for path in train_files), train_files
    assert not (private_backbone_home / "registry").exists()  # nothing fell back to the local default registry
    # A fresh reader of the same URI finds the checkpoint and its index, and both load from their local copies.
    reader = Registry(URI)
    index = find_index(reader, checkpoint, checkpoint.lineage.dataset_checksum)
    assert index is not None and index.name == "retriever/refine/index" and index.lineage.parents == [checkpoint.id]
    reader.verify(checkpoint.id)
    model = SentenceTransformer(str(reader.materialize(checkpoint.id)))
    query = model.encode(["合同的效力"], prompt_name="query", normalize_embeddings=True)
    assert len(DenseIndex.load(reader.materialize(index.id)).search(["q"], query, 3)["q"]) == 3


def test_use_gpu_auto_follows_the_gpu_nodes_that_are_up(twin: Twin) -> None:
    wait_for_nodes(1, timeout_s=IDLE_TIMEOUT_S + 60)
    assert resolve_use_gpu("auto") is False  # cluster.yaml's GPU workers start at zero
    # A GPU request (what `--gpu` makes a stage ask for) brings up the twin's gpu_worker type, with its logical GPU.
    request_resources(bundles=[{"GPU": 1}])
    wait_for_nodes(2, timeout_s=90)
    assert resolve_use_gpu("auto") is True and resolve_use_gpu(False) is False
    request_resources(bundles=[])
    wait_for_nodes(1, timeout_s=IDLE_TIMEOUT_S + 60)
    time.sleep(1.5)  # one more sample of the shrunk cluster
    assert max(twin.gpu_nodes()) == 1 and twin.gpu_nodes()[-1] == 0


def test_a_release_on_s3_serves_search_from_worker_nodes_without_its_dataset(
    twin: Twin, tiny_encoder_dir: Path, tmp_path: Path
) -> None:
    """cluster.yaml's serving path: the head has no CPUs, so the retriever and reranker replicas start on autoscaled
    workers, which read the checkpoints, the index and its documents from the S3 registry. The prepared dataset the
    index was built on is deleted before the deploy, so nothing can come from a local datasets folder; the deploy
    waits on Serve's own status through the dashboard, as a client tunnelled to it does."""
    release = build_servable_release(tmp_path, tiny_encoder_dir, registry_uri="s3://backbone/serving")
    shutil.rmtree(release.documents)
    port = free_port()
    try:
        record, _ = deploy(release.record.name, release.registry, ServeCluster(twin.dashboard), port=port)
        head = next(node["NodeID"] for node in alive_nodes() if "node:__internal_head__" in node["Resources"])
        replicas = {
            actor.class_name.rsplit(":", 1)[1]: actor.node_id
            for actor in list_actors(address=twin.dashboard, filters=[("state", "=", "ALIVE")], limit=1000)
            if actor.class_name.startswith("ServeReplica:backbone:")
        }
        assert replicas["Retriever"] != head and replicas["Reranker"] != head, replicas
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/search", json={"query": "谁可以成为个体工商户？"}, timeout=60)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["reranked"] is True and body["versions"]["index"] == record.retriever.index
        assert body["results"] and all(hit["text"] for hit in body["results"])
    finally:
        serve.shutdown()
