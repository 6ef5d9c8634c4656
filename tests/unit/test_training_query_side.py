"""A query-side retriever stage's loss: candidates from the corpus embeddings, judged positives masked, one step."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from backbone.models import document_tower, encode_passages
from backbone.recipes import Retriever, RetrieverStage
from backbone.training.query_side import batch_candidates, corpus_candidates, query_side_infonce
from backbone.training.retriever_task import RetrieverTask

ANCHORS = ["谁可以成为个体工商户？", "合同什么时候生效？", "夫妻一方的债务", "子女的继承权利"]
PASSAGES = [
    "自然人从事工商业经营，经依法登记，为个体工商户。",
    "依法成立的合同，自成立时生效。",
    "婚姻自由。",
    "继承开始。",
]
PASSAGES += ["禁止重婚。", "遗产是自然人死亡时遗留的个人合法财产。"]
DOCS = ["d0", "d1", "d2", "d3", "d4", "d5"]
POSITION = {doc: row for row, doc in enumerate(DOCS)}


def test_every_judged_candidate_but_the_own_positive_is_masked() -> None:
    # q0 judges d0 and d1 (both positives of the batch); q2 and q3 share d2 as positive; q1's negative d0 is q0's.
    found = batch_candidates(
        ["d0", "d1", "d2", "d2"],
        [["d4"], ["d0", "d5"], [], ["d3"]],
        [["d0", "d1"], ["d1"], ["d2"], ["d2", "d3"]],
        POSITION,
    )
    assert found.rows == [0, 1, 2, 2, 4, 0, 5, 3]
    assert found.own == [0, 1, 2, 3]
    assert found.masked.tolist() == [
        [False, True, False, False, False, True, False, False],
        [False, False, False, False, False, False, False, False],
        [False, False, False, True, False, False, False, False],
        [False, False, True, False, False, False, False, True],
    ]


def test_corpus_contrast_takes_every_row_and_masks_each_querys_other_judged_documents() -> None:
    # q0 judges d0 and d1; two examples of q0 (one per positive) may share a batch: each masks the other's positive.
    found = corpus_candidates(["d0", "d1", "d3"], [["d0", "d1"], ["d0", "d1"], ["d2", "d3", "d5"]], POSITION)
    assert found.rows is None
    assert found.own == [0, 1, 3]
    assert found.masked.tolist() == [
        [False, True, False, False, False, False],
        [True, False, False, False, False, False],
        [False, False, True, False, False, True],
    ]


def test_the_loss_is_the_softmax_over_unmasked_candidates_only() -> None:
    queries = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    candidates = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    masked = torch.tensor([[False, False, True], [False, False, False]])
    loss = query_side_infonce(queries, candidates, torch.tensor([0, 1]), masked, temperature=0.5)
    first = -math.log(math.exp(2.0) / (math.exp(2.0) + math.exp(0.0)))  # the masked third candidate is left out
    second = -math.log(math.exp(2.0) / (math.exp(0.0) + math.exp(2.0) + math.exp(1.6)))
    assert loss.item() == pytest.approx((first + second) / 2, rel=1e-6)
    loss.backward()
    assert queries.grad is not None and torch.isfinite(queries.grad).all()


@pytest.fixture
def task(tiny_encoder_dir: Path) -> RetrieverTask:
    spec = Retriever(model=str(tiny_encoder_dir), max_query_length=16, max_passage_length=32, document_encoder="frozen")
    stage = RetrieverStage(
        name="s", data={"tables": ["train"]}, loss="infonce", negatives={"policy": "mined", "count": 1}
    )
    return RetrieverTask(spec, stage, ["recall@10"])


def test_a_query_side_step_trains_queries_and_leaves_the_document_tower_bit_identical(task: RetrieverTask) -> None:
    model = task.build(task.spec.model)
    task.prepare(model, model)  # one process: the "DDP wrapper" is the model itself
    task.documents = encode_passages(model, task.spec, PASSAGES)
    before = {name: weight.clone() for name, weight in document_tower(model).state_dict().items()}
    candidates = batch_candidates(
        DOCS[:4], [["d4"], ["d5"], ["d4"], ["d5"]], [["d0"], ["d1"], ["d2"], ["d3"]], POSITION
    )
    model.train()
    whole = task.query_side_loss(model, ANCHORS, candidates, 0)
    # Two workers' shares, averaged (as DDP averages their gradients): the loss on the global batch.
    halves = [task.query_side_loss(model, ANCHORS[start : start + 2], candidates, start) for start in (0, 2)]
    assert ((halves[0] + halves[1]) / 2).item() == pytest.approx(whole.item(), rel=1e-6)

    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-2)
    queries_before = model.encode_query(ANCHORS)
    whole.backward()
    optimizer.step()
    after = document_tower(model).state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert all(parameter.grad is None for parameter in document_tower(model).parameters())
    assert not np.allclose(model.encode_query(ANCHORS), queries_before)
    np.testing.assert_array_equal(encode_passages(model, task.spec, PASSAGES), task.documents)


def test_a_corpus_contrast_step_scores_every_passage_of_the_index(task: RetrieverTask) -> None:
    model = task.build(task.spec.model)
    task.prepare(model, model)
    task.documents = encode_passages(model, task.spec, PASSAGES)
    relevant = [["d0"], ["d1", "d4"], ["d2"], ["d3"]]
    whole = task.query_side_loss(model, ANCHORS, corpus_candidates(DOCS[:4], relevant, POSITION), 0)
    # The same loss by hand: each query against all six passages, d4 left out of q1's softmax.
    queries = torch.from_numpy(model.encode_query(ANCHORS, normalize_embeddings=True))
    scores = queries @ torch.from_numpy(task.documents).T / task.stage.temperature
    scores[1, 4] = float("-inf")
    expected = torch.nn.functional.cross_entropy(scores, torch.tensor([0, 1, 2, 3]))
    assert whole.item() == pytest.approx(expected.item(), rel=1e-4)
