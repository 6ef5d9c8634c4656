"""Assembling the backbone component-wise: each component's stage is chosen by the end-to-end metric.

:func:`gather_evidence` does all model work once per checkpoint (indexes, evaluation runs, pair scores, cached in
the registry); :func:`run_search` scores retriever stage x reranker stage x K x interpolation weight with Ray Tune;
:func:`choose_backbone` picks one stage pair for every application and each application's K and weight inside its
budget, on the recipe's selection split when it has one; :func:`score_reported` scores the choices on the
evaluation split, which no choice used;
:func:`select_backbone` does all of it, writes the release and the report; :func:`compare_releases` is an offline
A/B of two releases; :func:`evaluate_target` scores a release or a checkpoint on any prepared dataset.
"""

from backbone.selection.assemble import Selection, select_backbone
from backbone.selection.assignment import Assignment, assignment_metrics, end_to_end_run, latency_ms, per_query_metric
from backbone.selection.choice import AppChoice, Choice, choose_backbone
from backbone.selection.compare import AppComparison, compare_releases
from backbone.selection.evaluate import (
    DEFAULT_METRICS,
    Evaluation,
    Scored,
    evaluate_target,
    score_release,
    write_evaluation,
)
from backbone.selection.evidence import Evidence, Work, gather_evidence
from backbone.selection.held_out import Reported, reported_assignments, score_reported
from backbone.selection.inputs import SearchInputs, search_inputs
from backbone.selection.pair_scores import PairScores, pair_scores
from backbone.selection.rechoose import rechoose_settings
from backbone.selection.report import SearchOutcome, write_report
from backbone.selection.retrieval_runs import RetrievalRun, retrieval_run
from backbone.selection.search import Row, SearchSpace, experiment_name, run_search

__all__ = [
    "DEFAULT_METRICS",
    "AppChoice",
    "AppComparison",
    "Assignment",
    "Choice",
    "Evaluation",
    "Evidence",
    "PairScores",
    "Reported",
    "RetrievalRun",
    "Row",
    "Scored",
    "SearchInputs",
    "SearchOutcome",
    "SearchSpace",
    "Selection",
    "Work",
    "assignment_metrics",
    "choose_backbone",
    "compare_releases",
    "end_to_end_run",
    "evaluate_target",
    "experiment_name",
    "gather_evidence",
    "latency_ms",
    "pair_scores",
    "per_query_metric",
    "rechoose_settings",
    "reported_assignments",
    "retrieval_run",
    "run_search",
    "score_release",
    "score_reported",
    "search_inputs",
    "select_backbone",
    "write_evaluation",
    "write_report",
]
