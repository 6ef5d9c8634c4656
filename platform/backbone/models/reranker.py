"""The reranker (cross-encoder) as a sentence-transformers ``CrossEncoder``: build, load, score, featurise.

Three scorings, one interface. ``head`` (encoders): a one-logit classification head over the [CLS] pooler of the
pair ``[CLS] query [SEP] passage [SEP]``. ``mean`` (encoders): a one-logit linear head over the mean of the pair's
token states (``Transformer -> Pooling(mean) -> Dense``), the pooling an e5-style encoder was trained for.
``yes_no`` (decoders): the pair rendered Qwen3-Reranker style by the model's chat template
(:data:`YES_NO_CHAT_TEMPLATE`), scored ``logit("yes") - logit("no")`` at the last position.
Scores are raw logits: the model's activation is the identity, so ``CrossEncoder(path).predict`` returns them too.

Truncation: a query (with its prefix) keeps its first ``max_query_length`` tokens; the passage (with its prefix)
then keeps what is left of ``max_length`` after the query and the fixed tokens (special tokens, or the template),
so the passage is always cut first and always from its end.
"""

from __future__ import annotations

import numpy as np
import torch
from sentence_transformers import CrossEncoder
from sentence_transformers.base.modules import Dense, Transformer
from sentence_transformers.cross_encoder.modules import LogitScore
from sentence_transformers.sentence_transformer.modules import Pooling
from torch import Tensor, nn
from transformers import AutoConfig, PreTrainedModel

from backbone.errors import BackboneError
from backbone.model_paths import resolve_model
from backbone.models.activations import checkpoint_activations
from backbone.models.freezing import prepare_for_training
from backbone.models.modes import evaluating
from backbone.models.passes import batched_pass
from backbone.models.precision import computing_in, resolve_precision
from backbone.models.quiet import expecting_new_head
from backbone.models.texts import YES_NO_CHAT_TEMPLATE, cut_to_tokens
from backbone.recipes import Reranker


def build_reranker(spec: Reranker, model_path: str | None = None, *, seed: int = 0) -> CrossEncoder:
    """A reranker from its base model, ready for its first stage.

    New weights (an encoder's classification head) are drawn from ``seed`` without touching the global random
    state, so the untrained ``base`` reranker is the same in every process. A pooler whose weights are all zero
    (multilingual-e5-small's) is re-initialised: a head over ``tanh(pooler)`` would output 0 and pass no gradient
    to the body. With ``spec.layers`` = N the model keeps the base model's embeddings and its first N transformer
    layers (the rest are not loaded); its config says N layers, so a checkpoint loads with ``CrossEncoder(path)``.

    Args:
        spec: the reranker recipe.
        model_path: the base model folder; ``None`` resolves ``spec.model`` (the local model directory first).
        seed: seed of the new weights.

    Example:
        >>> model = build_reranker(Reranker(model="intfloat/multilingual-e5-small"))
        >>> model.num_labels
        1
    """
    path = model_path or resolve_model(spec.model)
    config = _first_layers(path, spec.layers)
    with torch.random.fork_rng(devices=[]), expecting_new_head():
        torch.manual_seed(seed)
        if spec.scoring == "yes_no":
            model = _yes_no_reranker(path, spec.max_length, config)
        elif spec.scoring == "mean":
            model = _mean_reranker(path, spec.max_length, config)
        else:
            model = CrossEncoder(
                path, num_labels=1, max_length=spec.max_length, activation_fn=nn.Identity(), config_kwargs=config
            )
            _revive_dead_pooler(model.model)
    return _ready(model, spec)


def load_reranker(path: str, spec: Reranker) -> CrossEncoder:
    """A reranker checkpoint saved by a stage, ready to train on or to score with.

    ``CrossEncoder(path)`` restores the scoring the reranker was built with: a head, the mean-pooled head, or the
    yes/no template
    (saved with the tokenizer) and ``LogitScore``. Freezing options come from the recipe again.

    Args:
        path: the folder ``model.save`` wrote.
        spec: the reranker recipe.

    Example:
        >>> model = load_reranker("registry/.../reranker-alignment", spec)  # doctest: +SKIP
    """
    return _ready(CrossEncoder(path), spec)


