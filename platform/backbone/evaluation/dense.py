"""Exact inner-product search over document embeddings with FAISS, saved as a folder the registry stores."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import faiss
import numpy as np

from backbone.errors import BackboneError, DataError
from backbone.evaluation.corpus_ids import check_doc_ids
from backbone.evaluation.ranking import Run

INDEX_FILE = "index.faiss"
DOC_IDS_FILE = "doc_ids.json"


class DenseIndex:
    """Document embeddings in a FAISS ``IndexFlatIP``: exact maximum-inner-product search.

    Exact search is fast enough for the corpora here (up to ~56k documents) and leaves no recall to an
    approximate index. Embeddings are expected L2-normalised, so inner product is cosine similarity; the
    index does not normalise them itself. Build one with :meth:`build` or :meth:`load`.

    Args:
        index: a FAISS index holding one vector per document.
        doc_ids: the id of each vector, in index order.

    Example:
        >>> index = DenseIndex.build(["d1", "d2"], np.eye(2, dtype=np.float32))
        >>> index.search(["q1"], np.array([[0.6, 0.8]], dtype=np.float32), k=1)
        {'q1': {'d2': 0.8...}}
    """

    def __init__(self, index: faiss.Index, doc_ids: list[str]) -> None:
        self._index = index
        self.doc_ids = doc_ids

    @property
    def dim(self) -> int:
        """The embedding dimension."""
        return self._index.d

    def __len__(self) -> int:
        return self._index.ntotal

    @classmethod
    def build(cls, doc_ids: Sequence[str], embeddings: np.ndarray) -> DenseIndex:
        """Index ``embeddings``, one row per document of ``doc_ids``.

        Args:
            doc_ids: unique document ids.
            embeddings: ``(len(doc_ids), dim)`` array, L2-normalised rows; stored as float32.

        Raises:
            BackboneError: not a 2-D array, no documents, a count that differs from the ids, a duplicate id.

        Example:
            >>> len(DenseIndex.build(["d1", "d2"], np.eye(2)))
            2
        """
        vectors = _as_matrix(embeddings, "document embeddings")
        ids = check_doc_ids(doc_ids, vectors.shape[0], "embeddings")
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(vectors)
        return cls(index, ids)

    def search(self, query_ids: Sequence[str], query_embeddings: np.ndarray, k: int) -> Run:
        """The ``k`` documents of highest inner product with each query.

        Args:
            query_ids: one id per row of ``query_embeddings``.
            query_embeddings: ``(len(query_ids), dim)`` array, L2-normalised like the documents.
            k: documents per query (at least 1); more than the index holds is clipped to all of it.

        Raises:
            BackboneError: a dimension other than the index's, or a count that differs from the ids.

        Example:
            >>> index.search(["q1", "q2"], query_vectors, k=100)  # doctest: +SKIP
            {'q1': {'d7': 0.83, ...}, 'q2': {...}}
        """
        if k < 1:
            raise BackboneError(f"k must be at least 1, got {k}")
        queries = _as_matrix(query_embeddings, "query embeddings")
        if queries.shape[1] != self.dim:
            raise BackboneError(f"query embeddings have dimension {queries.shape[1]}, the index has {self.dim}")
        if queries.shape[0] != len(query_ids):
            raise BackboneError(f"got {len(query_ids)} query ids but {queries.shape[0]} query embeddings")
        scores, indices = self._index.search(queries, min(k, len(self)))
        return {
            query_id: {self.doc_ids[index]: score for index, score in zip(row, row_scores.tolist(), strict=True)}
            for query_id, row, row_scores in zip(query_ids, indices.tolist(), scores, strict=True)
        }

    def vectors(self) -> np.ndarray:
        """Every document's embedding, in ``doc_ids`` order (exact: the flat index stores them as given)."""
        return self._index.reconstruct_n(0, len(self))

    def save(self, directory: Path) -> None:
        """Write ``index.faiss`` (FAISS's own format) and ``doc_ids.json`` into ``directory``, creating it.

        Args:
            directory: the folder, e.g. the one the registry publishes as an ``index`` artifact.

        Example:
            >>> index.save(Path("out/index"))  # doctest: +SKIP
        """
        directory.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self._index, str(directory / INDEX_FILE))
        (directory / DOC_IDS_FILE).write_text(json.dumps(self.doc_ids, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> DenseIndex:
        """Read an index written by :meth:`save`.

        Args:
            directory: the folder holding ``index.faiss`` and ``doc_ids.json``.

        Raises:
            DataError: a missing or unreadable file, or ids that are not one string per vector.

        Example:
            >>> DenseIndex.load(Path("out/index")).dim  # doctest: +SKIP
            384
        """
        index_path, ids_path = directory / INDEX_FILE, directory / DOC_IDS_FILE
        for path in (index_path, ids_path):
            if not path.is_file():
                raise DataError(path, "file not found")
        try:
            index = faiss.read_index(str(index_path))
        except RuntimeError as err:
            raise DataError(index_path, f"not a FAISS index ({str(err).splitlines()[0]})") from None
        try:
            doc_ids = json.loads(ids_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DataError(ids_path, f"malformed JSON: {err}") from None
        if not isinstance(doc_ids, list) or not all(isinstance(doc_id, str) for doc_id in doc_ids):
            raise DataError(ids_path, "expected a JSON list of document id strings")
        if len(doc_ids) != index.ntotal:
            raise DataError(ids_path, f"has {len(doc_ids)} ids but {INDEX_FILE} holds {index.ntotal} vectors")
        return cls(index, doc_ids)


def _as_matrix(embeddings: np.ndarray, what: str) -> np.ndarray:
    """``embeddings`` as the C-contiguous float32 matrix FAISS needs."""
    matrix = np.asarray(embeddings)
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise BackboneError(f"{what} must be a 2-D array of shape (count, dim), got shape {matrix.shape}")
    return np.ascontiguousarray(matrix, dtype=np.float32)
