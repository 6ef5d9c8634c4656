"""Assembling a backbone for a recipe: gather evidence, search stage assignments, write the release and the report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from backbone.evaluation import evaluate, write_parquet_run, write_trec_run
from backbone.recipes import Recipe, recipe_hash
from backbone.registry import Lineage, Registry, ReleaseRecord, Releases
from backbone.selection.assignment import Assignment, assignment_metrics, end_to_end_run
from backbone.selection.choice import Choice, choose_backbone
from backbone.selection.evidence import Evidence, gather_evidence
from backbone.selection.held_out import reported_assignments, score_reported
from backbone.selection.inputs import search_inputs
from backbone.selection.report import SearchOutcome, write_report
from backbone.selection.search import Row, SearchSpace, experiment_name, run_search

_CURVE_POINTS = [1, 5, 10, 20, 30, 40, 50, 60, 80, 100, 150, 200]


@dataclass(frozen=True)
class Selection:
    """What :func:`select_backbone` produced.

    Args:
        outcome: the search's findings and the chosen backbone.
        report: the report's summary page (``report.md``), with the leaderboard, figures and runs beside it.
        report_artifact: the id of the report artifact in the registry.
    """

    outcome: SearchOutcome
    report: Path
    report_artifact: str

    def describe(self) -> str:
        """A few lines for a terminal: the chosen stages, each application's K and weight with its figures on both
        splits, which split chose, the release and the report."""
        outcome = self.outcome
        choice, release, objective = outcome.choice, outcome.release, outcome.space.objective
        held_out = {item.label: item.held_out for item in outcome.reported}
        lines = [
            f"model work: {outcome.work}",
            f"chosen on split {outcome.choice_split}, reported on split {outcome.eval_split}"
            + ("" if outcome.honest else " (the same split: the figures are optimistic)"),
            f"chosen backbone: retriever stage {choice.retriever}, reranker stage {choice.reranker} "
            f"(mean {objective} {choice.score:.4f} on {outcome.choice_split}, "
            f"{outcome.held_out_score():.4f} on {outcome.eval_split})",
        ]
        lines += [
            f"  {app.name}: K={app.k} weight={app.weight} top_n={app.top_n} rerank={app.rerank} "
            f"{objective}={app.row[objective]:.4f} on {outcome.choice_split}, "
            f"{held_out[f'chosen: {app.name}'][objective]:.4f} on {outcome.eval_split}; "
            f"latency={app.row['latency_ms']:.0f} ms"
            for app in choice.applications
        ]
        if release:
            lines.append(f"release: {release.name} v{release.version} ({release.change})")
        lines.append(f"report: {self.report} (registry artifact {self.report_artifact})")
        return "\n".join(lines)


def select_backbone(
    recipe: Recipe,
    dataset_dir: Path,
    registry: Registry,
    checkpoints: dict[str, dict[str, str]],
    report_dir: Path,
    release_name: str | None = None,
    stage_tables: Sequence[str] = (),
) -> Selection:
    """Search the recipe's stage assignments end to end, write the chosen backbone as a release, and report.

    Every choice is made on the recipe's selection split (``dataset.selection``), else on its evaluation split; the
    chosen, base and best uniform assignments and each retriever alone are then scored on the evaluation split,
    gathering there only the pairs those assignments need.

    Args:
        recipe: the recipe (search space, objective, metrics, applications).
        dataset_dir: its prepared dataset.
        registry: where the checkpoints are and where indexes, runs, scores, the release and the report go.
        checkpoints: component -> stage -> checkpoint id, covering every searched stage.
        report_dir: where the report is written (also published as a ``report`` artifact).
        release_name: the release to write (default: the recipe's name).
        stage_tables: each component's per-stage table for the report, as Markdown (made by
            :func:`backbone.training.stage_tables`); none by default.

    Example:
        >>> selection = select_backbone(recipe, dataset_dir, registry, checkpoints, Path("reports/x"))  # doctest: +SKIP
        >>> selection.outcome.choice.retriever, selection.report  # doctest: +SKIP
        ('calibration', PosixPath('reports/x/report.md'))
    """
    specs = (recipe.retriever, recipe.reranker)
    space = SearchSpace.from_recipe(
        recipe.search,
        recipe.searched_stages("retriever"),
        recipe.searched_stages("reranker"),
        recipe.evaluation.end_to_end_metrics,
        recipe.seed,
    )
    depth = max(space.k)
    retrievers = {stage: checkpoints["retriever"][stage] for stage in space.retriever_stages}
    rerankers = {stage: checkpoints["reranker"][stage] for stage in space.reranker_stages}
    choice_split, eval_split = recipe.dataset.choice_split(), recipe.dataset.eval_split
    evidence = gather_evidence(
        registry, search_inputs(dataset_dir, choice_split, *specs), retrievers, rerankers, specs, depth
    )
    print(f"[search] model work on {choice_split}: {evidence.work}", flush=True)
    rows = run_search(evidence, space, registry, recipe.name)
    retriever_only = _retriever_only(evidence, space, depth)
    choice = choose_backbone(rows, recipe.applications, space.objective, retriever_only)
    reported = reported_assignments(choice, rows, space)
    held_out = evidence
    if eval_split != choice_split:
        # Only what the report shows is scored on the evaluation split: every retriever's run (cheap: its index
        # exists), and pairs of just the retriever stages and rerankers of the reported assignments.
        reranked = [assignment for _, assignment, rerank in reported if rerank]
        held_out = gather_evidence(
            registry,
            search_inputs(dataset_dir, eval_split, *specs),
            retrievers,
            {assignment.reranker: rerankers[assignment.reranker] for assignment in reranked},
            specs,
            depth,
            scored_retrievers=sorted({assignment.retriever for assignment in reranked}),
        )
        print(f"[search] model work on {eval_split}: {held_out.work}", flush=True)
    release = _propose(recipe, registry, evidence, checkpoints, choice, release_name or recipe.name)
    outcome = SearchOutcome(
        recipe=recipe.name,
        space=space,
        rows=rows,
        retriever_only=retriever_only,
        recall_curves={stage: _recall_curve(held_out, stage, depth) for stage in space.retriever_stages},
        choice=choice,
        checkpoints=checkpoints,
        work=evidence.work + held_out.work if held_out is not evidence else evidence.work,
        release=release,
        choice_split=choice_split,
        eval_split=eval_split,
        reported=score_reported(reported, evidence, held_out, space.metrics),
        held_out_retriever_only=_retriever_only(held_out, space, depth),
        stage_tables=list(stage_tables),
    )
    report = write_report(outcome, report_dir)
    _write_runs(held_out, choice, report_dir / "runs")
    artifact = _publish_report(recipe, registry, report_dir, outcome, experiment_name(evidence, space, recipe.name))
    return Selection(outcome, report, artifact)


def _retriever_only(evidence: Evidence, space: SearchSpace, depth: int) -> dict[str, Row]:
    """Each retriever stage's own top-10 metrics and latency, without a reranker."""
    return {
        stage: assignment_metrics(evidence, Assignment(stage, "", depth), space.metrics, rerank=False)
        for stage in space.retriever_stages
    }


