"""The numeric precision of a model pass: fp32, or bfloat16 matrix products through torch's autocast.

bf16 pays only where the device computes it natively: on a CPU with AMX or AVX512-BF16 a pass runs about 3x faster
than fp32, on one with AVX2 alone about 50x slower. ``auto`` asks the device (:func:`native_bf16`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

import torch

from backbone.recipes.inference import PrecisionSetting

Precision = Literal["fp32", "bf16"]


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


def resolve_precision(setting: PrecisionSetting, device: torch.device) -> Precision:
    """The precision a pass on ``device`` runs at: ``auto`` becomes bf16 where it is native, else fp32.

    Args:
        setting: the component's ``inference.precision``.
        device: where the model is.

    Example:
        >>> resolve_precision("auto", torch.device("meta"))
        'fp32'
    """
    if setting == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return setting


@contextlib.contextmanager
def computing_in(precision: Precision, device: torch.device) -> Iterator[None]:
    """Run the block's forward passes at ``precision``: bf16 autocast, or nothing changed for fp32.

    Outputs of an autocast pass are cast back to float32 by the callers (embeddings, logits), so what leaves a
    pass is float32 at either precision.

    Example:
        >>> with computing_in("bf16", torch.device("cpu")):
        ...     (torch.ones(2, 2) @ torch.ones(2, 2)).dtype
        torch.bfloat16
    """
    if precision == "fp32":
        yield
        return
    with torch.autocast(device.type, dtype=torch.bfloat16):
        yield
