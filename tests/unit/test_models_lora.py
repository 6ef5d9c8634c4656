"""LoRA stages on tiny models: what trains, that a step moves the model, and that merging leaves a plain checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
import torch
from sentence_transformers import CrossEncoder, SentenceTransformer
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

from backbone.errors import BackboneError
from backbone.models import (
    DEFAULT_TARGET_MODULES,
    add_lora,
    build_reranker,
    build_retriever,
    encode_queries,
    merge_lora,
    reranker_features,
    retriever_features,
    score_pairs,
)
from backbone.recipes import LoraFinetune, Reranker, Retriever

QUERIES = ["谁可以成为个体工商户？", "who can pay the debt?"]
PASSAGES = ["个体工商户条例第二条", "the company pays its debt"]
LORA = LoraFinetune(method="lora", rank=4, alpha=8, dropout=0.0)

Model = SentenceTransformer | CrossEncoder
HEAD = {"0.model.bert.pooler.dense.weight", "0.model.bert.pooler.dense.bias"}
HEAD |= {"0.model.classifier.weight", "0.model.classifier.bias"}


@dataclass
class Case:
    """A component on a tiny model, with what a LoRA stage needs to train it and watch it."""

    family: Literal["encoder", "decoder"]
    model: Model
    outputs: Callable[[Model], np.ndarray]
    step_loss: Callable[[], torch.Tensor]
    head: set[str] = field(default_factory=set)


def retriever_case(path: Path) -> Case:
    spec = Retriever(model=str(path), query_prefix="query: ", passage_prefix="passage: ")
    model = build_retriever(spec)
    loss = MultipleNegativesRankingLoss(model)

    def step_loss() -> torch.Tensor:
        features = [
            retriever_features(model, spec, QUERIES, "query"),
            retriever_features(model, spec, PASSAGES, "passage"),
        ]
        return loss(features, None)

    return Case("encoder", model, lambda any_model: encode_queries(any_model, spec, QUERIES + PASSAGES), step_loss)


def reranker_case(spec: Reranker, head: set[str]) -> Case:
    model = build_reranker(spec)
    pairs = [QUERIES * 2, PASSAGES + PASSAGES[::-1]]

    def step_loss() -> torch.Tensor:
        logits = model(reranker_features(model, spec, *pairs))["scores"].view(-1)
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.tensor([1.0, 1.0, 0.0, 0.0]))

    return Case(spec.family, model, lambda any_model: score_pairs(any_model, spec, *pairs), step_loss, head)


@pytest.fixture(params=["retriever", "head reranker", "yes/no reranker"])
def case(request: pytest.FixtureRequest, tiny_encoder_dir: Path, tiny_decoder_dir: Path) -> Case:
    if request.param == "retriever":
        return retriever_case(tiny_encoder_dir)
    if request.param == "head reranker":
        return reranker_case(Reranker(model=str(tiny_encoder_dir), max_length=64, max_query_length=16), HEAD)
    spec = Reranker(model=str(tiny_decoder_dir), family="decoder", scoring="yes_no", max_length=300)
    return reranker_case(spec, set())  # the language-model head stays frozen


def trainable(model: Model) -> set[str]:
    return {name for name, parameter in model.named_parameters() if parameter.requires_grad}


def adapted_modules(names: set[str]) -> set[str]:
    return {name.split(".lora_")[0].rsplit(".", 1)[-1] for name in names if ".lora_" in name}


def test_only_the_adapter_and_a_classification_head_train(case: Case) -> None:
    add_lora(case.model, LORA, case.family)
    names = trainable(case.model)
    assert adapted_modules(names) == set(DEFAULT_TARGET_MODULES[case.family])
    assert {name for name in names if ".lora_" not in name} == case.head


def test_a_step_moves_the_model_and_merging_keeps_it(case: Case, tmp_path: Path) -> None:
    model = case.model
    untrained = case.outputs(model)
    plain_names = [name for name, _ in model.named_parameters()]
    add_lora(model, LORA, case.family)
    np.testing.assert_allclose(case.outputs(model), untrained, atol=1e-6)  # a fresh adapter is a no-op
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    model.train()
    case.step_loss().backward()
    optimizer.step()
    trained = case.outputs(model)
    assert not np.allclose(trained, untrained, atol=1e-4)

    merge_lora(model)
    assert [name for name, _ in model.named_parameters()] == plain_names
    np.testing.assert_allclose(case.outputs(model), trained, atol=1e-5)
    model.save(str(tmp_path))
    assert not [path.name for path in tmp_path.rglob("adapter*")]
    reloaded = (SentenceTransformer if isinstance(model, SentenceTransformer) else CrossEncoder)(str(tmp_path))
    assert not any("lora" in name for name, _ in reloaded.named_parameters())
    np.testing.assert_allclose(case.outputs(reloaded), trained, atol=1e-5)


def test_target_modules_from_the_recipe(tiny_encoder_dir: Path) -> None:
    model = retriever_case(tiny_encoder_dir).model
    add_lora(model, LORA.model_copy(update={"target_modules": ["value"]}), "encoder")
    assert adapted_modules(trainable(model)) == {"value"}


def test_adapters_stack_only_through_merging(tiny_encoder_dir: Path) -> None:
    model = retriever_case(tiny_encoder_dir).model
    with pytest.raises(BackboneError, match="no LoRA adapter"):
        merge_lora(model)
    add_lora(model, LORA, "encoder")
    with pytest.raises(BackboneError, match="already carries a LoRA adapter"):
        add_lora(model, LORA, "encoder")
    merge_lora(model)
    add_lora(model, LORA, "encoder")  # the next stage's fresh adapter
    assert trainable(model)


def test_adapters_get_the_same_gradients_under_gradient_checkpointing(tiny_decoder_dir: Path) -> None:
    spec = Reranker(model=str(tiny_decoder_dir), family="decoder", scoring="yes_no", max_length=300)
    gradients = []
    for checkpointing in (False, True):
        case = reranker_case(spec.model_copy(update={"gradient_checkpointing": checkpointing}), set())
        torch.manual_seed(0)  # the same adapter weights and dropout masks in both runs
        add_lora(case.model, LORA, case.family)
        case.model.train()
        case.step_loss().backward()
        gradients.append({n: p.grad.clone() for n, p in case.model.named_parameters() if p.grad is not None})
    assert gradients[0].keys() == gradients[1].keys() and adapted_modules(set(gradients[0]))
    for name, plain in gradients[0].items():
        torch.testing.assert_close(gradients[1][name], plain, atol=1e-5, rtol=1e-4)
