"""A stage checkpoint's params: written as one record, read back as the same record, refused when they are not one."""

from __future__ import annotations

from pathlib import Path

import pytest
from _registry_helpers import publish

from backbone.errors import BackboneError, RegistryError
from backbone.models import CheckpointParams, checkpoint_spec, reranker_spec, retriever_spec
from backbone.recipes import Reranker, Retriever
from backbone.registry import Registry


def _params(component: str, spec: Retriever | Reranker, **more: object) -> dict:
    dumped = spec.model_dump(mode="json", exclude={"stages"})
    record = CheckpointParams(component=component, stage="alignment", base_model=spec.model, spec=dumped, **more)
    return record.model_dump(mode="json", exclude_none=True)


def test_params_round_trip_and_each_spec_loads_as_its_component(tmp_path: Path) -> None:
    registry = Registry(str(tmp_path))
    retriever = Retriever(model="intfloat/multilingual-e5-small", query_prefix="query: ", document_encoder="frozen")
    reranker = Reranker(model="intfloat/multilingual-e5-small", layers=4, scoring="mean")
    with_extra = {**_params("retriever", retriever, workers=2), "document_encoder": {"mode": "frozen"}}
    retriever_checkpoint = publish(registry, params=with_extra)
    reranker_checkpoint = publish(registry, params=_params("reranker", reranker, candidates_from="checkpoint-x"))

    params = CheckpointParams.of(retriever_checkpoint)
    assert (params.component, params.stage, params.workers, params.train_precision) == (
        "retriever",
        "alignment",
        2,
        "fp32",
    )
    assert params.model_extra == {"document_encoder": {"mode": "frozen"}}  # another layer's key, kept as it was
    assert retriever_spec(retriever_checkpoint) == checkpoint_spec(retriever_checkpoint) == retriever
    assert reranker_spec(reranker_checkpoint) == reranker
    assert CheckpointParams.of(reranker_checkpoint).candidates_from == "checkpoint-x"
    with pytest.raises(BackboneError, match=f"{retriever_checkpoint.id} is a retriever checkpoint, not a reranker"):
        reranker_spec(retriever_checkpoint)
    with pytest.raises(BackboneError, match=f"{reranker_checkpoint.id} is a reranker checkpoint, not a retriever"):
        retriever_spec(reranker_checkpoint)


def test_artifacts_that_are_no_stage_checkpoint_are_refused_naming_them(tmp_path: Path) -> None:
    registry = Registry(str(tmp_path))
    plain = publish(registry)  # a checkpoint published by hand: no params
    with pytest.raises(RegistryError, match=f"{plain.id} is not a retriever or reranker checkpoint"):
        checkpoint_spec(plain)
    spec = Retriever(model="intfloat/multilingual-e5-small").model_dump(mode="json", exclude={"stages"})
    broken = publish(
        registry, params={"component": "retriever", "stage": "x", "base_model": "m", "spec": {**spec, "pooling": "max"}}
    )
    with pytest.raises(RegistryError, match=f"{broken.id}: its recorded retriever spec is invalid"):
        checkpoint_spec(broken)
    wrong = publish(registry, params={"component": "indexer", "stage": "x", "base_model": "m", "spec": spec})
    with pytest.raises(RegistryError, match=f"{wrong.id}: its recorded params are invalid"):
        CheckpointParams.of(wrong)
