"""Which weights of a component train: the one place that freezes parameters for full fine-tuning."""

from __future__ import annotations

from sentence_transformers import CrossEncoder, SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Router

from backbone.models.transformer import transformer_of
from backbone.recipes import Component


def prepare_for_training(model: SentenceTransformer | CrossEncoder, spec: Component) -> None:
    """Freeze what a component must not or need not train, in place.

    - A BERT-family pooler is frozen unless something reads it: mean, CLS or last-token pooling and a ``mean``
      reranker never do, and an unused trainable parameter makes DDP fail at the first reduction. A ``head``
      reranker keeps its pooler trainable: its classification head reads ``tanh(pooler)``.
    - A two-tower retriever (``document_encoder: frozen``, a ``Router`` first) freezes its whole document
      tower: it must stay the model the shared corpus index was encoded with.
    - With ``spec.freeze_embeddings`` the word-embedding matrix (of the query tower, if two) is frozen: on CPU it
      dominates step time (a dense gradient, its all-reduce and AdamW over 96M of multilingual-e5-small's 118M
      weights). A decoder whose language-model head is tied to it freezes that head too.

    Args:
        model: the retriever (``SentenceTransformer``) or reranker (``CrossEncoder``).
        spec: its recipe.

    Example:
        >>> prepare_for_training(retriever, spec)  # doctest: +SKIP
        >>> retriever.transformers_model.pooler.dense.weight.requires_grad  # doctest: +SKIP
        False
    """
    if isinstance(model[0], Router):
        model[0].sub_modules["document"].requires_grad_(False)
    transformer = transformer_of(model, "training")  # the first transformer: a two-tower retriever's query tower
    pooler = getattr(transformer.base_model, "pooler", None)
    head_reads_pooler = isinstance(model, CrossEncoder) and getattr(spec, "scoring", None) == "head"
    if pooler is not None and not head_reads_pooler:
        pooler.requires_grad_(False)
    if spec.freeze_embeddings:
        transformer.get_input_embeddings().requires_grad_(False)
