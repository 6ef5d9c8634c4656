"""Evaluation: retrieve (BM25, dense FAISS search), rerank, score runs with ranx, and store runs.

A run is ``{query_id: {doc_id: score}}`` (higher is better) and qrels are ``{query_id: {doc_id: grade}}``;
every part ranks a run's documents the same way: score descending, then document id
(:func:`ranking`). :func:`evaluate` averages a metric over every query of the qrels, counting a query
without results as 0.

Example:
    >>> from backbone.evaluation import BM25, evaluate
    >>> bm25 = BM25.build(doc_ids, texts, language="zh")  # doctest: +SKIP
    >>> evaluate(dataset.relevant("dev"), bm25.search(queries, k=100), ["recall@100", "mrr@10"])  # doctest: +SKIP
    {'recall@100': 0.68, 'mrr@10': 0.36}
"""

from backbone.evaluation.bm25 import BM25
from backbone.evaluation.dense import DenseIndex
from backbone.evaluation.interpolation import interpolate
from backbone.evaluation.metrics import deepest_cutoff, evaluate, evaluate_per_query
from backbone.evaluation.ranking import Qrels, Run, ranking, top_k
from backbone.evaluation.rerank import ScoreFn, rerank
from backbone.evaluation.runs import read_parquet_run, read_trec_run, write_parquet_run, write_trec_run
from backbone.evaluation.tokenize import Language, detect_language, tokenize

__all__ = [
    "BM25",
    "DenseIndex",
    "Language",
    "Qrels",
    "Run",
    "ScoreFn",
    "deepest_cutoff",
    "detect_language",
    "evaluate",
    "evaluate_per_query",
    "interpolate",
    "ranking",
    "read_parquet_run",
    "read_trec_run",
    "rerank",
    "tokenize",
    "top_k",
    "write_parquet_run",
    "write_trec_run",
]
