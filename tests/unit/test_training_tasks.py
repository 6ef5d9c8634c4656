"""The two tasks a stage drives, on tiny encoder and decoder models, in one process (no Ray, no DDP)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from backbone.models import reranker_features
from backbone.recipes import LoraFinetune, Reranker, RerankerStage, Retriever, RetrieverStage
from backbone.training.reranker_task import RerankerTask
from backbone.training.retriever_task import RetrieverTask

ANCHORS = ["谁可以成为个体工商户？", "合同什么时候生效？"]
POSITIVES = ["自然人从事工商业经营，经依法登记，为个体工商户。", "依法成立的合同，自成立时生效。"]
NEGATIVES = [["婚姻自由。", "禁止重婚。"], ["继承从被继承人死亡时开始。", "遗产是自然人死亡时遗留的个人合法财产。"]]


def _stage(stage_type: type, loss: str, **extra: object) -> RetrieverStage | RerankerStage:
    return stage_type(
        name="s", data={"tables": ["train"]}, loss=loss, negatives={"policy": "mined", "count": 2}, **extra
    )


def _tasks(encoder: Path, decoder: Path) -> list[RetrieverTask | RerankerTask]:
    return [
        RetrieverTask(Retriever(model=str(encoder)), _stage(RetrieverStage, "infonce"), ["recall@10"]),
        RetrieverTask(
            Retriever(model=str(decoder), family="decoder", pooling="last_token", instruction="Find the statute"),
            _stage(RetrieverStage, "infonce"),
            ["recall@10"],
        ),
        RerankerTask(Reranker(model=str(encoder)), _stage(RerankerStage, "bce"), ["mrr@10"]),
        RerankerTask(
            Reranker(model=str(decoder), family="decoder", scoring="yes_no", max_length=320, max_query_length=32),
            _stage(RerankerStage, "listwise_ce"),
            ["mrr@10"],
        ),
    ]


@pytest.mark.parametrize("which", range(4), ids=["retriever", "decoder-retriever", "reranker", "decoder-reranker"])
@pytest.mark.parametrize("finetune", ["full", "lora"])
def test_a_task_step_trains_its_model(
    tiny_encoder_dir: Path, tiny_decoder_dir: Path, which: int, finetune: str
) -> None:
    task = _tasks(tiny_encoder_dir, tiny_decoder_dir)[which]
    model = task.build(str(tiny_encoder_dir if which % 2 == 0 else tiny_decoder_dir))
    if finetune == "lora":
        task.add_adapter(model, LoraFinetune(method="lora", rank=4, alpha=8))
    task.prepare(model, model)
    trainable = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
    loss = task.loss(model, ANCHORS, POSITIVES, NEGATIVES)
    assert torch.isfinite(loss)
    loss.backward()
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0).step()
    changed = [
        name for name, p in model.named_parameters() if name in trainable and not torch.equal(p, trainable[name])
    ]
    assert changed, "one step changed no weight"
    if finetune == "lora":
        assert all("lora" in name or "classifier" in name or "pooler" in name for name in trainable)
        task.merge_adapter(model)
        assert not any("lora" in name for name, _ in model.named_parameters())


@pytest.mark.parametrize("loss", ["bce", "listwise_ce", "distill_kl"])
def test_reranker_loss_is_the_reference_over_the_forwarded_scores(tiny_encoder_dir: Path, loss: str) -> None:
    extra = {"teacher_temperature": 0.1, "ce_weight": 0.2} if loss == "distill_kl" else {}
    task = RerankerTask(Reranker(model=str(tiny_encoder_dir)), _stage(RerankerStage, loss, **extra), ["mrr@10"])
    model = task.build(str(tiny_encoder_dir))
    task.prepare(model, model)
    negatives = [NEGATIVES[0], NEGATIVES[1][:1]]  # the second list is shorter: padding must not count
    teacher = [np.array([0.9, 0.7, 0.8]), np.array([0.6, 0.65])]
    lists = [[positive, *docs] for positive, docs in zip(POSITIVES, negatives, strict=True)]
    with torch.no_grad():
        value = task.loss(model, ANCHORS, POSITIVES, negatives, teacher if loss == "distill_kl" else None).item()
        scores = [
            model(reranker_features(model, task.spec, [anchor] * len(docs), docs))["scores"].view(-1)
            for anchor, docs in zip(ANCHORS, lists, strict=True)
        ]
    if loss == "bce":
        labels = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0])
        expected = F.binary_cross_entropy_with_logits(torch.cat(scores), labels).item()
    else:
        ce = [F.cross_entropy(row.unsqueeze(0), torch.tensor([0])).item() for row in scores]
        kl = [
            F.kl_div(F.log_softmax(row, 0), F.softmax(torch.tensor(t, dtype=torch.float32) / 0.1, 0), reduction="sum")
            for row, t in zip(scores, teacher, strict=True)
        ]
        expected = np.mean(ce) if loss == "listwise_ce" else 0.8 * np.mean([k.item() for k in kl]) + 0.2 * np.mean(ce)
    assert value == pytest.approx(expected, abs=1e-5)
