"""One stage assignment (retriever stage, reranker stage, budget K, interpolation weight) scored end to end from
gathered evidence."""

from __future__ import annotations

from dataclasses import dataclass

from backbone.errors import BackboneError
from backbone.evaluation import Run, evaluate, evaluate_per_query, interpolate, top_k
from backbone.selection.evidence import Evidence


@dataclass(frozen=True)
class Assignment:
    """Which retriever stage and reranker stage serve, how many candidates K the retriever passes on, and the
    interpolation weight of the reranker's score against the retriever's (1: the reranker's order).

    Example:
        >>> Assignment("calibration", "refinement", 60, 0.5).uniform
        False
    """

    retriever: str
    reranker: str
    k: int
    weight: float = 1.0

    @property
    def uniform(self) -> bool:
        """Both components from the same stage of their curricula."""
        return self.retriever == self.reranker

    def calls_reranker(self, rerank: bool = True) -> bool:
        """Whether serving this assignment calls the reranker: at weight 0 the order is the retriever's, so the
        gateway does not (``AppSettings.calls_reranker``), and neither does scoring it from evidence."""
        return rerank and self.weight > 0


def end_to_end_run(evidence: Evidence, assignment: Assignment, rerank: bool = True) -> Run:
    """Retrieve the top K with the retriever stage, then order them by the interpolated score.

    The order is :func:`backbone.evaluation.interpolate`'s (the gateway's too): ``weight`` times the reranker
    stage's min-max normalised score plus ``1 - weight`` times the retriever stage's, ties by document id.

    Args:
        evidence: runs and pair scores of every stage.
        assignment: the stages and K.
        rerank: false: keep the retriever's order (the reranker stage is then ignored, as it is at weight 0).

    Raises:
        BackboneError: K exceeds the depth the evidence was gathered at.

    Example:
        >>> run = end_to_end_run(evidence, Assignment("base", "base", 20))  # doctest: +SKIP
    """
    retrieved = evidence.retrieval[assignment.retriever].run
    depth = max((len(docs) for docs in retrieved.values()), default=0)
    if assignment.k > depth:
        raise BackboneError(f"K={assignment.k} exceeds the depth {depth} the retrieval runs were gathered at")
    candidates = top_k(retrieved, assignment.k)
    if not assignment.calls_reranker(rerank):
        return candidates
    scores = evidence.scores[assignment.reranker].scores
    return {
        query: interpolate(docs, {doc: scores[(query, doc)] for doc in docs}, assignment.weight)
        for query, docs in candidates.items()
    }


def assignment_metrics(
    evidence: Evidence, assignment: Assignment, metrics: list[str], rerank: bool = True
) -> dict[str, float]:
    """End-to-end ``metrics`` of ``assignment``, and its time per query in milliseconds.

    The time per query adds the retriever's measured time (embed the query, search the index) to K times the
    reranker's measured time per pair: both measured in batches while the evidence was gathered.

    Example:
        >>> assignment_metrics(evidence, Assignment("calibration", "refinement", 20), ["ndcg@10"])  # doctest: +SKIP
        {'ndcg@10': 0.71, 'retriever_ms': 38.2, 'reranker_ms': 950.0, 'latency_ms': 988.2}
    """
    values = evaluate(evidence.qrels, end_to_end_run(evidence, assignment, rerank), metrics)
    return values | latency_ms(evidence, assignment, rerank)


def per_query_metric(evidence: Evidence, assignment: Assignment, metric: str, rerank: bool = True) -> dict[str, float]:
    """``metric`` of ``assignment`` for each evaluation query (0 for a query with no results)."""
    return evaluate_per_query(evidence.qrels, end_to_end_run(evidence, assignment, rerank), [metric])[metric]


def latency_ms(evidence: Evidence, assignment: Assignment, rerank: bool = True) -> dict[str, float]:
    """The retriever's, the reranker's and the total time per query of ``assignment``, in milliseconds."""
    retriever = evidence.retrieval[assignment.retriever].query_ms
    calls = assignment.calls_reranker(rerank)
    reranker = assignment.k * evidence.scores[assignment.reranker].ms_per_pair if calls else 0.0
    return {"retriever_ms": retriever, "reranker_ms": reranker, "latency_ms": retriever + reranker}
