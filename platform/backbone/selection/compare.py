"""An offline A/B of two releases on the same queries: per-query wins, ties and losses, a paired randomisation test,
and the latency difference, for each application both releases serve."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ranx.statistical_tests import fisher_randomization_test

from backbone.data import find_dataset, read_manifest
from backbone.errors import BackboneError
from backbone.models import reranker_spec, retriever_spec
from backbone.registry import Registry, ReleaseRecord, Releases
from backbone.selection.assignment import Assignment, latency_ms, per_query_metric
from backbone.selection.evidence import Evidence, gather_evidence
from backbone.selection.inputs import search_inputs
from backbone.settings import datasets_dir

_TIE = 1e-9


@dataclass(frozen=True)
class AppComparison:
    """Release B against release A on one application.

    Args:
        application: the application.
        metric: the per-query metric compared.
        mean_a: its mean under A.
        mean_b: its mean under B.
        wins: queries where B scores higher than A.
        ties: queries where they score the same.
        losses: queries where B scores lower.
        p_value: two-sided p-value of Fisher's paired randomisation test (ranx) on the per-query values.
        latency_a_ms: A's time per query.
        latency_b_ms: B's time per query.
    """

    application: str
    metric: str
    mean_a: float
    mean_b: float
    wins: int
    ties: int
    losses: int
    p_value: float
    latency_a_ms: float
    latency_b_ms: float


def compare_releases(
    registry: Registry,
    release_a: str,
    release_b: str,
    split: str = "dev",
    metric: str = "ndcg@10",
    permutations: int = 10_000,
) -> list[AppComparison]:
    """Compare release B against release A on every application both serve.

    Both are scored on the same queries: the ``split`` of the dataset their retriever checkpoints were trained
    on, found among the prepared datasets by its checksum. Runs and scores come from the registry when a search
    already made them.

    Args:
        registry: where the releases and their artifacts are.
        release_a: ``NAME`` (its current version) or ``NAME@N`` (version N): the control.
        release_b: the same for the treatment.
        split: the evaluation split.
        metric: the per-query metric.
        permutations: permutations of the randomisation test.

    Raises:
        BackboneError: an unknown release or version, releases trained on different datasets, a dataset that is
            not prepared here, or no application in common.

    Example:
        >>> for row in compare_releases(Registry(), "stard-mini@1", "stard-mini"):  # doctest: +SKIP
        ...     print(row.application, row.mean_a, row.mean_b, row.p_value)
    """
    records = [Releases(registry).resolve(reference) for reference in (release_a, release_b)]
    common = [name for name in records[0].applications if name in records[1].applications]
    if not common:
        raise BackboneError(
            f"{release_a} and {release_b} serve no application in common "
            f"({', '.join(records[0].applications) or 'none'} against {', '.join(records[1].applications) or 'none'})"
        )
    dataset_dir = _dataset_of(registry, records)
    evidence = [_evidence(registry, record, dataset_dir, split) for record in records]
    return [_compare(app, records, evidence, metric, permutations) for app in common]


def _compare(
    app: str, records: list[ReleaseRecord], evidence: list[Evidence], metric: str, permutations: int
) -> AppComparison:
    settings = [record.applications[app] for record in records]
    assignments = [Assignment("release", "release", setting.k, setting.weight) for setting in settings]
    values = [
        per_query_metric(found, assignment, metric, setting.rerank)
        for found, assignment, setting in zip(evidence, assignments, settings, strict=True)
    ]
    queries = sorted(values[0])
    a, b = (np.array([per_query[query] for query in queries]) for per_query in values)
    p_value, _ = fisher_randomization_test(a, b, n_permutations=permutations, max_p=0.05, random_seed=0)
    latencies = [
        latency_ms(found, assignment, setting.rerank)["latency_ms"]
        for found, assignment, setting in zip(evidence, assignments, settings, strict=True)
    ]
    return AppComparison(
        application=app,
        metric=metric,
        mean_a=float(a.mean()),
        mean_b=float(b.mean()),
        wins=int((b > a + _TIE).sum()),
        ties=int((np.abs(b - a) <= _TIE).sum()),
        losses=int((b < a - _TIE).sum()),
        p_value=float(p_value),
        latency_a_ms=latencies[0],
        latency_b_ms=latencies[1],
    )


def _dataset_of(registry: Registry, records: list[ReleaseRecord]) -> Path:
    checksums = {registry.get(record.retriever.checkpoint).lineage.dataset_checksum for record in records}
    recorded = {checksum for checksum in checksums if checksum is not None}
    if len(checksums) != 1 or len(recorded) != 1:
        raise BackboneError(
            "the two releases' retrievers were trained on different (or unrecorded) datasets "
            f"({', '.join(sorted(map(str, checksums)))}); an A/B needs the same queries"
        )
    (checksum,) = recorded
    found = find_dataset(checksum, datasets_dir())
    if found is not None:
        return found
    raise BackboneError(
        f"no prepared dataset with checksum {checksum} under {datasets_dir()}: build it with "
        "`backbone data build RECIPE` (or set BACKBONE_DATASETS_DIR)"
    )


def _evidence(registry: Registry, record: ReleaseRecord, dataset_dir: Path, split: str) -> Evidence:
    retriever = registry.get(record.retriever.checkpoint)
    reranker = registry.get(record.reranker.checkpoint)
    specs = (retriever_spec(retriever), reranker_spec(reranker))
    if split not in read_manifest(dataset_dir).counts.splits:
        raise BackboneError(f"dataset {dataset_dir} has no split {split!r}")
    inputs = search_inputs(dataset_dir, split, *specs)
    depth = max(settings.k for settings in record.applications.values())
    return gather_evidence(registry, inputs, {"release": retriever.id}, {"release": reranker.id}, specs, depth)
