"""The Ray Tune search over stage assignments: retriever stage x reranker stage x K x weight, scored end to end.

Every trial only looks results up in the gathered :class:`~backbone.selection.evidence.Evidence`, so the search
costs no model work beyond it. Tune keeps its state under ``<registry>/ray-tune/<name>``: a search that was
interrupted is resumed with ``Tuner.restore`` (finished trials are kept, unfinished ones run again), and a finished
one is read back without running a trial.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from dataclasses import dataclass, field
from typing import Any

from ray import tune
from tqdm import tqdm

from backbone.errors import BackboneError
from backbone.progress import progress
from backbone.recipes import Search
from backbone.registry import Registry
from backbone.selection.assignment import Assignment, assignment_metrics
from backbone.selection.evidence import Evidence

Row = dict[str, Any]
"""A leaderboard row: ``retriever``, ``reranker``, ``k``, ``weight``, then each end-to-end metric and the latencies."""
_AXES = ("retriever", "reranker", "k", "weight")


@dataclass(frozen=True)
class SearchSpace:
    """The assignments a search may try, and what it maximises.

    Args:
        retriever_stages: retriever stages to try.
        reranker_stages: reranker stages to try.
        k: retrieval budgets to try.
        objective: the end-to-end metric to maximise.
        metrics: every end-to-end metric to report.
        algorithm: ``grid`` (every assignment) or ``random`` (``num_samples`` of them).
        num_samples: assignments the random search draws.
        seed: the random search's seed.
        weights: interpolation weights to try (1: the reranker's order, 0: the retriever's).
    """

    retriever_stages: list[str]
    reranker_stages: list[str]
    k: list[int]
    objective: str
    metrics: list[str]
    algorithm: str = "grid"
    num_samples: int = 1
    seed: int = 0
    weights: list[float] = field(default_factory=lambda: [1.0])

    @classmethod
    def from_recipe(
        cls, search: Search, retriever_stages: list[str], reranker_stages: list[str], metrics: list[str], seed: int
    ) -> SearchSpace:
        """The space a recipe's ``search`` section describes, over the given stages."""
        return cls(
            retriever_stages,
            reranker_stages,
            search.k,
            search.objective,
            metrics,
            search.algorithm,
            search.num_samples,
            seed,
            search.weights,
        )

    def size(self) -> int:
        """How many trials the search runs: every assignment of the grid, or the random search's samples."""
        if self.algorithm == "random":
            return self.num_samples
        return len(self.retriever_stages) * len(self.reranker_stages) * len(self.k) * len(self.weights)

    def param_space(self) -> dict[str, Any]:
        """Tune's parameter space: grid searches, or uniform choices for the random search."""
        dimension = tune.grid_search if self.algorithm == "grid" else tune.choice
        return {
            "retriever": dimension(self.retriever_stages),
            "reranker": dimension(self.reranker_stages),
            "k": dimension(self.k),
            "weight": dimension(self.weights),
        }


