"""The retriever (bi-encoder) as a sentence-transformers ``SentenceTransformer``: build, load, encode, featurise.

Layout: ``Transformer -> Pooling -> Normalize``; with ``document_encoder: frozen`` the transformer is two towers,
``Router(query: Transformer, document: Transformer) -> Pooling -> Normalize`` (sentence-transformers' asymmetric
layout, so ``SentenceTransformer(path).encode_query`` / ``encode_document`` pick the tower): the query tower trains,
the document tower stays the base model's, frozen, so the corpus index of the base checkpoint serves every stage.
Embeddings are always unit vectors, so inner product is cosine
similarity: the index and the evaluation use inner product, and the contrastive loss (cosine) is unchanged by
the normalisation. Queries and passages are read through the model's prompts (:func:`retriever_prompts`) and cut
to their own lengths (``max_query_length``, ``max_passage_length``); every token the model sees counts towards
them: special tokens, the prompt and the text.
"""

from __future__ import annotations

import copy
from typing import Any, Literal, cast

import numpy as np
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Router, Transformer
from torch import Tensor
from transformers import PreTrainedTokenizerBase

from backbone.errors import BackboneError
from backbone.model_paths import resolve_model
from backbone.models.activations import checkpoint_activations
from backbone.models.freezing import prepare_for_training
from backbone.models.modes import evaluating
from backbone.models.passes import batched_pass
from backbone.models.precision import computing_in, resolve_precision
from backbone.models.texts import retriever_prompts
from backbone.recipes import Retriever

Role = Literal["query", "passage"]

_POOLING_MODES = {"mean": "mean", "cls": "cls", "last_token": "lasttoken"}
# Plain text only: a decoder's tokenizer may carry a chat template, which would otherwise make sentence-transformers
# render every text as a chat conversation.
_TEXT_ONLY = {"text": {"method": "forward", "method_output_name": "last_hidden_state"}}
_LENGTH_SLICE = 4096  # texts tokenized at once to count their tokens
# The Router task each role reads (sentence-transformers' encode_query / encode_document names).
_TASKS: dict[Role, str] = {"query": "query", "passage": "document"}


def build_retriever(spec: Retriever, model_path: str | None = None) -> SentenceTransformer:
    """A retriever from its base model, ready for its first stage.

    Encoders (BERT, XLM-R) pool with the recipe's ``pooling`` (mean or CLS). Decoders (Qwen3-style) pool the
    last token, Qwen3-Embedding style: the tokenizer appends its EOS token to every text unless it already does,
    so the last token has read the whole text; last-token pooling finds it with left or right padding alike.

    Args:
        spec: the retriever recipe.
        model_path: the base model folder; ``None`` resolves ``spec.model`` (the local model directory first).

    Example:
        >>> model = build_retriever(Retriever(model="intfloat/multilingual-e5-small", query_prefix="query: "))
        >>> model.prompts["query"]
        'query: '
    """
    transformer = Transformer(
        model_path or resolve_model(spec.model),
        modality_config=_TEXT_ONLY,
        module_output_name="token_embeddings",
        processor_kwargs={"model_max_length": spec.max_passage_length},
    )
    if spec.family == "decoder":
        _end_with_eos(transformer.tokenizer)
    pooling = Pooling(transformer.get_embedding_dimension(), _POOLING_MODES[spec.pooling])
    model = SentenceTransformer(modules=[transformer, pooling, Normalize()], prompts=retriever_prompts(spec))
    return _ready(model, spec)


def load_retriever(path: str, spec: Retriever) -> SentenceTransformer:
    """A retriever checkpoint saved by a stage, ready to train on or to encode with.

    The checkpoint holds the whole pipeline (pooling, normalisation, prompts, both towers if it has two); the
    recipe's freezing options are applied again, since trainability is not saved with weights. A one-tower
    checkpoint loaded for a ``document_encoder: frozen`` recipe is split into two towers that start equal.

    Args:
        path: the folder ``model.save`` wrote.
        spec: the retriever recipe.

    Example:
        >>> model = load_retriever("registry/.../retriever-alignment", spec)  # doctest: +SKIP
    """
    return _ready(SentenceTransformer(path), spec)


def has_document_tower(model: SentenceTransformer) -> bool:
    """Whether the retriever reads passages with a tower of their own (the ``document_encoder: frozen`` layout).

    Example:
        >>> has_document_tower(build_retriever(Retriever(model="m", document_encoder="frozen")))  # doctest: +SKIP
        True
    """
    return isinstance(model[0], Router)


def document_tower(model: SentenceTransformer) -> Transformer:
    """The transformer that reads passages: the document route of a two-tower retriever, else the only one.

    Example:
        >>> document_tower(model).auto_model.embeddings.word_embeddings.weight.shape  # doctest: +SKIP
        torch.Size([250037, 384])
    """
    first: Any = model[0]  # a Router of two towers, or the one Transformer
    return first.sub_modules["document"][0] if has_document_tower(model) else first


