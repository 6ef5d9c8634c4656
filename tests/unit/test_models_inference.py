"""The one inference path of both components: bf16 and int8 against fp32, the token budget, and what ``auto`` resolves
to."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from backbone.errors import BackboneError
from backbone.models import build_reranker, build_retriever, encode_passages, encode_queries, score_pairs
from backbone.models.precision import computing_in, native_bf16, resolve_precision
from backbone.models.transformer import transformer_of
from backbone.recipes import Inference, Reranker, Retriever

TEXTS = [
    "谁可以成为个体工商户？",
    "who can pay the debt of the company?",
    "合同",
    "合同是民事主体之间设立变更终止 " * 6,
]


def _retriever(tiny_encoder_dir: Path, document_encoder: str = "trained", **inference: object) -> Retriever:
    return Retriever(
        model=str(tiny_encoder_dir),
        max_passage_length=48,
        document_encoder=document_encoder,  # type: ignore[arg-type]
        inference=Inference(**inference),
    )


def _reranker(tiny_encoder_dir: Path, **inference: object) -> Reranker:
    return Reranker(model=str(tiny_encoder_dir), max_length=64, max_query_length=16, inference=Inference(**inference))


def test_bf16_embeddings_are_float32_unit_rows_near_fp32(tiny_encoder_dir: Path) -> None:
    fp32, bf16 = _retriever(tiny_encoder_dir), _retriever(tiny_encoder_dir, precision="bf16")
    model = build_retriever(fp32)
    for encode in (encode_queries, encode_passages):
        reference, low = encode(model, fp32, TEXTS), encode(model, bf16, TEXTS)
        assert low.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(low, axis=1), 1.0, atol=1e-5)
        cosines = (reference * low).sum(axis=1)
        assert cosines.min() > 0.99
        assert not np.array_equal(reference, low)  # bf16 really ran: the products were rounded


def test_bf16_pair_scores_are_float32_near_fp32(tiny_encoder_dir: Path) -> None:
    fp32, bf16 = _reranker(tiny_encoder_dir), _reranker(tiny_encoder_dir, precision="bf16")
    model = build_reranker(fp32)
    reference = score_pairs(model, fp32, TEXTS, TEXTS[::-1])
    low = score_pairs(model, bf16, TEXTS, TEXTS[::-1])
    assert low.dtype == np.float32
    assert not np.array_equal(reference, low)
    np.testing.assert_allclose(low, reference, atol=0.05 * np.abs(reference).max())


@pytest.mark.parametrize("document_encoder", ["trained", "frozen"])  # one transformer, or two behind a Router
def test_int8_embeddings_are_float32_unit_rows_near_fp32(tiny_encoder_dir: Path, document_encoder: str) -> None:
    fp32 = _retriever(tiny_encoder_dir, document_encoder)
    int8 = _retriever(tiny_encoder_dir, document_encoder, precision="int8")
    model = build_retriever(fp32)
    for encode in (encode_queries, encode_passages):
        reference, low = encode(model, fp32, TEXTS), encode(model, int8, TEXTS)
        assert low.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(low, axis=1), 1.0, atol=1e-5)
        assert (reference * low).sum(axis=1).min() > 0.98
        assert not np.array_equal(reference, low)  # int8 really ran: ONNX Runtime's products differ
        np.testing.assert_array_equal(encode(model, fp32, TEXTS), reference)  # and the model is fp32 torch again


def test_int8_pair_scores_are_float32_and_leave_the_model_fp32(tiny_encoder_dir: Path) -> None:
    """How near int8 scores stay is a property of real weights (tests/integration/test_models_real.py): the tiny
    encoder's random head scores within quantization noise."""
    fp32, int8 = _reranker(tiny_encoder_dir), _reranker(tiny_encoder_dir, precision="int8")
    model = build_reranker(fp32)
    reference = score_pairs(model, fp32, TEXTS, TEXTS[::-1])
    low = score_pairs(model, int8, TEXTS, TEXTS[::-1])
    assert low.dtype == np.float32 and low.shape == reference.shape and np.isfinite(low).all()
    assert not np.array_equal(reference, low)  # int8 really ran
    np.testing.assert_array_equal(score_pairs(model, fp32, TEXTS, TEXTS[::-1]), reference)


def test_an_int8_pass_follows_the_weights_after_they_change(tiny_encoder_dir: Path) -> None:
    fp32, int8 = _retriever(tiny_encoder_dir), _retriever(tiny_encoder_dir, precision="int8")
    model = build_retriever(fp32)
    before = encode_passages(model, int8, TEXTS)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # as a training step changes them: in place
        for parameter in transformer_of(model, "test").parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.05)
    after, reference = encode_passages(model, int8, TEXTS), encode_passages(model, fp32, TEXTS)
    # a stale export would give the old embeddings: each row is nearer the new weights' fp32 one than before
    assert ((after * reference).sum(axis=1) > (before * reference).sum(axis=1)).all()
    assert (after * reference).sum(axis=1).min() > 0.95


def test_int8_is_for_inference_passes_on_cpu() -> None:
    with pytest.raises(BackboneError, match="int8 runs on CPU"):
        resolve_precision("int8", torch.device("meta"))
    assert resolve_precision("int8", torch.device("cpu")) == "int8"
    with pytest.raises(BackboneError, match="training steps"), computing_in("int8", torch.device("cpu")):
        pass


def test_the_token_budget_changes_batches_not_results(tiny_encoder_dir: Path) -> None:
    wide, narrow = _retriever(tiny_encoder_dir), _retriever(tiny_encoder_dir, max_batch_tokens=64)
    model = build_retriever(wide)
    np.testing.assert_allclose(encode_passages(model, narrow, TEXTS), encode_passages(model, wide, TEXTS), atol=1e-5)
    wide_pairs, narrow_pairs = _reranker(tiny_encoder_dir), _reranker(tiny_encoder_dir, max_batch_tokens=64)
    reranker = build_reranker(wide_pairs)
    np.testing.assert_allclose(
        score_pairs(reranker, narrow_pairs, TEXTS, TEXTS), score_pairs(reranker, wide_pairs, TEXTS, TEXTS), atol=1e-5
    )


def test_auto_is_bf16_exactly_where_the_cpu_multiplies_it_natively() -> None:
    cpu = torch.device("cpu")
    capabilities = torch.cpu.get_capabilities()
    native = bool(capabilities.get("amx_bf16") or capabilities.get("avx512_bf16"))
    assert native_bf16(cpu) is native
    assert resolve_precision("auto", cpu) == ("bf16" if native else "fp32")
    assert resolve_precision("fp32", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"


def test_fp32_leaves_the_products_alone_and_bf16_rounds_them() -> None:
    a = torch.randn(8, 8)
    with computing_in("fp32", torch.device("cpu")):
        assert (a @ a).dtype == torch.float32
    with computing_in("bf16", torch.device("cpu")):
        assert (a @ a).dtype == torch.bfloat16


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"precision": "fp16"}, "precision"),
        ({"max_batch_tokens": 8}, "max_batch_tokens"),
        ({"batch_tokens": 512}, "batch_tokens"),
    ],
)
def test_inference_mistakes_name_their_field(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Inference(**fields)
