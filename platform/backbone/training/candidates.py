"""Where a reranker's candidate lists come from: BM25 over the corpus, or the dense retriever it serves with.

A cross-encoder cannot score a whole corpus per query; it ranks a first stage's top documents, during training
(mining) and evaluation alike. :class:`Bm25Candidates` depends on no checkpoint. :class:`RetrieverCandidates` is a
published retriever checkpoint (the recipe's untrained ``base`` retriever) over the corpus index published with it:
only the queries are encoded, and the reranker learns and is scored on the lists it reranks when it serves
(Localized Contrastive Estimation, Gao et al. 2021). The dense source also gives the teacher scores of
distillation (:class:`RetrieverScores`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np
from sentence_transformers import SentenceTransformer

from backbone.errors import BackboneError
from backbone.evaluation import BM25, DenseIndex
from backbone.evaluation.ranking import Run
from backbone.models import encode_queries, load_retriever, retriever_spec
from backbone.recipes import Retriever
from backbone.registry import Registry


@dataclass(frozen=True)
class RetrieverScores:
    """The retriever's score of any (training query, document) pair: the inner product of their embeddings.

    Args:
        query_ids: the training queries, one per row of ``query_embeddings``.
        query_embeddings: ``(queries, dim)`` L2-normalised float32 rows.
        document_embeddings: ``(documents, dim)`` float32 rows, in the stage's ``corpus_ids`` order.

    Example:
        >>> scores = RetrieverScores(["q"], np.array([[1.0, 0.0]]), np.array([[0.6, 0.8], [1.0, 0.0]]))
        >>> scores.of("q", [1, 0]).tolist()
        [1.0, 0.6]
    """

    query_ids: list[str]
    query_embeddings: np.ndarray
    document_embeddings: np.ndarray
    _rows: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_rows", {query: row for row, query in enumerate(self.query_ids)})

    def of(self, query: str, positions: list[int]) -> np.ndarray:
        """The retriever's scores of ``query`` with the documents at ``positions`` of ``corpus_ids``."""
        return self.document_embeddings[positions] @ self.query_embeddings[self._rows[query]]


class DenseSearch:
    """A retriever's query encoder over a fixed corpus index: each query text is encoded once.

    Args:
        model: the retriever.
        spec: the spec it was trained with (prompts and lengths).
        index: its corpus index.
    """

    def __init__(self, model: SentenceTransformer, spec: Retriever, index: DenseIndex) -> None:
        self.model = model
        self.spec = spec
        self.index = index
        self._embedded: dict[str, np.ndarray] = {}

    def embed(self, texts: list[str]) -> np.ndarray:
        """The query embeddings of ``texts``, one row each, encoding only texts not seen before."""
        new = sorted(set(texts) - set(self._embedded))
        if new:
            self._embedded.update(zip(new, encode_queries(self.model, self.spec, new), strict=True))
        return np.stack([self._embedded[text] for text in texts]) if texts else np.zeros((0, self.index.dim))

    def search(self, queries: dict[str, str], k: int) -> Run:
        """The ``k`` best documents of each query (id -> text), by inner product."""
        if not queries:
            return {}
        return self.index.search(list(queries), self.embed(list(queries.values())), k)

    def scores(self, queries: dict[str, str], corpus_ids: list[str]) -> RetrieverScores:
        """The teacher scores of ``queries`` (id -> text) against every document of ``corpus_ids``."""
        position = {doc: row for row, doc in enumerate(self.index.doc_ids)}
        documents = self.index.vectors()[[position[doc] for doc in corpus_ids]]
        return RetrieverScores(list(queries), self.embed(list(queries.values())), documents)


@dataclass(frozen=True)
class Bm25Candidates:
    """BM25 over the stage's passages (the language detected from the texts): the same lists for every stage."""

    kind: ClassVar[Literal["bm25", "retriever"]] = "bm25"

    def open(self, corpus_ids: list[str], passages: list[str]) -> BM25:
        """A searcher over the corpus: ``search(queries, k)``."""
        return BM25.build(corpus_ids, passages, language="auto")


@dataclass(frozen=True)
class RetrieverCandidates:
    """A published retriever checkpoint over its published corpus index.

    Args:
        registry_uri: the registry holding both.
        checkpoint_id: the retriever checkpoint (its recorded spec gives prompts and lengths).
        index_id: the corpus index published with it.

    Example:
        >>> source = reranker_candidates(recipe, dataset_dir, registry)  # doctest: +SKIP
        >>> source.open(corpus_ids, passages).search({"q1": "谁可以成为个体工商户？"}, k=20)  # doctest: +SKIP
    """

    registry_uri: str
    checkpoint_id: str
    index_id: str
    kind: ClassVar[Literal["bm25", "retriever"]] = "retriever"

    def open(self, corpus_ids: list[str], passages: list[str]) -> DenseSearch:
        """A searcher over the corpus: ``search(queries, k)`` and ``scores(queries, corpus_ids)``.

        Raises:
            BackboneError: the index does not hold exactly the stage's corpus.
        """
        registry = Registry(self.registry_uri)
        spec = retriever_spec(registry.get(self.checkpoint_id))
        index = DenseIndex.load(registry.materialize(self.index_id))
        if sorted(index.doc_ids) != sorted(corpus_ids):
            raise BackboneError(
                f"retriever index {self.index_id} holds {len(index.doc_ids)} documents that are not the "
                f"{len(corpus_ids)} of this dataset's corpus"
            )
        model = load_retriever(str(registry.materialize(self.checkpoint_id)), spec)
        return DenseSearch(model, spec, index)


CandidateSource = Bm25Candidates | RetrieverCandidates
