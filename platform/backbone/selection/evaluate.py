"""Scoring what serves, or could serve, on any prepared dataset and split: ``backbone evaluate``.

A release is scored as the gateway answers: for each application, the retriever's top K ordered by the
interpolation of the reranker's and the retriever's scores at the application's weight, then each component on its
own (the retriever over the whole corpus; the reranker's own order of the retriever's top K). A checkpoint is
scored as its component. The model work is the search's own (:func:`~backbone.selection.gather_evidence`), cached in
the registry the same way, so scoring a release on the split its search reported costs nothing and gives the
search's figures; on another dataset the corpus is encoded into an index of that corpus first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from backbone.data import read_manifest
from backbone.errors import BackboneError
from backbone.evaluation import Run, deepest_cutoff, evaluate, evaluate_per_query, write_trec_run
from backbone.models import checkpoint_spec, reranker_spec, retriever_spec
from backbone.recipes import Reranker, Retriever
from backbone.registry import Registry, ReleaseRecord, Releases
from backbone.selection.assignment import Assignment, end_to_end_run
from backbone.selection.evidence import Evidence, Work, gather_evidence
from backbone.selection.inputs import search_inputs

_STAGE = "target"  # the one retriever and reranker "stage" of the evidence an evaluation gathers
DEFAULT_METRICS = ["ndcg@10", "mrr@10", "recall@10", "recall@100"]


@dataclass(frozen=True)
class Scored:
    """One ranking of the evaluation queries and its metrics.

    Args:
        name: what ranked, e.g. ``retriever``, ``reranker@20``, ``api`` (an application); also the file name of its
            run under ``--out``.
        description: how it ranked, in words.
        run: query id -> document id -> score.
        metrics: each metric's mean over the queries.
        per_query: metric -> query id -> value.
    """

    name: str
    description: str
    run: Run
    metrics: dict[str, float]
    per_query: dict[str, dict[str, float]]


@dataclass(frozen=True)
class Evaluation:
    """What ``backbone evaluate`` measured.

    Args:
        target: what was scored, e.g. ``stard-mini v2`` or a checkpoint id.
        dataset: the prepared dataset.
        split: the split scored.
        queries: how many judged queries it has.
        metrics: the metrics, in order.
        components: each component on its own.
        applications: each application end to end (none for a checkpoint).
        notes: what a reader must know about how it was scored (the index used, corpus encoded or not).
        work: the model work it took (zero when the registry held every run and score).
    """

    target: str
    dataset: Path
    split: str
    queries: int
    metrics: list[str]
    components: list[Scored]
    applications: list[Scored]
    notes: list[str]
    work: Work


def evaluate_target(
    registry: Registry,
    target: str,
    dataset_dir: Path,
    split: str,
    metrics: list[str] | None = None,
    k: int = 20,
    candidates: str | None = None,
) -> Evaluation:
    """Score a release (``NAME`` or ``NAME@VERSION``) or a checkpoint id on ``split`` of a prepared dataset.

    Args:
        registry: where the release and its artifacts are; new indexes, runs and scores are published there.
        target: a release reference, or the id of a retriever or reranker checkpoint.
        dataset_dir: the prepared dataset to score on (any; its corpus is indexed if no index of it exists).
        split: the split whose judged queries are scored.
        metrics: ``metric@k`` names; default :data:`DEFAULT_METRICS`.
        k: for a reranker checkpoint, how many of the candidates' retriever's top documents it reorders.
        candidates: for a reranker checkpoint, the retriever checkpoint whose top ``k`` it reorders.

    Raises:
        BackboneError: an unknown target, a split the dataset lacks, a reranker checkpoint without ``candidates``.

    Example:
        >>> evaluation = evaluate_target(Registry(), "stard-mini", Path("datasets/aila"), "test")  # doctest: +SKIP
        >>> evaluation.applications[0].metrics  # doctest: +SKIP
        {'ndcg@10': 0.61, 'mrr@10': 0.66, 'recall@10': 0.78, 'recall@100': 0.78}
    """
    metrics = metrics or DEFAULT_METRICS
    counts = read_manifest(dataset_dir).counts.splits
    if split not in counts:
        raise BackboneError(f"dataset {dataset_dir} has no split {split!r} (it has: {', '.join(sorted(counts))})")
    if target.startswith("checkpoint-"):
        return _evaluate_checkpoint(registry, target, dataset_dir, split, metrics, k, candidates)
    if candidates is not None:
        raise BackboneError("--candidates is for a reranker checkpoint; a release reranks its own retriever's top K")
    return _evaluate_release(registry, Releases(registry).resolve(target), dataset_dir, split, metrics)


def score_release(evidence: Evidence, record: ReleaseRecord, metrics: list[str]) -> tuple[list[Scored], list[Scored]]:
    """The components' and the applications' rankings of a release, from evidence gathered under stage ``target``.

    Returns:
        The retriever over the corpus and the reranker's own order of the retriever's top K for each K an
        application reranks at; then each application end to end, as the gateway answers it.

    Example:
        >>> components, applications = score_release(evidence, releases.current("stard-mini"), ["ndcg@10"])
        ... # doctest: +SKIP
    """
    depth = max((len(docs) for docs in evidence.retrieval[_STAGE].run.values()), default=0)
    components = [_scored(evidence, "retriever", f"the retriever's top {depth} of the corpus", None, metrics)]
    for budget in sorted({s.k for s in record.applications.values() if s.calls_reranker}):
        assignment = Assignment(_STAGE, _STAGE, budget, 1.0)
        described = f"the reranker's own order of the retriever's top {budget}"
        components.append(_scored(evidence, f"reranker@{budget}", described, assignment, metrics))
    applications = []
    for name, settings in sorted(record.applications.items()):
        assignment = Assignment(_STAGE, _STAGE, settings.k, settings.weight)
        described = (
            f"top {settings.k}, weight {settings.weight:g}"
            if settings.calls_reranker
            else f"top {settings.k}, no reranker"
        )
        run = end_to_end_run(evidence, assignment, rerank=settings.calls_reranker)
        applications.append(_ranked(evidence, name, described, run, metrics))
    return components, applications


def write_evaluation(evaluation: Evaluation, folder: Path) -> list[Path]:
    """Write each ranking as ``<name>.trec`` and the per-query metrics of all of them as ``per_query.parquet``.

    ``per_query.parquet`` has one row per (ranking, query): ``ranking``, ``query_id`` and one column per metric.

    Returns:
        The files written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    rows: dict[str, list[object]] = {"ranking": [], "query_id": [], **{metric: [] for metric in evaluation.metrics}}
    for scored in [*evaluation.components, *evaluation.applications]:
        path = folder / f"{scored.name}.trec"
        write_trec_run(scored.run, path, tag=scored.name)
        written.append(path)
        for query in sorted(scored.per_query[evaluation.metrics[0]]):
            rows["ranking"].append(scored.name)
            rows["query_id"].append(query)
            for metric in evaluation.metrics:
                rows[metric].append(scored.per_query[metric][query])
    pq.write_table(pa.table(rows), folder / "per_query.parquet")
    return [*written, folder / "per_query.parquet"]


