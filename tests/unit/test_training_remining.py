"""Per-epoch re-mining: the stage loop's negatives step ranks again with the updated model and mines anew."""

from __future__ import annotations

import random
from pathlib import Path

import torch

from backbone.recipes import Retriever, RetrieverStage
from backbone.training.inputs import StageInputs
from backbone.training.loop import epoch_negatives
from backbone.training.retriever_task import RetrieverTask

WORDS = "合同婚姻继承劳动公司个体工商户自然人法人组织登记经营财产债务偿还夫妻子女父母责任赔偿损失侵权违约"


def _inputs() -> StageInputs:
    corpus_ids = [f"d{i}" for i in range(24)]
    passages = [WORDS[i : i + 6] + WORDS[(3 * i) % 40 : (3 * i) % 40 + 5] for i in range(24)]
    queries = {f"q{i}": WORDS[(5 * i) % 40 : (5 * i) % 40 + 4] + "是什么" for i in range(4)}
    positives = ["d1", "d6", "d11", "d16"]
    return StageInputs(
        example_queries=list(queries),
        example_positives=positives,
        anchors=queries,
        relevant={query: [doc] for query, doc in zip(queries, positives, strict=True)},
        corpus_ids=corpus_ids,
        passages=passages,
        eval_queries={},
        eval_qrels={},
    )


def _stage(policy: str) -> RetrieverStage:
    return RetrieverStage(
        name="calibration",
        data={"tables": ["train"]},
        loss="infonce",
        negatives={
            "policy": policy,
            "count": 3,
            "rank_range": [1, 10],
            "random_fraction": 0.0,
            "margin": 0.0,
            "margin_reference": "best",  # a random model fails every query: keep its hard candidates
        },
    )


def _train_a_little(task: RetrieverTask, model: torch.nn.Module, inputs: StageInputs, negatives: dict) -> None:
    """Two optimiser steps on the four examples and their mined negatives, as one epoch of the loop would."""
    task.prepare(model, model)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=2.0)
    model.train()
    for _ in range(2):
        loss = task.loss(
            model,
            [inputs.anchors[query] for query in inputs.example_queries],
            [inputs.passages[inputs.position[doc]] for doc in inputs.example_positives],
            [[inputs.passages[inputs.position[doc]] for doc in negatives[i].documents] for i in range(4)],
        )
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()


def test_remined_ranks_again_before_epoch_two_and_changes_the_negatives(tiny_encoder_dir: Path) -> None:
    torch.manual_seed(0)
    inputs, stage = _inputs(), _stage("remined")
    task = RetrieverTask(Retriever(model=str(tiny_encoder_dir)), stage, ["recall@10"])
    model = task.build(str(tiny_encoder_dir))
    selected = [0, 1, 2, 3]
    first, corpus, negatives = epoch_negatives(task, model, stage, inputs, selected, 0, {}, None, random.Random(0))
    assert all(choice.mined == 3 for choice in negatives.values())

    _train_a_little(task, model, inputs, negatives)
    second, corpus_after, renegatives = epoch_negatives(
        task, model, stage, inputs, selected, 1, first, corpus, random.Random(1)
    )
    # The rankings are the updated model's own, over a corpus encoded again, not the first epoch's.
    model.eval()
    with torch.no_grad():
        fresh, fresh_corpus = task.rank(model, sorted(inputs.anchors), inputs, 10)
    assert second == dict(zip(sorted(inputs.anchors), fresh, strict=True))
    assert torch.equal(torch.from_numpy(corpus_after), torch.from_numpy(fresh_corpus))
    assert second != first and not torch.equal(torch.from_numpy(corpus_after), torch.from_numpy(corpus))
    changed = [i for i in selected if renegatives[i].documents != negatives[i].documents]
    assert changed, "re-mining with the updated model gave the same negatives"

    # `mined` keeps the first epoch's rankings: the same hard negatives, however the model has moved.
    mined = _stage("mined")
    kept, _, again = epoch_negatives(task, model, mined, inputs, selected, 1, first, corpus, random.Random(1))
    assert kept is first
    assert {i: choice.documents for i, choice in again.items()} == {i: c.documents for i, c in negatives.items()}