def score_pairs(
    model: CrossEncoder,
    spec: Reranker,
    queries: list[str],
    passages: list[str],
    batch_size: int = 32,
    progress: str | None = None,
) -> np.ndarray:
    """Score (query, passage) pairs: float32 raw logits, higher is more relevant.

    Args:
        model: the reranker.
        spec: its recipe (prefixes and lengths).
        queries: one query per pair, without prefix.
        passages: one passage per pair (see :func:`passage_text`), without prefix.
        batch_size: most pairs in one forward pass; ``spec.inference`` sets the token budget and precision.
        progress: what progress lines call this pass (see :mod:`backbone.progress`); None shows none.

    Example:
        >>> score_pairs(model, spec, ["谁可以成为个体工商户？"] * 2, [relevant, irrelevant])  # doctest: +SKIP
        array([ 2.7, -1.3], dtype=float32)
    """

    precision = resolve_precision(spec.inference.precision, model.device)

    def run(batch: list[tuple[str, str]]) -> np.ndarray:
        if not batch:
            return np.zeros(0, dtype=np.float32)
        with computing_in(precision, model.device, model):
            scores = model.predict(
                batch,
                batch_size=len(batch),  # one forward pass: batched_pass cut the batch by tokens
                activation_fn=nn.Identity(),
                convert_to_tensor=True,
                show_progress_bar=False,  # batched_pass shows one bar for the whole pass
                processing_kwargs=_cut(spec),
            )
        return scores.float().cpu().numpy().reshape(len(batch))  # float32 whatever the precision or device

    pairs, lengths = _pairs(model, spec, queries, passages)
    with evaluating(model):
        return batched_pass(
            pairs,
            lengths,
            run,
            max_batch_tokens=spec.inference.max_batch_tokens,
            max_batch_size=batch_size,
            label=progress,
            unit="pairs",
        )


def reranker_features(
    model: CrossEncoder, spec: Reranker, queries: list[str], passages: list[str]
) -> dict[str, Tensor]:
    """Tokenized (query, passage) pairs for a training step, with prefixes, template and truncation applied.

    ``model(features)["scores"]`` (shape ``[pairs, 1]``) are the logits :func:`score_pairs` returns.

    Args:
        model: the reranker (unwrapped: DDP hides ``preprocess``).
        spec: its recipe.
        queries: one query per pair, without prefix.
        passages: one passage per pair, without prefix.

    Example:
        >>> features = reranker_features(model, spec, queries, passages)  # doctest: +SKIP
        >>> logits = ddp_model(features)["scores"].squeeze(-1)  # doctest: +SKIP
    """
    return model.preprocess(_pairs(model, spec, queries, passages)[0], processing_kwargs=_cut(spec))


def _ready(model: CrossEncoder, spec: Reranker) -> CrossEncoder:
    fixed = _fixed_tokens(model)
    if spec.max_length - fixed - spec.max_query_length < 1:
        kind = "template" if spec.scoring == "yes_no" else "special tokens"
        raise BackboneError(
            f"reranker.max_length {spec.max_length} leaves no room for a passage after {fixed} tokens of {kind} "
            f"and a query of up to max_query_length {spec.max_query_length}"
        )
    prepare_for_training(model, spec)
    checkpoint_activations(model, spec)
    return model


