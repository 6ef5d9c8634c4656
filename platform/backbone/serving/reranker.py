"""The reranker as a service: a cross-encoder scoring (query, passage) pairs.

:class:`LoadedReranker` is one loaded checkpoint, usable in-process; :class:`RerankerDeployment` serves it on Ray
Serve with dynamic batching and swaps in a new checkpoint on ``reconfigure()`` once it has loaded beside the old one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np
import torch
from ray import serve
from sentence_transformers import CrossEncoder

from backbone.errors import BackboneError
from backbone.models import load_reranker, passage_text, reranker_spec, score_pairs
from backbone.models.precision import resolve_precision
from backbone.recipes import Inference, Reranker
from backbone.registry import Registry
from backbone.serving.batching import batched, configure_batching
from backbone.serving.config import RerankerConfig


@dataclass(frozen=True)
class LoadedReranker:
    """One version of the reranker, fully loaded."""

    checkpoint: str
    base_model: str
    spec: Reranker
    model: CrossEncoder
    inference: Inference | None  # the deployment's override of the checkpoint's own, if any

    @classmethod
    def load(cls, config: RerankerConfig) -> LoadedReranker:
        """Load the reranker checkpoint ``config`` names.

        Raises:
            BackboneError: the checkpoint is no reranker checkpoint published by a stage run.

        Example:
            >>> reranker = LoadedReranker.load(RerankerConfig(registry="/reg", checkpoint=...))  # doctest: +SKIP
        """
        registry = Registry(config.registry)
        checkpoint = registry.get(config.checkpoint)
        spec = reranker_spec(checkpoint)
        if config.inference is not None:
            spec = spec.model_copy(update={"inference": config.inference})
        model = load_reranker(str(registry.materialize(checkpoint.id)), spec)
        score_pairs(model, spec, ["warm-up"], ["warm-up"])  # the first pass (at int8, its export) before any request
        return cls(checkpoint.id, spec.model, spec, model, config.inference)

    def score(self, queries: list[str], passages: list[str]) -> np.ndarray:
        """Raw logits of (query, passage) pairs, cut by the checkpoint's ``max_query_length`` / ``max_length``.

        Example:
            >>> reranker.score(["谁可以成为个体工商户？"], ["自然人从事工商业经营……"])  # doctest: +SKIP
            array([2.7], dtype=float32)
        """
        return score_pairs(self.model, self.spec, queries, passages)

    def passage(self, title: str, text: str) -> str:
        """A corpus document as this reranker reads it (its ``passage_template``)."""
        return passage_text(self.spec, title, text)

    def info(self) -> dict[str, object]:
        """The version, base model, max lengths and the precision its passes run at, for ``/v1/info``."""
        return {
            "checkpoint": self.checkpoint,
            "base_model": self.base_model,
            "max_lengths": {"query": self.spec.max_query_length, "pair": self.spec.max_length},
            "precision": resolve_precision(self.spec.inference.precision, self.model.device),
        }


@serve.deployment(name="Reranker", ray_actor_options={"num_cpus": 0.5})
class RerankerDeployment:
    """Serves one :class:`LoadedReranker` at a time; its ``user_config`` is a :class:`RerankerConfig`."""

    def __init__(self) -> None:
        self._loaded: LoadedReranker | None = None

    async def reconfigure(self, user_config: dict) -> None:
        """Load the configured checkpoint beside the current one, then switch to it in one assignment."""
        config = RerankerConfig.model_validate(user_config)
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        if self._loaded is None or (self._loaded.checkpoint, self._loaded.inference) != (
            config.checkpoint,
            config.inference,
        ):
            self._loaded = await asyncio.to_thread(LoadedReranker.load, config)
        configure_batching(config.batching, self.score, self.score_documents)

    @batched
    async def score(
        self, queries: list[str], documents: list[list[str | tuple[str, str]]]
    ) -> list[tuple[np.ndarray, str]]:
        """Logits of each search's candidates against its query, and the checkpoint that scored.

        A candidate is a corpus ``(title, text)`` pair, read through the reranker's own passage template.
        """
        return await self._score(queries, documents)

    @batched
    async def score_documents(
        self, queries: list[str], documents: list[list[str | tuple[str, str]]]
    ) -> list[tuple[np.ndarray, str]]:
        """:meth:`score` for ``/v1/rerank`` (plain passages), in a batch queue of its own: a request of hundreds of
        documents is never batched with searches, which then wait only for each other."""
        return await self._score(queries, documents)

    async def _score(
        self, queries: list[str], documents: list[list[str | tuple[str, str]]]
    ) -> list[tuple[np.ndarray, str]]:
        if self._loaded is None:
            raise BackboneError("the reranker has no user_config yet: deploy it with a RerankerConfig")
        loaded = self._loaded
        passages = [[doc if isinstance(doc, str) else loaded.passage(*doc) for doc in docs] for docs in documents]
        pair_queries = [query for query, docs in zip(queries, passages, strict=True) for _ in docs]
        flat = await asyncio.to_thread(loaded.score, pair_queries, [doc for docs in passages for doc in docs])
        ends = np.cumsum([len(docs) for docs in passages])
        return [(scores, loaded.checkpoint) for scores in np.split(flat, ends[:-1])]

    def info(self) -> dict[str, object]:
        """What this replica serves now."""
        if self._loaded is None:
            raise BackboneError("the reranker has no user_config yet")
        return self._loaded.info()
