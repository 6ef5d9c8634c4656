"""The Hugging Face transformers model inside a sentence-transformers model: what freezing, LoRA and checkpointing
act on."""

from __future__ import annotations

from sentence_transformers import CrossEncoder, SentenceTransformer
from transformers import PreTrainedModel

from backbone.errors import BackboneError


def transformer_of(model: SentenceTransformer | CrossEncoder, purpose: str) -> PreTrainedModel:
    """The model's first transformers model (a two-tower retriever's query tower, the one that trains).

    Args:
        model: the retriever or reranker.
        purpose: what needs it, named in the error if there is none.

    Raises:
        BackboneError: the model holds no transformers model.

    Example:
        >>> transformer_of(model, "LoRA").config.model_type  # doctest: +SKIP
        'bert'
    """
    transformer = model.transformers_model
    if transformer is None:
        raise BackboneError(f"{purpose}: the model has no transformers model")
    return transformer
