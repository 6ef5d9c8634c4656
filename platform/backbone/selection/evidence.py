"""All the model work a search needs, done once per checkpoint as Ray tasks, before any trial runs.

R retriever checkpoints cost at most R corpus encodings (none when their stages published indexes) and R runs
of the evaluation queries; S reranker checkpoints cost at most S scoring passes, each over the distinct
(query, document) pairs in the union of every retriever's top ``depth``, minus the pairs scored before. A trial
then only looks results up, so the number of trials and budgets K costs no model work.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import ray

from backbone.recipes import Reranker, Retriever
from backbone.registry import Registry
from backbone.selection.inputs import SearchInputs
from backbone.selection.pair_scores import Pair, PairScores, pair_scores
from backbone.selection.retrieval_runs import RetrievalRun, retrieval_run


@dataclass(frozen=True)
class Work:
    """The model work one gathering of evidence did (all zero when the registry had everything).

    Args:
        corpus_encodings: retriever checkpoints whose corpus was encoded into a new index.
        retrieval_runs: retriever checkpoints that embedded the evaluation queries.
        rerank_passes: reranker checkpoints that scored pairs.
        pairs_scored: pairs scored, over all reranker checkpoints.
    """

    corpus_encodings: int
    retrieval_runs: int
    rerank_passes: int
    pairs_scored: int

    def __add__(self, other: Work) -> Work:
        return Work(
            self.corpus_encodings + other.corpus_encodings,
            self.retrieval_runs + other.retrieval_runs,
            self.rerank_passes + other.rerank_passes,
            self.pairs_scored + other.pairs_scored,
        )

    def __str__(self) -> str:
        return (
            f"{self.corpus_encodings} corpus encodings, {self.retrieval_runs} query runs, "
            f"{self.rerank_passes} rerank passes ({self.pairs_scored} pairs)"
        )


@dataclass(frozen=True)
class Evidence:
    """Every retriever checkpoint's run and every reranker checkpoint's pair scores, by stage name.

    Args:
        retrieval: retriever stage -> its run of the evaluation queries.
        scores: reranker stage -> its scores of every pair in any retriever's top ``depth``.
        qrels: the evaluation split's judgments.
        work: the model work gathering it took.
    """

    retrieval: dict[str, RetrievalRun]
    scores: dict[str, PairScores]
    qrels: dict[str, dict[str, int]]
    work: Work


def gather_evidence(
    registry: Registry,
    inputs: SearchInputs,
    retrievers: dict[str, str],
    rerankers: dict[str, str],
    specs: tuple[Retriever, Reranker],
    depth: int,
    scored_retrievers: Collection[str] | None = None,
) -> Evidence:
    """Run (or find in the registry) each retriever checkpoint's top ``depth``, then score their pairs.

    Each checkpoint's work is one Ray task asking for one CPU, so checkpoints run side by side as far as the
    cluster allows.

    Args:
        registry: where checkpoints are, and where indexes, runs and scores go.
        inputs: the evaluation queries and the corpus.
        retrievers: retriever stage name -> checkpoint id.
        rerankers: reranker stage name -> checkpoint id.
        specs: the retriever's and the reranker's specs.
        depth: the largest retrieval budget K searched.
        scored_retrievers: the retriever stages whose top ``depth`` pairs the rerankers score; ``None``: all of
            them (the others' runs are still gathered, for their figures alone).

    Example:
        >>> evidence = gather_evidence(registry, inputs, {"base": "checkpoint-..."}, {"base": "checkpoint-..."},
        ...                            (recipe.retriever, recipe.reranker), depth=100)  # doctest: +SKIP
        >>> print(evidence.work)  # doctest: +SKIP
        0 corpus encodings, 0 query runs, 0 rerank passes (0 pairs)
    """
    retriever_spec, reranker_spec = specs
    shared_inputs = ray.put(inputs)
    retrieve = ray.remote(num_cpus=1)(retrieval_run)
    runs = dict(
        zip(
            retrievers,
            ray.get(
                [
                    retrieve.remote(registry.uri, ckpt, retriever_spec, shared_inputs, depth)
                    for ckpt in retrievers.values()
                ]
            ),
            strict=True,
        )
    )
    scored = runs if scored_retrievers is None else {stage: runs[stage] for stage in scored_retrievers}
    pairs: set[Pair] = {(query, doc) for found in scored.values() for query, docs in found.run.items() for doc in docs}
    score = ray.remote(num_cpus=1)(pair_scores)
    shared_pairs = ray.put(sorted(pairs))
    pair_scores_found = ray.get(
        [score.remote(registry.uri, ckpt, reranker_spec, shared_inputs, shared_pairs) for ckpt in rerankers.values()]
    )
    work = Work(
        corpus_encodings=sum(found.corpus_encoded for found in runs.values()),
        retrieval_runs=sum(found.retrieved for found in runs.values()),
        rerank_passes=sum(found.newly_scored > 0 for found in pair_scores_found),
        pairs_scored=sum(found.newly_scored for found in pair_scores_found),
    )
    return Evidence(runs, dict(zip(rerankers, pair_scores_found, strict=True)), inputs.qrels, work)