def run_search(evidence: Evidence, space: SearchSpace, registry: Registry, name: str) -> list[Row]:
    """Score the assignments of ``space`` with Ray Tune and return the leaderboard, best first.

    Rows are ordered by the objective, then the lower latency, then the larger weight.

    Args:
        evidence: runs and pair scores of every stage in ``space``.
        space: the assignments and the objective.
        registry: Tune's state goes under ``<registry>/ray-tune``.
        name: names the search; the evidence and the space are hashed into the experiment's folder name, so a
            changed search never resumes an old one.

    Raises:
        BackboneError: a trial failed (its error is quoted).

    Example:
        >>> rows = run_search(evidence, space, registry, "stard-mini")  # doctest: +SKIP
        >>> rows[0]  # doctest: +SKIP
        {'retriever': 'calibration', 'reranker': 'refinement', 'k': 20, 'weight': 0.5, 'ndcg@10': 0.72, ...}
    """
    storage = posixpath.join(registry.root.base, "ray-tune")
    experiment = experiment_name(evidence, space, name)
    trainable = tune.with_resources(tune.with_parameters(_trial, evidence=evidence, metrics=space.metrics), {"cpu": 1})
    path = posixpath.join(storage, experiment)
    if tune.Tuner.can_restore(path, storage_filesystem=registry.root.fs):
        # Finished trials are kept; a search that had finished is only read back.
        print(f"[search] resuming {experiment} from {registry.root.full('ray-tune/' + experiment)}", flush=True)
        tuner = tune.Tuner.restore(
            path, trainable, resume_unfinished=True, restart_errored=True, storage_filesystem=registry.root.fs
        )
    else:
        tuner = tune.Tuner(
            trainable,
            param_space=space.param_space(),
            tune_config=tune.TuneConfig(
                metric=space.objective,
                mode="max",
                num_samples=space.num_samples if space.algorithm == "random" else 1,
                search_alg=tune.search.BasicVariantGenerator(random_state=space.seed),
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                name=experiment,
                storage_path=storage,
                storage_filesystem=registry.root.fs,
                verbose=0,
                callbacks=[TrialProgress(space.size(), f"search ({name})")],
            ),
        )
    results = tuner.fit()
    if results.errors:
        raise BackboneError(f"{len(results.errors)} search trials failed; the first: {results.errors[0]}")
    trials = [results[i] for i in range(len(results))]  # a ResultGrid is indexed; its type declares no __iter__
    scored = [(trial.config or {}, trial.metrics or {}) for trial in trials]
    finished = [(config, metrics) for config, metrics in scored if space.objective in metrics]
    if len(finished) < space.size():
        # Tune returns early when interrupted (Ctrl-C, a stopped job): no release may come of a partial search.
        raise BackboneError(
            f"the search stopped after {len(finished)} of {space.size()} assignments; run it again to resume"
        )
    rows = [
        {
            **{axis: config[axis] for axis in _AXES},
            **{metric: metrics[metric] for metric in [*space.metrics, "retriever_ms", "reranker_ms", "latency_ms"]},
        }
        for config, metrics in finished
    ]
    unique = {tuple(row[axis] for axis in _AXES): row for row in rows}.values()
    return sorted(unique, key=lambda row: (-row[space.objective], row["latency_ms"], -row["weight"]))


class TrialProgress(tune.Callback):
    """Progress lines of a search (see :mod:`backbone.progress`): assignments scored of all, rate, time left.

    Tune keeps its callbacks with the experiment, so a resumed search brings this one back; the bar itself is
    made on the first finished trial and never pickled.

    Args:
        total: the assignments the search scores.
        label: what the lines call the search.
    """

    def __init__(self, total: int, label: str) -> None:
        self.total = total
        self.label = label
        self._bar: tqdm | None = None

    def on_trial_complete(self, iteration: int, trials: list, trial: tune.experiment.Trial, **info: Any) -> None:
        if self._bar is None:
            self._bar = progress(self.total, self.label, "trials")
            self._bar.update(sum(1 for other in trials if other.status == "TERMINATED" and other is not trial))
        self._bar.update(1)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_bar": None}


def _trial(config: dict[str, Any], evidence: Evidence, metrics: list[str]) -> None:
    assignment = Assignment(config["retriever"], config["reranker"], config["k"], config["weight"])
    tune.report(assignment_metrics(evidence, assignment, metrics))


def experiment_name(evidence: Evidence, space: SearchSpace, name: str) -> str:
    """The Tune experiment's name: ``name`` and a hash of the evidence's artifacts and the space searched."""
    identity = {
        "runs": {stage: found.artifact for stage, found in sorted(evidence.retrieval.items())},
        "rerankers": {stage: found.checkpoint for stage, found in sorted(evidence.scores.items())},
        "space": space.__dict__,
    }
    return f"{name}-{hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:10]}"
