"""A training stage on the twin of cluster.yaml with the registry, and so Ray Train's storage, on S3 (local moto)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow.fs as pafs
import pytest
from fake_cluster import NodeCounts, fake_cluster
from sentence_transformers import SentenceTransformer
from tiny_recipe import tiny_recipe

from backbone.evaluation import DenseIndex
from backbone.registry import Registry
from backbone.training import StageRun, run_stage
from s3_server import moto_s3

pytestmark = pytest.mark.cluster

STAGE = {
    "name": "refine",
    "data": {"tables": ["train"], "max_examples": 16},
    "loss": "infonce",
    "epochs": 1,
    "learning_rate": 1e-3,
    "batch_size": 4,
}
URI = "s3://backbone/registry"


@pytest.fixture(scope="module")
def twin_with_s3() -> Iterator[NodeCounts]:
    """The twin of cluster.yaml whose every node has the S3 server's AWS environment, as an instance profile gives."""
    with moto_s3("backbone"), fake_cluster() as counts:
        yield counts


def test_stage_publishes_checkpoint_and_index_to_s3_and_they_materialize(
    twin_with_s3: NodeCounts,
    stard_dir: Path,
    tiny_encoder_dir: Path,
    small_dataset: Path,
    tmp_path: Path,
    private_backbone_home: Path,
) -> None:
    reranker_stage = {**STAGE, "loss": "listwise_ce", "negatives": {"policy": "in_batch", "count": 2}}
    recipe = tiny_recipe(stard_dir, tiny_encoder_dir, STAGE, reranker_stage)
    registry = Registry(URI)
    assert isinstance(registry.root.fs, pafs.S3FileSystem)
    checkpoint = run_stage(recipe, "retriever", "refine", None, small_dataset, registry, StageRun(workers=2))

    # Ray Train's workers wrote their epoch checkpoint into the bucket, under the registry's ray-train folder.
    train_files = registry.root.list_files("ray-train")
    assert any("/checkpoint_" in path and path.endswith("model.safetensors") for path in train_files), train_files
    assert not (private_backbone_home / "registry").exists()  # nothing fell back to the local default registry

    # A fresh reader of the same URI finds the checkpoint and its index, and both load from their local copies.
    reader = Registry(URI)
    index = reader.find("index", f"index:{checkpoint.id}")
    assert index is not None and index.name == "retriever/refine/index" and index.lineage.parents == [checkpoint.id]
    reader.verify(checkpoint.id)
    model = SentenceTransformer(str(reader.materialize(checkpoint.id)))
    dense = DenseIndex.load(reader.materialize(index.id))
    query = model.encode(["合同的效力"], prompt_name="query", normalize_embeddings=True)
    assert len(dense.search(["q"], query, 3)["q"]) == 3
    assert max(twin_with_s3.nodes()) >= 2  # the stage ran on autoscaled workers, not on the head
