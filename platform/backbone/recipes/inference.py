"""How a component runs its model passes (encoding, pair scoring): numeric precision and batch size in tokens."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from backbone.recipes.base import StrictModel

PrecisionSetting = Literal["fp32", "bf16", "auto"]
InferencePrecision = Literal["fp32", "bf16", "int8", "auto"]


class Inference(StrictModel):
    """The model passes of one component: the stages' evaluation and mining, the search's evidence and Serve.

    Example:
        >>> Inference(precision="auto").max_batch_tokens
        4096
    """

    precision: InferencePrecision = Field(
        "fp32",
        description="fp32: the reference. bf16: matrix products in bfloat16 (torch autocast), about 3x faster where "
        "the device computes bf16 natively (CPUs with AMX or AVX512-BF16, recent GPUs) and far slower where it does "
        "not. int8: CPU only, the transformer exported to ONNX Runtime with int8 linear weights (per channel) and "
        "activations quantized per batch, about 1.5x fp32 on an AVX2 CPU and 3x with AVX512-VNNI, at a cost in quality "
        "(-0.008 to -0.011 nDCG@10 on STARD); measure it on your data (docs/benchmarks.md). auto: bf16 where "
        "native, else fp32. Weights stay fp32 and training is unchanged.",
    )
    max_batch_tokens: int = Field(
        4096,
        ge=64,
        le=1_048_576,
        description="Most tokens one forward pass reads, padding included: texts are sorted by length and batches "
        "cut by this budget (TEI's --max-batch-tokens), so short queries go many to a pass.",
    )
