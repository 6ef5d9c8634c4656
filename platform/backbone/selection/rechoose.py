"""Choosing each application's K and weight again for the pair a release serves now (after a promotion or a
rollback), from the search's cached evidence: only a checkpoint the search never saw costs model work."""

from __future__ import annotations

from pathlib import Path

from backbone.recipes import Recipe
from backbone.registry import AppSettings, Registry, ReleaseRecord
from backbone.selection.assignment import Assignment, assignment_metrics
from backbone.selection.choice import choose_backbone
from backbone.selection.evidence import Work, gather_evidence
from backbone.selection.inputs import search_inputs
from backbone.selection.search import Row, SearchSpace

_SERVED = "served"


def rechoose_settings(
    recipe: Recipe, dataset_dir: Path, registry: Registry, record: ReleaseRecord
) -> tuple[dict[str, AppSettings], Work]:
    """Each application's best K and weight for the checkpoints ``record`` serves, chosen as the search chooses.

    The recipe's search grid (``search.k`` x ``search.weights``) is scored for the served pair on the recipe's
    choosing split and :func:`~backbone.selection.choose_backbone` picks each application's operating point within
    its ``k_range`` and latency budget: the same choice the search would make if that pair were its only one.

    Args:
        recipe: the recipe the release was searched with (grid, objective, metrics, applications).
        dataset_dir: its prepared dataset.
        registry: where the checkpoints and the cached runs and pair scores are.
        record: the release version whose pair to choose for.

    Returns:
        The applications' settings, and the model work it took (zero when the search had scored both).

    Raises:
        BackboneError: no grid point fits an application's budget.

    Example:
        >>> settings, work = rechoose_settings(recipe, dataset_dir, Registry(), releases.current("stard-mini"))
        ... # doctest: +SKIP
    """
    space = SearchSpace.from_recipe(
        recipe.search, [_SERVED], [_SERVED], recipe.evaluation.end_to_end_metrics, recipe.seed
    )
    specs = (recipe.retriever, recipe.reranker)
    depth = max(space.k)
    evidence = gather_evidence(
        registry,
        search_inputs(dataset_dir, recipe.dataset.choice_split(), *specs),
        {_SERVED: record.retriever.checkpoint},
        {_SERVED: record.reranker.checkpoint},
        specs,
        depth,
    )
    rows: list[Row] = [
        {
            "retriever": _SERVED,
            "reranker": _SERVED,
            "k": k,
            "weight": weight,
            **assignment_metrics(evidence, Assignment(_SERVED, _SERVED, k, weight), space.metrics),
        }
        for k in space.k
        for weight in space.weights
    ]
    alone = assignment_metrics(evidence, Assignment(_SERVED, "", depth), space.metrics, rerank=False)
    choice = choose_backbone(rows, recipe.applications, space.objective, {_SERVED: alone})
    settings = {app.name: app.settings() for app in choice.applications}
    return settings, evidence.work
