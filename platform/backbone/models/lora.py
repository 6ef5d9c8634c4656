"""LoRA stages: a fresh adapter on the model a stage starts from, merged into the weights when the stage ends.

Stacking across stages needs no adapter bookkeeping: each LoRA stage starts from the previous stage's merged
checkpoint (a plain model), adds a fresh adapter with :func:`add_lora`, trains it, and :func:`merge_lora` folds
it into the weights before the checkpoint is saved. Checkpoints therefore load with plain
``SentenceTransformer(path)`` / ``CrossEncoder(path)``, without peft and without adapter overhead.
"""

from __future__ import annotations

from typing import Literal

from peft import LoraConfig
from peft.functional import inject_adapter_in_model
from peft.tuners.tuners_utils import BaseTunerLayer
from sentence_transformers import CrossEncoder, SentenceTransformer
from torch import nn

from backbone.errors import BackboneError
from backbone.models.transformer import transformer_of
from backbone.recipes import LoraFinetune

# The attention projections, by the names each family's architectures give them (BERT/XLM-R; Qwen/Llama).
DEFAULT_TARGET_MODULES: dict[str, list[str]] = {
    "encoder": ["query", "key", "value"],
    "decoder": ["q_proj", "k_proj", "v_proj", "o_proj"],
}


def add_lora(
    model: SentenceTransformer | CrossEncoder, spec: LoraFinetune, family: Literal["encoder", "decoder"]
) -> None:
    """Attach a fresh LoRA adapter to the model's transformer, in place; only the adapter then trains.

    Everything else is frozen, except a classification head (a ``head`` reranker's classifier, and the pooler it
    reads), which is new or nearly so and must learn with the adapter. A ``yes_no`` reranker's language-model head
    stays frozen: it is the (often tied) vocabulary projection, and the adapter moves the states it reads.
    The adapter starts as a no-op (its B matrices are zero): the model's outputs are unchanged until it trains.

    Args:
        model: the retriever or reranker, without an unmerged adapter.
        spec: the stage's LoRA settings; ``target_modules`` ``None`` adapts the family's attention projections
            (:data:`DEFAULT_TARGET_MODULES`).
        family: the component's family, which names the default target modules.

    Example:
        >>> add_lora(model, LoraFinetune(method="lora", rank=8), "encoder")  # doctest: +SKIP
        >>> {name for name, p in model.named_parameters() if p.requires_grad} <= lora_and_head  # doctest: +SKIP
    """
    transformer = transformer_of(model, "LoRA")
    if _adapter_layers(transformer):
        raise BackboneError("the model already carries a LoRA adapter: merge it (merge_lora) before adding another")
    head = _head_parameters(model)
    transformer.requires_grad_(False)
    config = LoraConfig(
        r=spec.rank,
        lora_alpha=spec.alpha,  # type: ignore[arg-type]  # peft annotates int; it only divides by r
        lora_dropout=spec.dropout,
        target_modules=spec.target_modules or DEFAULT_TARGET_MODULES[family],
    )
    inject_adapter_in_model(config, transformer)
    for parameter in head:
        parameter.requires_grad_(True)


def merge_lora(model: SentenceTransformer | CrossEncoder) -> None:
    """Fold the adapter into the weights it adapts and remove it, in place.

    The model is then the plain architecture again (same parameter names, no peft modules), so ``model.save``
    writes an ordinary checkpoint. Its weights keep the trainability they had during the LoRA stage; the next
    stage starts from the saved checkpoint (``load_retriever`` / ``load_reranker``).

    Args:
        model: a model with an adapter from :func:`add_lora`.

    Example:
        >>> merge_lora(model)  # doctest: +SKIP
        >>> model.save(checkpoint_dir)  # doctest: +SKIP
    """
    transformer = transformer_of(model, "LoRA")
    layers = _adapter_layers(transformer)
    if not layers:
        raise BackboneError("the model carries no LoRA adapter to merge")
    for name, layer in layers:
        layer.merge()
        parent, _, child = name.rpartition(".")
        setattr(transformer.get_submodule(parent), child, layer.get_base_layer())
    # peft records its configuration on the model it injects into; a plain model has none.
    del transformer.peft_config


def _adapter_layers(transformer: nn.Module) -> list[tuple[str, BaseTunerLayer]]:
    return [(name, module) for name, module in transformer.named_modules() if isinstance(module, BaseTunerLayer)]


def _head_parameters(model: SentenceTransformer | CrossEncoder) -> list[nn.Parameter]:
    """A sequence classifier's head: its parameters outside the body, and the body's pooler."""
    if getattr(model[0], "transformer_task", None) != "sequence-classification":  # a Router has none
        return []
    transformer = transformer_of(model, "LoRA")
    pooler = getattr(transformer.base_model, "pooler", None)
    pooler_ids = {id(parameter) for parameter in pooler.parameters()} if pooler is not None else set()
    body_ids = {id(parameter) for parameter in transformer.base_model.parameters()} - pooler_ids
    return [parameter for parameter in transformer.parameters() if id(parameter) not in body_ids]
