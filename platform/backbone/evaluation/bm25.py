"""BM25 over a corpus with bm25s: the lexical baseline, and a source of hard negatives."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import bm25s
import numpy as np

from backbone.errors import BackboneError
from backbone.evaluation.corpus_ids import check_doc_ids
from backbone.evaluation.ranking import Run
from backbone.evaluation.tokenize import Language, detect_language, tokenize


class BM25:
    """A BM25 index (bm25s, Lucene's variant) over documents with string ids.

    Build one with :meth:`build`. Scores and the index are bm25s's; :meth:`search` only picks the top
    documents, breaking ties by document id so that equal inputs always give equal runs.

    Args:
        retriever: an indexed ``bm25s.BM25``.
        doc_ids: the id of each indexed document, in index order.
        language: the tokenization of the index, which queries get too.

    Example:
        >>> bm25 = BM25.build(["d1", "d2"], ["合同的订立", "婚姻家庭"], language="zh")
        >>> bm25.search({"q1": "合同订立"}, k=5)
        {'q1': {'d1': 0.71...}}
    """

    def __init__(self, retriever: bm25s.BM25, doc_ids: list[str], language: Language) -> None:
        self._retriever = retriever
        self.doc_ids = doc_ids
        self.language = language
        # Each document's position in id order: the tie-breaker of search.
        self._id_rank = np.empty(len(doc_ids), dtype=np.int64)
        self._id_rank[sorted(range(len(doc_ids)), key=doc_ids.__getitem__)] = np.arange(len(doc_ids))

    @classmethod
    def build(
        cls,
        doc_ids: Sequence[str],
        texts: Sequence[str],
        language: Language | Literal["auto"] = "auto",
        *,
        k1: float = 0.9,
        b: float = 0.4,
    ) -> BM25:
        """Tokenize and index a corpus.

        Args:
            doc_ids: unique document ids.
            texts: each document's text, e.g. ``title + "\\n" + text``.
            language: ``"zh"``, ``"en"`` (see :func:`~backbone.evaluation.tokenize.tokenize`) or ``"auto"``:
                ``"zh"`` when most letters of the first 100,000 characters are CJK.
            k1: term-frequency saturation; 0.9 and ``b`` 0.4 are Anserini's defaults (and STARD's figures').
            b: document-length normalisation, from 0 (none) to 1 (full).

        Raises:
            BackboneError: no documents, ids and texts of different lengths, or a duplicate id.

        Example:
            >>> BM25.build(["d1"], ["The statute of limitations"]).language
            'en'
        """
        ids = check_doc_ids(doc_ids, len(texts), "texts")
        chosen: Language = detect_language(texts) if language == "auto" else language
        retriever = bm25s.BM25(k1=k1, b=b, method="lucene")
        retriever.index([tokenize(text, chosen) for text in texts], show_progress=False)
        return cls(retriever, ids, chosen)

    def search(self, query_texts: dict[str, str], k: int) -> Run:
        """The top ``k`` documents of each query, by BM25 score, then by document id on ties.

        Documents sharing no token with a query are not retrieved, so a query may get fewer than ``k``
        (none at all when no token of it is in the corpus).

        Args:
            query_texts: query id -> text.
            k: documents per query (at least 1); more than the corpus holds means all of it.

        Example:
            >>> bm25.search({"q1": "contract law"}, k=100)  # doctest: +SKIP
            {'q1': {'d7': 7.1, 'd2': 3.4}}
        """
        if k < 1:
            raise BackboneError(f"k must be at least 1, got {k}")
        run: Run = {}
        for query_id, text in query_texts.items():
            token_ids = self._retriever.get_tokens_ids(tokenize(text, self.language))
            scores = self._retriever.get_scores_from_ids(token_ids)
            top = self._top(scores, k)
            run[query_id] = {self.doc_ids[index]: float(scores[index]) for index in top}
        return run

    def _top(self, scores: np.ndarray, k: int) -> np.ndarray:
        """Indices of the ``k`` best positive scores, ties by document id, in rank order."""
        k = min(k, int(np.count_nonzero(scores > 0)))
        if k == 0:
            return np.empty(0, dtype=np.int64)
        # Every document tying with the k-th score is a candidate, so the cut itself respects the tie order.
        threshold = np.partition(scores, -k)[-k]
        candidates = np.flatnonzero(scores >= threshold)
        return candidates[np.lexsort((self._id_rank[candidates], -scores[candidates]))][:k]