def _first_layers(path: str, layers: int | None) -> dict[str, object]:
    """Config overrides that keep the first ``layers`` transformer layers of the model at ``path`` (none: all)."""
    if layers is None:
        return {}
    config = AutoConfig.from_pretrained(path)
    available = getattr(config, "num_hidden_layers", None)
    if available is None:
        raise BackboneError(f"reranker.layers: {path} has no num_hidden_layers in its config to cut")
    if layers > available:
        raise BackboneError(f"reranker.layers: {layers} is more than the {available} layers of {path}")
    overrides: dict[str, object] = {"num_hidden_layers": layers}
    if getattr(config, "layer_types", None) is not None:  # decoders list each layer's attention kind
        overrides["layer_types"] = list(config.layer_types[:layers])
    return overrides


def _yes_no_reranker(path: str, max_length: int, config: dict[str, object]) -> CrossEncoder:
    # Built module by module rather than by CrossEncoder(path), which picks yes/no scoring only for checkpoints
    # whose config names a *ForCausalLM architecture.
    transformer = Transformer(
        path,
        transformer_task="text-generation",
        processor_kwargs={"chat_template": YES_NO_CHAT_TEMPLATE, "model_max_length": max_length},
        config_kwargs=config,
    )
    tokenizer = transformer.tokenizer
    yes, no = (tokenizer.convert_tokens_to_ids(token) for token in ("yes", "no"))
    if tokenizer.unk_token_id in (yes, no) or None in (yes, no):
        raise BackboneError(f"{path}: a yes_no reranker needs 'yes' and 'no' as tokens of its vocabulary")
    return CrossEncoder(
        modules=[transformer, LogitScore(true_token_id=yes, false_token_id=no)], activation_fn=nn.Identity()
    )


def _mean_reranker(path: str, max_length: int, config: dict[str, object]) -> CrossEncoder:
    transformer = Transformer(path, processor_kwargs={"model_max_length": max_length}, config_kwargs=config)
    width = transformer.get_embedding_dimension()
    head = Dense(
        width, 1, activation_function=nn.Identity(), module_input_name="sentence_embedding", module_output_name="scores"
    )
    return CrossEncoder(modules=[transformer, Pooling(width, "mean"), head], activation_fn=nn.Identity())


def _revive_dead_pooler(model: PreTrainedModel) -> None:
    # A zero weight matrix is what kills the gradient, whatever the bias: tanh(0 @ states + bias) is a constant.
    pooler = getattr(model.base_model, "pooler", None)
    linears = [module for module in pooler.modules() if isinstance(module, nn.Linear)] if pooler is not None else []
    if not linears or any(linear.weight.count_nonzero() for linear in linears):
        return
    for linear in linears:
        nn.init.normal_(linear.weight, std=model.config.initializer_range)
        nn.init.zeros_(linear.bias)


def _pairs(
    model: CrossEncoder, spec: Reranker, queries: list[str], passages: list[str]
) -> tuple[list[tuple[str, str]], list[int]]:
    """Prefixed pairs cut so that query, passage and the fixed tokens fit ``max_length`` (see the module doc), and
    the tokens each pair reads."""
    tokenizer = model.tokenizer
    fixed = _fixed_tokens(model)
    cut_queries = cut_to_tokens(
        tokenizer, [spec.query_prefix + query for query in queries], [spec.max_query_length] * len(queries)
    )
    room = [spec.max_length - fixed - length for _, length in cut_queries]
    cut_passages = cut_to_tokens(tokenizer, [spec.passage_prefix + passage for passage in passages], room)
    cut = list(zip(cut_queries, cut_passages, strict=True))
    pairs = [(query, passage) for (query, _), (passage, _) in cut]
    return pairs, [fixed + kept_query + kept_passage for (_, kept_query), (_, kept_passage) in cut]


def _fixed_tokens(model: CrossEncoder) -> int:
    """Tokens of a pair that are neither query nor passage: special tokens, or the yes/no template."""
    return model.preprocess([("", "")])["input_ids"].shape[-1]


def _cut(spec: Reranker) -> dict[str, dict[str, int]]:
    """The tokenizer's own limit, a safety net for a byte-level re-tokenization that comes out a token longer."""
    return {"text": {"max_length": spec.max_length}}