def _recall_curve(evidence: Evidence, stage: str, depth: int) -> dict[int, float]:
    ks = sorted({k for k in _CURVE_POINTS if k <= depth} | {depth})
    values = evaluate(evidence.qrels, evidence.retrieval[stage].run, [f"recall@{k}" for k in ks])
    return {k: values[f"recall@{k}"] for k in ks}


def _propose(
    recipe: Recipe,
    registry: Registry,
    evidence: Evidence,
    checkpoints: dict[str, dict[str, str]],
    choice: Choice,
    name: str,
) -> ReleaseRecord:
    applications = {app.name: app.settings() for app in choice.applications}
    return Releases(registry).propose(
        name,
        retriever_checkpoint=checkpoints["retriever"][choice.retriever],
        retriever_index=evidence.retrieval[choice.retriever].index,
        reranker_checkpoint=checkpoints["reranker"][choice.reranker],
        applications=applications,
        note=f"search of recipe {recipe.name}: retriever stage {choice.retriever}, reranker stage {choice.reranker}, "
        f"mean {recipe.search.objective} {choice.score:.4f} on split {recipe.dataset.choice_split()}",
    )


def _write_runs(evidence: Evidence, choice: Choice, folder: Path) -> None:
    """Each application's end-to-end run of the evaluation split under the chosen backbone, as TREC and Parquet."""
    folder.mkdir(parents=True, exist_ok=True)
    for app in choice.applications:
        assignment = Assignment(choice.retriever, choice.reranker, app.k, app.weight)
        run = end_to_end_run(evidence, assignment, rerank=app.rerank)
        write_trec_run(run, folder / f"{app.name}.trec", tag=app.name)
        write_parquet_run(run, folder / f"{app.name}.parquet")


def _publish_report(recipe: Recipe, registry: Registry, folder: Path, outcome: SearchOutcome, experiment: str) -> str:
    release = outcome.release
    key = f"report:{experiment}:{release.name}:v{release.version}" if release else f"report:{experiment}"
    if (found := registry.find("report", key)) is not None:
        return found.id
    chosen = [outcome.checkpoints["retriever"][outcome.choice.retriever]]
    chosen.append(outcome.checkpoints["reranker"][outcome.choice.reranker])
    with registry.draft(
        "report",
        name=f"search/{recipe.name}",
        lineage=Lineage(parents=chosen, recipe_hash=recipe_hash(recipe)),
        metrics={
            f"mean_{recipe.search.objective}": outcome.choice.score,
            f"mean_{recipe.search.objective}_held_out": outcome.held_out_score(),
        },
        params={
            "experiment": experiment,
            "release": release.name if release else None,
            "chosen_on": outcome.choice_split,
            "reported_on": outcome.eval_split,
        },
        cache_key=key,
    ) as draft:
        # Publish a copy: the report folder may hold files of other runs a user put there.
        for name in ["report.md", "leaderboard.md", "leaderboard.parquet", "heatmap.png", "curves.png"]:
            (draft.path / name).write_bytes((folder / name).read_bytes())
        for run in (folder / "runs").iterdir():
            (draft.path / "runs").mkdir(exist_ok=True)
            (draft.path / "runs" / run.name).write_bytes(run.read_bytes())
    assert draft.manifest is not None  # set once the block ended cleanly
    return draft.manifest.id
