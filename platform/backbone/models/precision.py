"""The numeric precision of a model pass: fp32, bfloat16 matrix products through torch's autocast, or int8 through
ONNX Runtime (:mod:`backbone.models.int8`).

bf16 pays only where the device computes it natively: on a CPU with AMX or AVX512-BF16 a pass runs about 3x faster
than fp32, on one with AVX2 alone about 50x slower. ``auto`` asks the device (:func:`native_bf16`). int8 is the
fast path of CPUs without native bf16, for inference passes only (training steps run at fp32 or bf16).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

import torch
from sentence_transformers import CrossEncoder, SentenceTransformer

from backbone.errors import BackboneError
from backbone.models.int8 import int8_passes
from backbone.recipes.inference import InferencePrecision

Precision = Literal["fp32", "bf16", "int8"]


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bfloat16 matrices in hardware (CUDA with bf16, or a CPU with AMX/AVX512-BF16).

    Example:
        >>> native_bf16(torch.device("meta"))
        False
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        capabilities = torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}
        return bool(capabilities.get("amx_bf16") or capabilities.get("avx512_bf16"))
    return False


def resolve_precision(setting: InferencePrecision, device: torch.device) -> Precision:
    """The precision a pass on ``device`` runs at: ``auto`` becomes bf16 where it is native, else fp32.

    Args:
        setting: the component's ``inference.precision`` (or the recipe's ``resources.train_precision``).
        device: where the model is.

    Raises:
        BackboneError: int8 asked of a model that is not on CPU.

    Example:
        >>> resolve_precision("auto", torch.device("meta"))
        'fp32'
    """
    if setting == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if setting == "int8" and device.type != "cpu":
        raise BackboneError(f"precision int8 runs on CPU through ONNX Runtime; this model is on {device}")
    return setting


@contextlib.contextmanager
def computing_in(
    precision: Precision, device: torch.device, model: SentenceTransformer | CrossEncoder | None = None
) -> Iterator[None]:
    """Run the block's forward passes at ``precision``: bf16 autocast, int8 through ONNX Runtime, or nothing
    changed for fp32.

    Outputs of an autocast or int8 pass are cast back to float32 by the callers (embeddings, logits), so what
    leaves a pass is float32 at every precision.

    Args:
        precision: what :func:`resolve_precision` gave.
        device: where the model is.
        model: the retriever or reranker whose passes run in the block; needed for int8 only.

    Raises:
        BackboneError: int8 without a model (training steps have no int8).

    Example:
        >>> with computing_in("bf16", torch.device("cpu")):
        ...     (torch.ones(2, 2) @ torch.ones(2, 2)).dtype
        torch.bfloat16
    """
    if precision == "fp32":
        yield
        return
    if precision == "int8":
        if model is None:
            raise BackboneError("precision int8 is for inference passes of a model; training steps have none")
        with int8_passes(model):
            yield
        return
    with torch.autocast(device.type, dtype=torch.bfloat16):
        yield
