"""Deterministic subsets of a dataset, small enough to train and evaluate on a CPU in minutes."""

from __future__ import annotations

import random
from collections.abc import Mapping

import pyarrow as pa
import pyarrow.compute as pc

from backbone.data.dataset import RetrievalDataset
from backbone.errors import BackboneError


def build_subset(
    dataset: RetrievalDataset, *, seed: int, queries: Mapping[str, int], corpus_size: int
) -> RetrievalDataset:
    """Sample queries per split, keep every document they judge, then fill the corpus with seeded others.

    Every sample is drawn from sorted ids with a generator seeded by ``seed`` and the sample's purpose, so the
    result depends only on the dataset's contents and the arguments, never on row order, and the queries
    drawn for one split do not change when another split is added. The returned tables are sorted by id.

    Only the splits named in ``queries`` are kept. When the sampled queries judge more documents than
    ``corpus_size``, all of them are kept (relevant documents are never dropped) and
    ``source["subset"]["corpus_size_exceeded"]`` says so.

    Args:
        dataset: the full dataset.
        seed: seed of every sample.
        queries: queries to sample per split, e.g. ``{"train": 400, "dev": 100}``; a split with fewer
            queries is kept whole.
        corpus_size: documents in the subset's corpus.

    Example:
        >>> sizes = {"train": 400, "dev": 100}
        >>> small = build_subset(dataset, seed=13, queries=sizes, corpus_size=5000)  # doctest: +SKIP
        >>> small.corpus.num_rows, len(small.query_ids("dev"))  # doctest: +SKIP
        (5000, 100)
    """
    if not queries:
        raise BackboneError("a subset needs at least one split, e.g. queries={'train': 400, 'dev': 100}")
    if corpus_size < 1:
        raise BackboneError(f"corpus_size must be at least 1, got {corpus_size}")
    unknown = sorted(set(queries) - set(dataset.splits()))
    if unknown:
        raise BackboneError(f"no split {', '.join(map(repr, unknown))} to subset; have: {', '.join(dataset.splits())}")
    sampled: dict[str, list[str]] = {}
    for split, count in sorted(queries.items()):
        if count < 1:
            raise BackboneError(f"split {split!r}: need at least 1 query, got {count}")
        ids = dataset.query_ids(split)
        chosen = ids if count >= len(ids) else random.Random(f"{seed}:queries:{split}").sample(ids, count)
        sampled[split] = sorted(chosen)

    judged_mask = None
    for split, split_ids in sampled.items():
        mask = pc.and_(
            pc.equal(dataset.judgments["split"], split),
            pc.is_in(dataset.judgments["query_id"], value_set=pa.array(split_ids, pa.string())),
        )
        judged_mask = mask if judged_mask is None else pc.or_(judged_mask, mask)
    judgments = dataset.judgments.filter(judged_mask)

    judged_docs = set(judgments["doc_id"].to_pylist())
    others = sorted(set(dataset.corpus["doc_id"].to_pylist()) - judged_docs)
    fill = min(max(corpus_size - len(judged_docs), 0), len(others))
    doc_ids = judged_docs.union(random.Random(f"{seed}:corpus").sample(others, fill))
    query_ids = {query_id for ids in sampled.values() for query_id in ids}

    corpus = _keep(dataset.corpus, "doc_id", doc_ids)
    subset = {
        "parent": dataset.source.get("name"),
        "seed": seed,
        "queries": dict(sorted(queries.items())),
        "sampled_queries": {split: len(ids) for split, ids in sampled.items()},
        "corpus_size": corpus_size,
        "corpus_docs": corpus.num_rows,
        "judged_docs": len(judged_docs),
        "corpus_size_exceeded": len(judged_docs) > corpus_size,
    }
    return RetrievalDataset(
        corpus=corpus,
        queries=_keep(dataset.queries, "query_id", query_ids),
        judgments=judgments.sort_by([("split", "ascending"), ("query_id", "ascending"), ("doc_id", "ascending")]),
        source={"loader": "subset", "subset": subset, "parent": dataset.source},
    )


def _keep(table: pa.Table, id_column: str, ids: set[str]) -> pa.Table:
    kept = table.filter(pc.is_in(table[id_column], value_set=pa.array(sorted(ids), pa.string())))
    return kept.sort_by(id_column)