def _ready(model: SentenceTransformer, spec: Retriever) -> SentenceTransformer:
    """``model`` in the recipe's layout (split into two towers if ``document_encoder`` is frozen), frozen as due."""
    fixed = model.preprocess([""], prompt=retriever_prompts(spec)["query"], task="query")["input_ids"].shape[-1]
    if spec.max_query_length - fixed < 1:
        raise BackboneError(
            f"retriever.max_query_length {spec.max_query_length} leaves no room for a query after {fixed} tokens "
            "of prompt and special tokens"
        )
    if spec.document_encoder == "frozen" and not has_document_tower(model):
        document = cast(Transformer, model[0])
        query = copy.deepcopy(document)
        # Plain encode_query then cuts where encode_queries does (each route's transformer has its own length).
        query.max_seq_length = spec.max_query_length
        router = Router.for_query_document(query_modules=[query], document_modules=[document])
        model = SentenceTransformer(modules=[router, *list(model)[1:]], prompts=cast(dict[str, str], model.prompts))
    prepare_for_training(model, spec)
    checkpoint_activations(model, spec)
    return model


def encode_queries(
    model: SentenceTransformer, spec: Retriever, texts: list[str], batch_size: int = 32, progress: str | None = None
) -> np.ndarray:
    """Embed queries: float32, one L2-normalised row per text, each cut to ``spec.max_query_length`` tokens.

    Args:
        model: the retriever.
        spec: its recipe (prompt and lengths).
        texts: the queries, without prompt.
        batch_size: most texts in one forward pass; ``spec.inference`` sets the token budget and precision.
        progress: what progress lines call this pass (see :mod:`backbone.progress`); None shows none.

    Example:
        >>> encode_queries(model, spec, ["谁可以成为个体工商户？"]).shape  # doctest: +SKIP
        (1, 384)
    """
    return _encode(model, spec, texts, "query", batch_size, progress)


def encode_passages(
    model: SentenceTransformer, spec: Retriever, texts: list[str], batch_size: int = 32, progress: str | None = None
) -> np.ndarray:
    """Embed passages (see :func:`passage_text`) as :func:`encode_queries` embeds queries, cut to
    ``spec.max_passage_length`` tokens instead.

    Example:
        >>> encode_passages(model, spec, ["民法典第五十四条\\n自然人从事工商业经营……"]).dtype  # doctest: +SKIP
        dtype('float32')
    """
    return _encode(model, spec, texts, "passage", batch_size, progress)


def retriever_features(model: SentenceTransformer, spec: Retriever, texts: list[str], role: Role) -> dict[str, Tensor]:
    """Tokenized features of one side of a training batch, with the role's prompt and length applied.

    Tokenize with the unwrapped model, then feed the features to the (DDP-wrapped) model or to a
    sentence-transformers loss such as ``MultipleNegativesRankingLoss``: the same path :func:`encode_queries`
    and :func:`encode_passages` take.

    Args:
        model: the retriever (unwrapped: DDP hides ``preprocess``).
        spec: its recipe.
        texts: queries or passages, without prompt.
        role: ``"query"`` or ``"passage"``.

    Example:
        >>> loss = MultipleNegativesRankingLoss(model)  # doctest: +SKIP
        >>> loss([retriever_features(model, spec, queries, "query"),
        ...       retriever_features(model, spec, passages, "passage")], None)  # doctest: +SKIP
    """
    return model.preprocess(
        texts, prompt=retriever_prompts(spec)[role], task=_TASKS[role], processing_kwargs=_cut(spec, role)
    )


def _encode(
    model: SentenceTransformer, spec: Retriever, texts: list[str], role: Role, batch_size: int, label: str | None
) -> np.ndarray:
    precision = resolve_precision(spec.inference.precision, model.device)

    def run(batch: list[str]) -> np.ndarray:
        if not batch:
            return np.zeros((0, model.get_embedding_dimension() or 0), dtype=np.float32)
        with computing_in(precision, model.device, model):
            embeddings = model.encode(
                batch,
                prompt=retriever_prompts(spec)[role],
                batch_size=len(batch),  # one forward pass: batched_pass cut the batch by tokens
                normalize_embeddings=True,
                convert_to_tensor=True,
                show_progress_bar=False,  # batched_pass shows one bar for the whole pass
                task=_TASKS[role],
                processing_kwargs=_cut(spec, role),
            )
        return embeddings.float().cpu().numpy()  # float32 whatever the precision or device

    lengths = [  # tokens as the forward pass reads them; in slices, so a large corpus is never padded at once
        length
        for start in range(0, len(texts), _LENGTH_SLICE)
        for length in retriever_features(model, spec, texts[start : start + _LENGTH_SLICE], role)["attention_mask"]
        .sum(-1)
        .tolist()
    ]
    unit = "queries" if role == "query" else "passages"
    with evaluating(model):
        return batched_pass(
            texts,
            lengths,
            run,
            max_batch_tokens=spec.inference.max_batch_tokens,
            max_batch_size=batch_size,
            label=label,
            unit=unit,
        )


def _cut(spec: Retriever, role: Role) -> dict[str, dict[str, int]]:
    """Per-call tokenizer arguments: the model itself is left as it is (safe to share between callers)."""
    return {"text": {"max_length": spec.max_query_length if role == "query" else spec.max_passage_length}}


def _end_with_eos(tokenizer: PreTrainedTokenizerBase) -> None:
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer("a")["input_ids"][-1] != tokenizer.eos_token_id:
        # Rewrites the tokenizer's post-processor, which is saved with it: a checkpoint keeps appending EOS.
        tokenizer.add_eos_token = True
