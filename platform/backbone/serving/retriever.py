"""The retriever as a service: a query encoder and the FAISS index built with the same document encoder.

An index serves a checkpoint when its lineage names the checkpoint's document encoder (``check_index_serves``):
the checkpoint itself, or, for a query-side stage (``document_encoder: frozen``), the checkpoint whose frozen
document tower it carries. Swapping between such checkpoints loads only the new query encoder: the index and
documents already loaded are kept.

:class:`LoadedRetriever` is one loaded version (checkpoint, index, documents), usable in-process;
:class:`RetrieverDeployment` serves it on Ray Serve, batching concurrent requests, and swaps in a new version on
``reconfigure()`` only once that version has loaded completely beside the old one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from ray import serve
from sentence_transformers import SentenceTransformer

from backbone.data import dataset_checksum, load_dataset
from backbone.errors import BackboneError
from backbone.evaluation import DenseIndex
from backbone.models import encode_passages, encode_queries, load_retriever, retriever_prompts, retriever_spec
from backbone.models.precision import resolve_precision
from backbone.recipes import Inference, Retriever
from backbone.registry import DOCUMENTS_FILE, ArtifactKind, Registry, check_index_serves
from backbone.serving.batching import batched, configure_batching
from backbone.serving.config import RetrieverConfig
from backbone.serving.search_steps import Candidate


@dataclass(frozen=True)
class LoadedRetriever:
    """One version of the retriever, fully loaded: answers carry exactly its ids."""

    checkpoint: str
    index_id: str
    base_model: str
    spec: Retriever
    model: SentenceTransformer
    index: DenseIndex
    documents: dict[str, tuple[str, str]]
    documents_dir: str | None  # None: the documents came with the index artifact
    inference: Inference | None  # the deployment's override of the checkpoint's own, if any

    @classmethod
    def load(cls, config: RetrieverConfig, current: LoadedRetriever | None = None) -> LoadedRetriever:
        """Load the checkpoint, its index and the documents named by ``config``, checking they belong together.

        Args:
            config: the retriever deployment's config.
            current: the version loaded now; its index and documents are reused when ``config`` names the same
                index and documents (a promotion or rollback between index-compatible checkpoints).

        Raises:
            BackboneError: the checkpoint is no retriever, the index was not built with its document encoder (its
                lineage names another checkpoint), the documents are not the dataset the index was built on, or
                lack an id.

        Example:
            >>> retriever = LoadedRetriever.load(RetrieverConfig(registry=..., checkpoint=..., index=...,
            ...     documents=...))  # doctest: +SKIP
            >>> retriever.search(["谁可以成为个体工商户？"], k=10)[0][0].doc_id  # doctest: +SKIP
        """
        registry = Registry(config.registry)
        checkpoint = registry.get(config.checkpoint)
        spec = retriever_spec(checkpoint)
        if config.inference is not None:
            spec = spec.model_copy(update={"inference": config.inference})
        index_manifest = registry.get(config.index)
        if index_manifest.kind != ArtifactKind.INDEX:
            raise BackboneError(f"retriever index {config.index} is of kind {index_manifest.kind}, not index")
        check_index_serves(index_manifest, checkpoint)
        if current is not None and (current.index_id, current.documents_dir) == (config.index, config.documents):
            index, documents = current.index, current.documents
        else:
            index_dir = registry.materialize(config.index)
            index = DenseIndex.load(index_dir)
            if config.documents is None:
                documents = _index_documents(index_dir, config.index, index.doc_ids)
            else:
                documents = _documents(Path(config.documents), index_manifest.lineage.dataset_checksum, index.doc_ids)
        model = load_retriever(str(registry.materialize(checkpoint.id)), spec)
        if model.get_embedding_dimension() != index.dim:
            raise BackboneError(
                f"checkpoint {checkpoint.id} embeds in {model.get_embedding_dimension()} dimensions, "
                f"index {config.index} holds {index.dim}"
            )
        for encode in (encode_queries, encode_passages):  # the first passes (at int8, the exports) before any request
            encode(model, spec, ["warm-up"])
        return cls(
            checkpoint.id, config.index, spec.model, spec, model, index, documents, config.documents, config.inference
        )

    def search(self, queries: list[str], k: int) -> list[list[Candidate]]:
        """The ``k`` nearest documents of each query, best first.

        Args:
            queries: query texts, without prompt (the checkpoint's prompt and ``max_query_length`` apply).
            k: documents per query.

        Example:
            >>> [hit.doc_id for hit in retriever.search(["谁可以成为个体工商户？"], k=3)[0]]  # doctest: +SKIP
            ['54', '55', '56']
        """
        embeddings = encode_queries(self.model, self.spec, queries)
        ids = [str(position) for position in range(len(queries))]
        run = self.index.search(ids, embeddings, k)
        return [
            [Candidate(doc, *self.documents[doc], score) for doc, score in run[query_id].items()] for query_id in ids
        ]

    def embed(self, texts: list[str], role: str) -> np.ndarray:
        """Unit-length embeddings of ``texts`` read as ``role`` (``query`` or ``passage``), one row per text.

        Example:
            >>> retriever.embed(["谁可以成为个体工商户？"], "query").shape  # doctest: +SKIP
            (1, 384)
        """
        encode = encode_queries if role == "query" else encode_passages
        return encode(self.model, self.spec, texts)

    def count_tokens(self, texts: list[str], role: str) -> int:
        """Tokens the model reads of ``texts`` as ``role``: prompt and special tokens included, after the cut.

        Example:
            >>> retriever.count_tokens(["谁可以成为个体工商户？"], "query")  # doctest: +SKIP
            14
        """
        max_length = self.spec.max_query_length if role == "query" else self.spec.max_passage_length
        prompt = retriever_prompts(self.spec)[role]
        tokens = self.model.tokenizer([prompt + text for text in texts], truncation=True, max_length=max_length)
        return sum(len(ids) for ids in tokens["input_ids"])

    def info(self) -> dict[str, object]:
        """The version, base model, max lengths, document count and the precision of its passes, for ``/v1/info``."""
        return {
            "checkpoint": self.checkpoint,
            "index": self.index_id,
            "base_model": self.base_model,
            "max_lengths": {"query": self.spec.max_query_length, "passage": self.spec.max_passage_length},
            "documents": len(self.index),
            "precision": resolve_precision(self.spec.inference.precision, self.model.device),
        }


def _index_documents(index_dir: Path, index_id: str, doc_ids: list[str]) -> dict[str, tuple[str, str]]:
    """``(title, text)`` of every indexed id, from the documents the index artifact carries."""
    path = index_dir / DOCUMENTS_FILE
    if not path.is_file():
        raise BackboneError(
            f"index {index_id} carries no {DOCUMENTS_FILE} (published before indexes held their documents): "
            "name the prepared dataset it was built on with --documents DIR"
        )
    return _by_id(pq.read_table(path).to_pydict(), f"index {index_id}", doc_ids)


def _documents(folder: Path, built_on: str | None, doc_ids: list[str]) -> dict[str, tuple[str, str]]:
    """``(title, text)`` of every indexed id, from the prepared dataset in ``folder``."""
    if built_on is not None and dataset_checksum(folder) != built_on:
        raise BackboneError(
            f"documents {folder} are not the dataset the index was built on (its lineage records dataset "
            f"{built_on}, this one is {dataset_checksum(folder)})"
        )
    return _by_id(load_dataset(folder).corpus.to_pydict(), f"documents {folder}", doc_ids)


def _by_id(corpus: dict[str, list], source: str, doc_ids: list[str]) -> dict[str, tuple[str, str]]:
    """The corpus columns as id -> ``(title, text)``, refusing one that lacks an indexed id."""
    documents = dict(zip(corpus["doc_id"], zip(corpus["title"], corpus["text"], strict=True), strict=True))
    missing = [doc for doc in doc_ids if doc not in documents]
    if missing:
        raise BackboneError(f"{source} lacks {len(missing)} indexed ids, e.g. {missing[0]!r}")
    return documents


@serve.deployment(name="Retriever", ray_actor_options={"num_cpus": 0.5})
class RetrieverDeployment:
    """Serves one :class:`LoadedRetriever` at a time; its ``user_config`` is a :class:`RetrieverConfig`."""

    def __init__(self) -> None:
        self._loaded: LoadedRetriever | None = None

    async def reconfigure(self, user_config: dict) -> None:
        """Load the configured version beside the current one, then switch to it in one assignment.

        Requests already running finish on the old version; a load that fails raises, and Serve reports it.
        """
        config = RetrieverConfig.model_validate(user_config)
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        if self._loaded is None or (self._loaded.checkpoint, self._loaded.index_id, self._loaded.inference) != (
            config.checkpoint,
            config.index,
            config.inference,
        ):
            self._loaded = await asyncio.to_thread(LoadedRetriever.load, config, self._loaded)
        configure_batching(config.batching, self.search, self.embed)

    def _current(self) -> LoadedRetriever:
        if self._loaded is None:
            raise BackboneError("the retriever has no user_config yet: deploy it with a RetrieverConfig")
        return self._loaded

    @batched
    async def search(self, queries: list[str], ks: list[int]) -> list[tuple[list[Candidate], str, str]]:
        """Candidates of each query with the checkpoint and index that found them (one version per batch)."""
        loaded = self._current()
        found = await asyncio.to_thread(loaded.search, queries, max(ks))
        return [(hits[:k], loaded.checkpoint, loaded.index_id) for hits, k in zip(found, ks, strict=True)]

    @batched
    async def embed(self, text_lists: list[list[str]], roles: list[str]) -> list[tuple[np.ndarray, int, str]]:
        """Embeddings of each request's texts, the tokens read and the checkpoint that embedded."""
        loaded = self._current()
        vectors: dict[int, np.ndarray] = {}
        # One forward pass per role: queries and passages have different prompts and lengths.
        for role in set(roles):
            mine = [position for position, each in enumerate(roles) if each == role]
            flat = await asyncio.to_thread(loaded.embed, [text for p in mine for text in text_lists[p]], role)
            ends = np.cumsum([len(text_lists[position]) for position in mine])
            vectors.update(zip(mine, np.split(flat, ends[:-1]), strict=True))
        return [
            (vectors[position], loaded.count_tokens(texts, role), loaded.checkpoint)
            for position, (texts, role) in enumerate(zip(text_lists, roles, strict=True))
        ]

    def info(self) -> dict[str, object]:
        """What this replica serves now."""
        return self._current().info()
