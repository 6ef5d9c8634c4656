"""The choices scored on the evaluation split that made none of them: what the report says the backbone is worth.

The search chooses on one split (the recipe's selection split, else the evaluation split); this module takes the
assignments that matter (each application's chosen operating point, the base backbone at the same operating
point, the best uniform assignment) and each retriever stage alone, and scores them on the evaluation split too.
"""

from __future__ import annotations

from dataclasses import dataclass

from backbone.selection.assignment import Assignment, assignment_metrics
from backbone.selection.choice import Choice
from backbone.selection.evidence import Evidence
from backbone.selection.search import Row, SearchSpace


@dataclass(frozen=True)
class Reported:
    """One assignment's figures on both splits.

    Args:
        label: what it is, e.g. ``chosen: api``, ``base: api``, ``best uniform``.
        assignment: the stages, K and weight.
        rerank: whether the reranker reorders the candidates (false: the retriever's top K as is).
        chosen_on: its metrics and latency on the split the search chose on.
        held_out: the same on the evaluation split.
    """

    label: str
    assignment: Assignment
    rerank: bool
    chosen_on: Row
    held_out: Row


def reported_assignments(choice: Choice, rows: list[Row], space: SearchSpace) -> list[tuple[str, Assignment, bool]]:
    """The assignments to score on the evaluation split: chosen, base at the same operating point, best uniform.

    Each application's operating point under the chosen stages, and ``base``/``base`` at the same K and weight
    when both components searched ``base``; with no applications, the chosen stages' best row. Then the best
    uniform row of the leaderboard, if any.

    Example:
        >>> [label for label, _, _ in reported_assignments(choice, rows, space)]  # doctest: +SKIP
        ['chosen: api', 'base: api', 'best uniform']
    """
    points = [(app.name, app.k, app.weight, app.rerank) for app in choice.applications]
    if not points:
        best = next(row for row in rows if (row["retriever"], row["reranker"]) == (choice.retriever, choice.reranker))
        points = [("", best["k"], best["weight"], True)]
    has_base = "base" in space.retriever_stages and "base" in space.reranker_stages
    reported = []
    for name, k, weight, rerank in points:
        suffix = f": {name}" if name else ""
        reported.append((f"chosen{suffix}", Assignment(choice.retriever, choice.reranker, k, weight), rerank))
        if has_base:
            reported.append((f"base{suffix}", Assignment("base", "base", k, weight), rerank))
    uniform = next((row for row in rows if row["retriever"] == row["reranker"]), None)
    if uniform is not None:
        assignment = Assignment(uniform["retriever"], uniform["reranker"], uniform["k"], uniform["weight"])
        reported.append(("best uniform", assignment, True))
    return reported


def score_reported(
    assignments: list[tuple[str, Assignment, bool]], chosen_on: Evidence, held_out: Evidence, metrics: list[str]
) -> list[Reported]:
    """Each assignment's metrics on the choosing split's evidence and on the evaluation split's.

    Example:
        >>> score_reported(reported_assignments(choice, rows, space), evidence, held_out, ["ndcg@10"])  # doctest: +SKIP
    """
    return [
        Reported(
            label,
            assignment,
            rerank,
            assignment_metrics(chosen_on, assignment, metrics, rerank),
            assignment_metrics(held_out, assignment, metrics, rerank),
        )
        for label, assignment, rerank in assignments
    ]
