"""The one inference path of both components: bf16 against fp32, the token budget, and what ``auto`` resolves to."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from backbone.models import build_reranker, build_retriever, encode_passages, encode_queries, score_pairs
from backbone.models.precision import computing_in, native_bf16, resolve_precision
from backbone.recipes import Inference, Reranker, Retriever

TEXTS = [
    "谁可以成为个体工商户？",
    "who can pay the debt of the company?",
    "合同",
    "合同是民事主体之间设立变更终止 " * 6,
]


def _retriever(tiny_encoder_dir: Path, **inference: object) -> Retriever:
    return Retriever(model=str(tiny_encoder_dir), max_passage_length=48, inference=Inference(**inference))


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
