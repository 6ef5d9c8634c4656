"""The two components as sentence-transformers models: the retriever (bi-encoder) and the reranker (cross-encoder).

Each is built from its recipe (:func:`build_retriever`, :func:`build_reranker`), loaded from a stage checkpoint
(:func:`load_retriever`, :func:`load_reranker`, with :func:`checkpoint_spec` when the recipe is not at hand), used
for inference (:func:`encode_queries`, :func:`encode_passages`, :func:`score_pairs`) and fed to training
(:func:`retriever_features`, :func:`reranker_features`). :func:`add_lora` / :func:`merge_lora` run a LoRA
stage on either.
"""

from backbone.models.checkpoints import CheckpointParams, checkpoint_spec, reranker_spec, retriever_spec
from backbone.models.freezing import prepare_for_training
from backbone.models.lora import DEFAULT_TARGET_MODULES, add_lora, merge_lora
from backbone.models.modes import evaluating
from backbone.models.quiet import silence_model_io
from backbone.models.reranker import build_reranker, load_reranker, reranker_features, score_pairs
from backbone.models.retriever import (
    build_retriever,
    document_tower,
    encode_passages,
    encode_queries,
    has_document_tower,
    load_retriever,
    retriever_features,
)
from backbone.models.texts import (
    JUDGE_INSTRUCTION,
    YES_NO_CHAT_TEMPLATE,
    cut_to_tokens,
    passage_text,
    query_prompt,
    retriever_prompts,
)

silence_model_io()  # every process that loads or saves models: what each load or save prints says nothing

__all__ = [
    "DEFAULT_TARGET_MODULES",
    "JUDGE_INSTRUCTION",
    "YES_NO_CHAT_TEMPLATE",
    "CheckpointParams",
    "add_lora",
    "build_reranker",
    "build_retriever",
    "checkpoint_spec",
    "cut_to_tokens",
    "document_tower",
    "encode_passages",
    "encode_queries",
    "evaluating",
    "has_document_tower",
    "load_reranker",
    "load_retriever",
    "merge_lora",
    "passage_text",
    "prepare_for_training",
    "query_prompt",
    "reranker_features",
    "reranker_spec",
    "retriever_features",
    "retriever_prompts",
    "retriever_spec",
    "score_pairs",
]
