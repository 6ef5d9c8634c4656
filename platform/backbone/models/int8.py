"""int8 model passes on CPU through ONNX Runtime: the fast path where the CPU has no native bf16.

For a pass at ``int8`` each transformers model inside the sentence-transformers model (one, or a query and a
document tower behind a ``Router``) is exported to ONNX, its linear layers' weights quantized to int8 per output
channel by ``onnxruntime.quantization.quantize_dynamic`` (activations are quantized on the fly, per batch), and
its ``forward`` routed to the ONNX Runtime session for the duration of the pass. Tokenization, prompts, pooling,
normalisation and the token budget stay sentence-transformers' and the project's own, so an int8 pass is the fp32
pass with only the transformer's arithmetic changed.

An export is made once per model object and weights version (``torch`` counts in-place changes of every parameter,
so a training step or a loaded state dict makes the next int8 pass export again) and kept while the model lives.
Passes hold one lock while routed: on a CPU two passes would only share its cores anyway. The sessions' idle threads
sleep rather than spin: spinning, one model's threads hold the cores the next pass needs (the reranker's after the
retriever's in one process, or another Serve replica's). On 2 cores a search in one process took 80 ms with spinning
threads and 49 ms with sleeping ones, and one model alone encodes no slower (docs/benchmarks.md).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import threading
import warnings
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from sentence_transformers import CrossEncoder, SentenceTransformer
from sentence_transformers.base.modules.transformer import Transformer
from torch import Tensor, nn
from transformers import PreTrainedModel

from backbone.errors import BackboneError

_LOCK = threading.RLock()


@dataclass(frozen=True)
class _Export:
    """One int8 session of one transformers model, and what it was built from."""

    weights_version: int
    inputs: tuple[str, ...]
    output: str
    session: Any  # onnxruntime.InferenceSession (the package is imported only where int8 runs)


_EXPORTS: weakref.WeakKeyDictionary[PreTrainedModel, _Export] = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def int8_passes(model: SentenceTransformer | CrossEncoder) -> Iterator[None]:
    """Run the block's forward passes of ``model`` in int8 through ONNX Runtime (CPU only).

    Args:
        model: the retriever or reranker, on CPU (``precision.resolve_precision`` checks), in eval mode.

    Raises:
        BackboneError: its transformer cannot be exported to ONNX.

    Example:
        >>> with int8_passes(model):  # doctest: +SKIP
        ...     model.encode(["谁可以成为个体工商户？"])
    """
    transformers = [module for module in model.modules() if isinstance(module, Transformer)]
    with _LOCK:
        for transformer in transformers:
            transformer.model.forward = _routed_forward(transformer)
        try:
            yield
        finally:
            for transformer in transformers:
                del transformer.model.forward  # the class's own forward again


def _routed_forward(transformer: Transformer) -> Any:
    hf_model = transformer.model
    output = transformer.modality_config["text"]["method_output_name"]
    if not isinstance(output, str) or transformer.modality_config["text"]["method"] != "forward":
        raise BackboneError(
            f"precision int8: {type(hf_model).__name__} has no single forward output to export "
            f"({transformer.modality_config['text']}); use fp32 or bf16 for this model"
        )

    def forward(**features: Any) -> dict[str, Tensor]:
        inputs = {name: value for name, value in features.items() if isinstance(value, Tensor)}
        export = _export_of(hf_model, output, inputs)
        result = export.session.run(None, {name: inputs[name].cpu().numpy() for name in export.inputs})[0]
        return {output: torch.from_numpy(result)}

    return forward


def _export_of(hf_model: PreTrainedModel, output: str, inputs: dict[str, Tensor]) -> _Export:
    version = sum(parameter._version for parameter in hf_model.parameters())
    names = tuple(sorted(inputs))
    known = _EXPORTS.get(hf_model)
    if known is None or (known.weights_version, known.inputs, known.output) != (version, names, output):
        known = _Export(version, names, output, _session(hf_model, output, {name: inputs[name] for name in names}))
        _EXPORTS[hf_model] = known
    return known


class _OneOutput(nn.Module):
    """The transformers model with keyword inputs in a fixed order and one tensor out: what ONNX export traces."""

    def __init__(self, hf_model: PreTrainedModel, inputs: tuple[str, ...], output: str) -> None:
        super().__init__()
        self.hf_model, self.inputs, self.output = hf_model, inputs, output

    def forward(self, *values: Tensor) -> Tensor:
        features = dict(zip(self.inputs, values, strict=True))
        # the class's forward: during a pass the instance's own is routed here
        return getattr(type(self.hf_model).forward(self.hf_model, **features, return_dict=True), self.output)


def _session(hf_model: PreTrainedModel, output: str, inputs: dict[str, Tensor]) -> Any:
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    names = tuple(inputs)
    dynamic = {name: {0: "batch", 1: "tokens"} for name in names}
    with tempfile.TemporaryDirectory(prefix="backbone-int8-") as folder:
        fp32, int8 = Path(folder) / "fp32.onnx", Path(folder) / "int8.onnx"
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the tracer's notes on Python control flow, fixed shapes per input
                torch.onnx.export(
                    _OneOutput(hf_model, names, output),
                    tuple(inputs[name][:1].cpu() for name in names),
                    str(fp32),
                    input_names=list(names),
                    output_names=[output],
                    dynamic_axes=dynamic,
                    opset_version=17,
                    dynamo=False,
                )
        except Exception as error:  # the exporter raises many types; the user needs the model and the cause
            raise BackboneError(
                f"precision int8: {type(hf_model).__name__} could not be exported to ONNX ({error}); "
                "use fp32 or bf16 for this model"
            ) from error
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # quantize_dynamic advises quant_pre_process, whose shape inference fails here
        try:
            quantize_dynamic(
                fp32,
                int8,
                weight_type=QuantType.QInt8,
                per_channel=True,
                extra_options={"DefaultTensorType": 1},  # onnx.TensorProto.FLOAT, where shape inference gives none
            )
        finally:
            root.setLevel(level)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle threads sleep (docstring)
        return onnxruntime.InferenceSession(str(int8), options, providers=["CPUExecutionProvider"])
