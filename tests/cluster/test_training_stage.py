"""Stages on a real local Ray Train: 2 workers match 1, a killed worker resumes, checkpoints reproduce their metrics."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import ray.train
import torch
import torch.distributed as dist
from ray.train import ScalingConfig
from ray.train.torch import TorchTrainer, prepare_model
from safetensors.torch import load_file
from sentence_transformers import CrossEncoder, SentenceTransformer
from tiny_recipe import tiny_recipe

from backbone.errors import BackboneError
from backbone.evaluation import DenseIndex, evaluate, rerank
from backbone.models import build_reranker, encode_passages, score_pairs
from backbone.recipes import RetrieverStage
from backbone.registry import Registry, find_index
from backbone.selection.inputs import search_inputs
from backbone.selection.retrieval_runs import retrieval_run
from backbone.training import StageRun, reranker_candidates, run_stage
from backbone.training.inputs import build_stage_inputs
from backbone.training.query_side import batch_candidates
from backbone.training.reranker_task import RerankerTask
from backbone.training.retriever_task import RetrieverTask

pytestmark = pytest.mark.cluster

RETRIEVER_STAGE = {
    "name": "refine",
    "data": {"tables": ["train"], "max_examples": 16},
    "negatives": {"policy": "mined", "count": 2, "rank_range": [1, 20], "random_fraction": 0.5},
    "loss": "infonce",
    "epochs": 1,
    "learning_rate": 1e-3,
    "batch_size": 4,
}
RERANKER_STAGE = {
    "name": "refine",
    "data": {"tables": ["train"], "max_examples": 16},
    "negatives": {"policy": "in_batch", "count": 2},
    "loss": "listwise_ce",
    "epochs": 1,
    "learning_rate": 1e-3,
    "batch_size": 4,
}
ANCHORS = [f"问题 {i} 关于合同的效力" for i in range(8)]
PASSAGES = [f"第{i}条 合同依法成立，自成立时生效。" * (1 + i % 3) for i in range(8)]


def _first_step(config: dict) -> None:
    """One step of each task (retriever, reranker, query-side retriever) on a fixed global batch of 8."""
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    share = slice(rank * 8 // world, (rank + 1) * 8 // world)
    torch.manual_seed(0)
    report = {}
    for name in ("retriever", "reranker", "query_side"):
        task = config[name]
        model = task.build(config["model_dir"])
        ddp_model = prepare_model(model, parallel_strategy_kwargs={"find_unused_parameters": False})
        task.prepare(model, ddp_model)
        negatives = [[(i + 3) % 8, (i + 5) % 8] for i in range(8)]
        if name == "query_side":  # passages from the (frozen) document tower; even queries judge a negative relevant
            task.documents = encode_passages(model, task.spec, PASSAGES)
            docs = [f"p{i}" for i in range(8)]
            candidates = batch_candidates(
                docs,
                [[docs[j] for j in row] for row in negatives],
                [[docs[i], *([docs[(i + 3) % 8]] if i % 2 == 0 else [])] for i in range(8)],
                {doc: row for row, doc in enumerate(docs)},
            )
            loss = task.query_side_loss(model, ANCHORS[share], candidates, share.start)
        else:
            texts = [[PASSAGES[j] for j in row] for row in negatives]
            loss = task.loss(model, ANCHORS[share], PASSAGES[share], texts[share])
        loss.backward()
        gradient = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        total = loss.detach().clone()
        if dist.is_initialized():
            dist.all_reduce(total)
            total /= world
        report[f"{name}_loss"] = float(total)
        report[f"{name}_gradient"] = gradient.tolist()
    ray.train.report(report)
    if rank == 0:
        Path(config["out"]).write_text(json.dumps(report))


def _first_step_result(workers: int, tasks: dict, model_dir: Path, out: Path) -> dict:
    TorchTrainer(
        _first_step,
        train_loop_config={**tasks, "model_dir": str(model_dir), "out": str(out)},
        scaling_config=ScalingConfig(num_workers=workers),
    ).fit()
    return json.loads(out.read_text())


def test_two_workers_match_one_on_the_first_step(
    local_ray: None, stard_dir: Path, tiny_encoder_dir: Path, tmp_path: Path
) -> None:
    recipe = tiny_recipe(stard_dir, tiny_encoder_dir, RETRIEVER_STAGE, RERANKER_STAGE)
    tasks = {
        "retriever": RetrieverTask(recipe.retriever, recipe.retriever.stages[0], ["recall@10"]),
        "reranker": RerankerTask(recipe.reranker, recipe.reranker.stages[0], ["mrr@10"]),
        "query_side": RetrieverTask(
            recipe.retriever.model_copy(update={"document_encoder": "frozen"}),
            recipe.retriever.stages[0],
            ["recall@10"],
        ),
    }
    one = _first_step_result(1, tasks, tiny_encoder_dir, tmp_path / "one")
    two = _first_step_result(2, tasks, tiny_encoder_dir, tmp_path / "two")
    for name in ("retriever", "reranker", "query_side"):
        assert two[f"{name}_loss"] == pytest.approx(one[f"{name}_loss"], rel=1e-5)
        single, double = np.array(one[f"{name}_gradient"]), np.array(two[f"{name}_gradient"])
        assert np.abs(single).max() > 0
        # Shards pad to different lengths, so float32 sums differ in their last bits: compare at the gradient's scale.
        np.testing.assert_allclose(double, single, rtol=1e-3, atol=1e-3 * np.abs(single).max())
        cosine = double @ single / (np.linalg.norm(double) * np.linalg.norm(single))
        assert cosine > 0.99999


def _kill_a_worker_after_first_checkpoint(storage: Path, killed: list[int], stop: threading.Event) -> None:
    while not stop.is_set() and not any(storage.glob("*-retriever-refine-*/checkpoint_*")):
        time.sleep(0.2)
    # The folder appears while the checkpoint uploads; a report registers it about 2 s later (the controller's poll).
    stop.wait(4.0)
    while not stop.is_set():
        workers = [
            process
            for process in psutil.process_iter(["cmdline"])
            if "RayTrainWorker" in " ".join(process.info["cmdline"] or [])
        ]
        if workers:
            killed.append(workers[-1].pid)
            os.kill(workers[-1].pid, signal.SIGKILL)
            return
        time.sleep(0.2)


def test_killed_worker_resumes_and_publishes_once(
    local_ray: None, stard_dir: Path, tiny_encoder_dir: Path, small_dataset: Path, tmp_path: Path
) -> None:
    stage = {**RETRIEVER_STAGE, "epochs": 5}
    recipe = tiny_recipe(stard_dir, tiny_encoder_dir, stage, RERANKER_STAGE)
    registry = Registry(str(tmp_path / "registry"))
    base = run_stage(recipe, "retriever", "base", None, small_dataset, registry, StageRun(workers=1)).checkpoint
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(
        target=_kill_a_worker_after_first_checkpoint, args=(tmp_path / "registry" / "ray-train", killed, stop)
    )
    killer.start()
    try:
        checkpoint = run_stage(
            recipe, "retriever", "refine", base, small_dataset, registry, StageRun(workers=2)
        ).checkpoint
    finally:
        stop.set()
        killer.join()
    assert killed, "no worker was killed: the test did not exercise a failure"
    assert checkpoint.metrics["restarts"] >= 1
    # 16 examples in batches of 4, 5 epochs: nothing lost, nothing repeated (the batches leave out what conflicts).
    assert checkpoint.metrics["steps"] * 4 + checkpoint.metrics["examples_left_out"] == 5 * 16
    published = [a for a in registry.list("checkpoint") if a.name == "retriever/refine"]
    assert [a.id for a in published] == [checkpoint.id]
    assert [a.name for a in registry.list("index")] == ["retriever/base/index", "retriever/refine/index"]


def test_checkpoints_load_plainly_and_reproduce_their_metrics(
    local_ray: None, stard_dir: Path, tiny_encoder_dir: Path, small_dataset: Path, tmp_path: Path
) -> None:
    recipe = tiny_recipe(stard_dir, tiny_encoder_dir, RETRIEVER_STAGE, RERANKER_STAGE)
    registry = Registry(str(tmp_path / "registry"))
    one = StageRun(workers=1)
    retriever = run_stage(recipe, "retriever", "refine", None, small_dataset, registry, one).checkpoint
    reranker = run_stage(recipe, "reranker", "refine", None, small_dataset, registry, one).checkpoint
    inputs = build_stage_inputs(recipe, recipe.reranker, None, small_dataset)

    model = SentenceTransformer(str(registry.materialize(retriever.id)))
    corpus = model.encode(inputs.passages, prompt_name="passage", normalize_embeddings=True)
    model.max_seq_length = recipe.retriever.max_query_length  # queries are cut shorter than passages
    queries = model.encode(list(inputs.eval_queries.values()), prompt_name="query", normalize_embeddings=True)
    run = DenseIndex.build(inputs.corpus_ids, corpus).search(list(inputs.eval_queries), queries, 10)
    for metric, value in evaluate(inputs.eval_qrels, run, recipe.evaluation.retriever_metrics).items():
        assert value == pytest.approx(retriever.metrics[metric], abs=1e-6), metric

    # Loaded plainly; scored with the recipe's truncation rule (query cut first to max_query_length, see models).
    cross = CrossEncoder(str(registry.materialize(reranker.id)))
    candidates = inputs.fixed_candidate_run()
    passages = dict(zip(inputs.corpus_ids, inputs.passages, strict=True))
    reranked = rerank(
        candidates,
        lambda queries, passages: score_pairs(cross, recipe.reranker, queries, passages),
        inputs.eval_queries,
        passages,
        depth=10,
    )
    for metric, value in evaluate(inputs.eval_qrels, reranked, recipe.evaluation.reranker_metrics).items():
        assert value == pytest.approx(reranker.metrics[metric], abs=1e-6), metric
    assert retriever.metrics["examples"] == 16
    # Batches of 4 without conflicts: what they leave out is counted, and every selected example is accounted for.
    assert retriever.metrics["steps"] * 4 + retriever.metrics["examples_left_out"] == 16
    assert retriever.metrics["steps"] >= 3
    # 2 negatives for each of the 16 examples: 1 mined and 1 random each (random_fraction 0.5), nothing short.
    assert retriever.metrics["negatives_mined"] + retriever.metrics["negatives_random"] == 32
    assert retriever.metrics["negatives_random"] >= 16 and "negatives_dropped" in retriever.metrics
    assert "negatives_mined" not in reranker.metrics
    assert reranker.metrics["steps"] * 4 + reranker.metrics["examples_left_out"] == 16


def test_a_reranker_distils_from_the_retrievers_candidates(
    local_ray: None, stard_dir: Path, tiny_encoder_dir: Path, small_dataset: Path, tmp_path: Path
) -> None:
    stage = {
        **RERANKER_STAGE,
        "name": "distill",
        "negatives": {"policy": "mined", "count": 2, "rank_range": [1, 10], "random_fraction": 0.5},
        "loss": "distill_kl",
        "ce_weight": 0.5,
    }
    recipe = tiny_recipe(stard_dir, tiny_encoder_dir, RETRIEVER_STAGE, stage, candidates="retriever")
    registry = Registry(str(tmp_path / "registry"))
    one = StageRun(workers=1)
    with pytest.raises(BackboneError, match="train the retriever first"):
        run_stage(recipe, "reranker", "distill", None, small_dataset, registry, one)
    retriever = run_stage(recipe, "retriever", "base", None, small_dataset, registry, one).checkpoint
    reranker = run_stage(recipe, "reranker", "distill", None, small_dataset, registry, one).checkpoint

    # The stage trained (on every worker the teacher scores were there: distill_kl asserts them) ...
    assert reranker.params["candidates_from"] == retriever.id
    assert reranker.metrics["steps"] * 4 + reranker.metrics["examples_left_out"] == 16
    assert reranker.metrics["steps"] >= 3 and np.isfinite(reranker.metrics["loss"])
    # ... and was scored on the retriever's lists, as a plain CrossEncoder scores them.
    source = reranker_candidates(recipe, small_dataset, registry)
    inputs = build_stage_inputs(recipe, recipe.reranker, None, small_dataset, source)
    cross = CrossEncoder(str(registry.materialize(reranker.id)))
    reranked = rerank(
        inputs.fixed_candidate_run(),
        lambda queries, passages: score_pairs(cross, recipe.reranker, queries, passages),
        inputs.eval_queries,
        dict(zip(inputs.corpus_ids, inputs.passages, strict=True)),
        depth=10,
    )
    for metric, value in evaluate(inputs.eval_qrels, reranked, recipe.evaluation.reranker_metrics).items():
        assert value == pytest.approx(reranker.metrics[metric], abs=1e-6), metric


def test_a_query_side_curriculum_encodes_the_corpus_once(
    local_ray: None, stard_dir: Path, tiny_encoder_dir: Path, small_dataset: Path, tmp_path: Path
) -> None:
    stage = {**RETRIEVER_STAGE, "name": "queries", "epochs": 2, "data": {"tables": ["train"], "max_examples": 8}}
    stage["negatives"] = {**RETRIEVER_STAGE["negatives"], "policy": "remined"}  # epoch 2 mines again
    whole = {**RETRIEVER_STAGE, "name": "whole", "negatives": {"policy": "in_batch"}, "contrast": "corpus"}
    recipe = tiny_recipe(stard_dir, tiny_encoder_dir, stage, RERANKER_STAGE)
    stages = [*recipe.retriever.stages, RetrieverStage.model_validate(whole)]
    retriever = recipe.retriever.model_copy(update={"document_encoder": "frozen", "stages": stages})
    recipe = recipe.model_copy(update={"retriever": retriever})
    registry = Registry(str(tmp_path / "registry"))
    one = StageRun(workers=1)
    base = run_stage(recipe, "retriever", "base", None, small_dataset, registry, one).checkpoint
    trained = run_stage(recipe, "retriever", "queries", base, small_dataset, registry, one).checkpoint

    assert (base.metrics["corpus_encodings"], trained.metrics["corpus_encodings"]) == (1, 0)
    assert trained.params["document_encoder"] == {"mode": "frozen", "checkpoint": base.id}
    [index] = registry.list("index")  # the stage published none of its own
    data = base.lineage.dataset_checksum
    assert find_index(registry, trained, data) == find_index(registry, base, data) == index
    weights = {
        checkpoint.id: load_file(registry.materialize(checkpoint.id) / "document_0_Transformer" / "model.safetensors")
        for checkpoint in (base, trained)
    }
    assert all(torch.equal(weights[base.id][name], weights[trained.id][name]) for name in weights[base.id])
    # The loss masks each query's judged documents itself: plain shuffled batches, 2 epochs of 2 batches of 4.
    assert (trained.metrics["steps"], trained.metrics["examples_left_out"]) == (4, 0)
    assert trained.metrics["ndcg@10"] != base.metrics["ndcg@10"]

    # contrast: corpus scores every query against all the index's passages: still no encoding, 16 examples in 4 steps.
    against_corpus = run_stage(recipe, "retriever", "whole", trained, small_dataset, registry, one).checkpoint
    assert against_corpus.metrics["corpus_encodings"] == 0 and registry.list("index") == [index]
    assert (against_corpus.metrics["steps"], against_corpus.metrics["examples_left_out"]) == (4, 0)
    assert against_corpus.metrics["ndcg@10"] != trained.metrics["ndcg@10"]

    # The search's retrieval run of the stage reads the shared index: no corpus encoding.
    inputs = search_inputs(small_dataset, recipe.dataset.eval_split, recipe.retriever, recipe.reranker)
    run = retrieval_run(registry.uri, trained.id, recipe.retriever, inputs, depth=10)
    assert (run.index, run.corpus_encoded) == (index.id, False)
    plain = SentenceTransformer(str(registry.materialize(trained.id)))
    query_ids = list(inputs.queries)
    searched = DenseIndex.load(registry.materialize(index.id)).search(
        query_ids, plain.encode_query([inputs.queries[query] for query in query_ids]), 10
    )
    for metric, value in evaluate(inputs.qrels, searched, recipe.evaluation.retriever_metrics).items():
        assert value == pytest.approx(trained.metrics[metric], abs=1e-6), metric


def test_a_base_model_saved_by_sentence_transformers_is_built_into_the_recipes_reranker(
    local_ray: None, stard_dir: Path, tiny_encoder_dir: Path, small_dataset: Path, tmp_path: Path
) -> None:
    # multilingual-e5-small is such a folder (modules.json beside the weights): the base stage must still cut it
    # to the recipe's layers and give it the seeded head, not load it as if it were a reranker checkpoint.
    base_model = tmp_path / "sentence-transformers-model"
    SentenceTransformer(str(tiny_encoder_dir)).save(str(base_model))
    assert (base_model / "modules.json").is_file()
    recipe = tiny_recipe(stard_dir, base_model, RETRIEVER_STAGE, RERANKER_STAGE, layers=1)
    registry = Registry(str(tmp_path / "registry"))
    base = run_stage(recipe, "reranker", "base", None, small_dataset, registry, StageRun(workers=1)).checkpoint

    published = CrossEncoder(str(registry.materialize(base.id)))
    assert published.model.config.num_hidden_layers == 1 and len(published.model.bert.encoder.layer) == 1
    built = build_reranker(recipe.reranker, str(base_model))
    for name, weight in built.model.classifier.state_dict().items():
        assert torch.equal(published.model.classifier.state_dict()[name], weight), name
