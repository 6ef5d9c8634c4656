"""The paper's configuration on tiny models: decoder-only retriever and reranker, a LoRA adapter on each of 3 + 3
stages, 2 Ray Train workers, the search, a release, and Serve answering from the released decoder checkpoints."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from head_node import RAY_AUTH, free_port, ray_env
from safetensors.torch import load_file
from sentence_transformers import CrossEncoder, SentenceTransformer
from typer.testing import CliRunner

from backbone.cli import app
from backbone.pipeline import PipelineRun, run_pipeline
from backbone.registry import Registry, ReleaseRecord, Releases

pytestmark = pytest.mark.cluster

QUERY = "谁可以成为个体工商户？"
PASSAGES = ["自然人从事工商业经营，经依法登记，为个体工商户。", "婚姻财产", "公司赔偿损失"]
STAGES = ["alignment", "refinement", "calibration"]


def write_decoder_recipe(folder: Path, stard_dir: Path, model_dir: Path) -> Path:
    """stard-qwen3.yaml's shape over a tiny Qwen3: the same families, scorings, losses, negatives and gradient
    checkpointing, scaled down."""
    lora = {"method": "lora", "rank": 4, "alpha": 8, "dropout": 0.0}
    data = {"tables": ["train"], "max_examples": 32}
    common = {"data": data, "batch_size": 4, "learning_rate": 1e-3, "finetune": lora}
    mined = {"count": 3, "rank_range": [1, 30], "margin": 0.0, "random_fraction": 0.25}
    retriever_losses = [("infonce", {}), ("infonce", {"policy": "mined", **mined})]
    reranker_losses = [("bce", {"policy": "in_batch", "count": 1}), ("listwise_ce", {"policy": "mined", **mined})]

    def stages(losses: list[tuple[str, dict]]) -> list[dict]:
        calibration = (losses[1][0], {**losses[1][1], "policy": "remined"})
        return [
            {"name": name, "loss": loss, **({"negatives": negatives} if negatives else {}), **common}
            | ({"epochs": 2} if name == "calibration" else {})
            for name, (loss, negatives) in zip(STAGES, [*losses, calibration], strict=True)
        ]

    recipe = {
        "name": "tiny-decoder",
        "dataset": {
            "loader": "stard",
            "source": str(stard_dir),
            "subset": {"seed": 3, "queries": {"train": 24, "dev": 8}, "corpus_size": 60},
        },
        "retriever": {
            "model": str(model_dir),
            "family": "decoder",
            "pooling": "last_token",
            "instruction": "find the statute that answers the question",
            # Room for the instruction and the query: the prompt counts in max_query_length.
            "max_query_length": 64,
            "max_passage_length": 64,
            "gradient_checkpointing": True,  # as stard-qwen3.yaml: recomputed activations, through Ray Train's DDP
            "stages": stages(retriever_losses),
        },
        "reranker": {
            "model": str(model_dir),
            "family": "decoder",
            "scoring": "yes_no",
            "candidates": "retriever",
            # The tiny byte-level vocabulary spends about 200 tokens on the yes/no template.
            "max_length": 320,
            "max_query_length": 32,
            "gradient_checkpointing": True,
            "stages": stages(reranker_losses),
        },
        "resources": {"workers": 2},
        "evaluation": {
            "retriever_metrics": ["recall@10", "ndcg@10"],
            "reranker_metrics": ["ndcg@10"],
            "end_to_end_metrics": ["ndcg@10"],
            "rerank_candidates": 10,
        },
        "search": {"k": [5, 10], "objective": "ndcg@10"},
        "applications": [{"name": "api", "k_range": [5, 10], "top_n": 3}],
    }
    path = folder / "tiny-decoder.yaml"
    path.write_text(yaml.safe_dump(recipe, allow_unicode=True), encoding="utf-8")
    return path


@dataclass(frozen=True)
class DecoderPipeline:
    registry: Registry
    run: PipelineRun

    @property
    def release(self) -> ReleaseRecord:
        return Releases(self.registry).current("tiny-decoder")

    def weights(self, artifact: str) -> dict[str, np.ndarray]:
        """Every tensor of a checkpoint, by file and name."""
        folder = self.registry.materialize(artifact)
        return {
            f"{file.relative_to(folder)}:{name}": tensor.numpy()
            for file in sorted(folder.rglob("*.safetensors"))
            for name, tensor in load_file(file).items()
        }


@pytest.fixture(scope="module")
def decoder_pipeline(
    local_ray: None, stard_dir: Path, tiny_decoder_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> DecoderPipeline:
    home = tmp_path_factory.mktemp("decoder-home")
    recipe = write_decoder_recipe(home, stard_dir, tiny_decoder_dir)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("BACKBONE_HOME", str(home))
        run = run_pipeline(recipe, registry_uri=str(home / "registry"))
    return DecoderPipeline(Registry(str(home / "registry")), run)


@pytest.fixture(scope="module")
def served_decoder(decoder_pipeline: DecoderPipeline, tiny_head: str) -> Iterator[httpx.Client]:
    """The release deployed with ``backbone deploy`` on the shared loopback head; Serve shut down afterwards."""
    port = free_port()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_AUTH_MODE", RAY_AUTH["RAY_AUTH_MODE"])
        args = ["deploy", "tiny-decoder", "--registry", decoder_pipeline.registry.uri, "--port", str(port)]
        result = CliRunner().invoke(app, [*args, "--address", tiny_head])
    assert result.exit_code == 0, f"{result.output} {result.exception!r}"
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            yield http
    finally:
        # The head is shared with the documented-flow test: give its CPU back.
        subprocess.run(["serve", "shutdown", "--address", tiny_head, "--yes"], env=ray_env(), check=True, timeout=120)


def test_every_lora_stage_trains_and_publishes_a_plain_merged_checkpoint(decoder_pipeline: DecoderPipeline) -> None:
    checkpoints = decoder_pipeline.run.selection.outcome.checkpoints
    assert {component: list(stages) for component, stages in checkpoints.items()} == {
        "retriever": ["base", *STAGES],
        "reranker": ["base", *STAGES],
    }
    for component, stages in checkpoints.items():
        for stage in STAGES:
            manifest = decoder_pipeline.registry.get(stages[stage])
            (parent,) = manifest.lineage.parents
            previous = STAGES[STAGES.index(stage) - 1] if stage != STAGES[0] else "base"
            assert parent == stages[previous], f"{component}/{stage} stacks on {previous}"
            weights, parents = decoder_pipeline.weights(manifest.id), decoder_pipeline.weights(parent)
            # The merged checkpoint has its parent's tensors, no adapter's, and the adapter moved some of them.
            assert weights.keys() == parents.keys() and not [name for name in weights if "lora" in name]
            assert any(not np.array_equal(weights[name], parents[name]) for name in weights), f"{component}/{stage}"
            folder = decoder_pipeline.registry.materialize(manifest.id)
            assert not [path.name for path in folder.rglob("adapter*")]


def test_the_served_answers_come_from_the_released_decoder_checkpoints(
    decoder_pipeline: DecoderPipeline, served_decoder: httpx.Client
) -> None:
    release = decoder_pipeline.release
    assert release.retriever.checkpoint == decoder_pipeline.run.selection.outcome.release.retriever.checkpoint
    info = served_decoder.get("/v1/info").json()
    assert info["release_version"] == release.version
    assert (info["retriever"]["checkpoint"], info["reranker"]["checkpoint"]) == (
        release.retriever.checkpoint,
        release.reranker.checkpoint,
    )

    search = served_decoder.post("/v1/search", json={"query": QUERY, "application": "api"})
    assert search.status_code == 200, search.text
    body = search.json()
    assert body["reranked"] is True and len(body["results"]) == 3
    assert body["versions"]["reranker"] == release.reranker.checkpoint

    # Plain sentence-transformers loading of the released checkpoints (no peft, no backbone code) gives what is
    # served: the instruction-prefixed, last-token-pooled query embedding and the yes/no logits.
    retriever = SentenceTransformer(str(decoder_pipeline.registry.materialize(release.retriever.checkpoint)))
    embedded = served_decoder.post("/v1/embeddings", json={"input": [QUERY]}).json()
    np.testing.assert_allclose(embedded["data"][0]["embedding"], retriever.encode_query([QUERY])[0], atol=1e-5)

    reranker = CrossEncoder(str(decoder_pipeline.registry.materialize(release.reranker.checkpoint)))
    logits = np.asarray(reranker.predict([(QUERY, passage) for passage in PASSAGES]), dtype=np.float64)
    reranked = served_decoder.post("/v1/rerank", json={"query": QUERY, "documents": PASSAGES}).json()
    by_index = {result["index"]: result["relevance_score"] for result in reranked["results"]}
    np.testing.assert_allclose([by_index[i] for i in range(3)], 1 / (1 + np.exp(-logits)), rtol=1e-4)