def _evaluate_release(
    registry: Registry, record: ReleaseRecord, dataset_dir: Path, split: str, metrics: list[str]
) -> Evaluation:
    specs = _specs(registry, record.retriever.checkpoint, record.reranker.checkpoint)
    inputs = search_inputs(dataset_dir, split, *specs)
    budgets = [settings.k for settings in record.applications.values()]
    depth = max([deepest_cutoff(metrics), *budgets])
    reranker = (
        {_STAGE: record.reranker.checkpoint} if any(s.calls_reranker for s in record.applications.values()) else {}
    )
    evidence = gather_evidence(registry, inputs, {_STAGE: record.retriever.checkpoint}, reranker, specs, depth)
    components, applications = score_release(evidence, record, metrics)
    notes = _index_notes(registry, evidence, record.retriever.index)
    target = f"{record.name} v{record.version}"
    return Evaluation(
        target, dataset_dir, split, len(inputs.qrels), metrics, components, applications, notes, evidence.work
    )


def _evaluate_checkpoint(
    registry: Registry,
    checkpoint: str,
    dataset_dir: Path,
    split: str,
    metrics: list[str],
    k: int,
    candidates: str | None,
) -> Evaluation:
    spec = checkpoint_spec(registry.get(checkpoint))
    if isinstance(spec, Retriever):
        if candidates is not None:
            raise BackboneError(f"{checkpoint} is a retriever checkpoint: --candidates is for a reranker")
        retriever, reranker = checkpoint, None
    else:
        if candidates is None:
            raise BackboneError(
                f"{checkpoint} is a reranker checkpoint: name the retriever checkpoint whose top K it reorders "
                "with --candidates"
            )
        retriever, reranker = candidates, checkpoint
    specs = _specs(registry, retriever, reranker)
    inputs = search_inputs(dataset_dir, split, *specs)
    depth = max(deepest_cutoff(metrics), k)
    rerankers = {_STAGE: reranker} if reranker else {}
    evidence = gather_evidence(registry, inputs, {_STAGE: retriever}, rerankers, specs, depth)
    if reranker is None:
        scored = [_scored(evidence, "retriever", f"the retriever's top {depth} of the corpus", None, metrics)]
    else:
        scored = [
            _scored(
                evidence,
                f"retriever@{k}",
                f"retriever {retriever}'s own top {k}",
                Assignment(_STAGE, _STAGE, k, 0.0),
                metrics,
            ),
            _scored(
                evidence,
                f"reranker@{k}",
                f"the reranker's order of retriever {retriever}'s top {k}",
                Assignment(_STAGE, _STAGE, k, 1.0),
                metrics,
            ),
        ]
    notes = _index_notes(registry, evidence, None)
    return Evaluation(checkpoint, dataset_dir, split, len(inputs.qrels), metrics, scored, [], notes, evidence.work)


def _specs(registry: Registry, retriever_id: str, reranker_id: str | None) -> tuple[Retriever, Reranker]:
    retriever = retriever_spec(registry.get(retriever_id))
    return retriever, reranker_spec(registry.get(reranker_id)) if reranker_id else Reranker(model=retriever.model)


def _scored(
    evidence: Evidence, name: str, description: str, assignment: Assignment | None, metrics: list[str]
) -> Scored:
    """The retriever's own run (``assignment`` None) or ``assignment``'s top K ordered by its weight."""
    run = evidence.retrieval[_STAGE].run if assignment is None else end_to_end_run(evidence, assignment)
    return _ranked(evidence, name, description, run, metrics)


def _ranked(evidence: Evidence, name: str, description: str, run: Run, metrics: list[str]) -> Scored:
    return Scored(
        name, description, run, evaluate(evidence.qrels, run, metrics), evaluate_per_query(evidence.qrels, run, metrics)
    )


def _index_notes(registry: Registry, evidence: Evidence, served_index: str | None) -> list[str]:
    found = evidence.retrieval[_STAGE]
    encoded = "encoded now (no index of this corpus existed)" if found.corpus_encoded else "from the registry"
    notes = [f"retriever index {found.index}: {encoded}"]
    if served_index is not None and served_index != found.index:
        held = registry.get(served_index).lineage.dataset_checksum
        notes.append(
            f"the release serves index {served_index}, built on another corpus (dataset {held}); this dataset's "
            f"corpus was scored with index {found.index} of the same document encoder"
        )
    return notes
