"""Choosing the backbone from the leaderboard: one retriever stage and one reranker stage shared by every
application, each application with the best budget K and interpolation weight inside its own limits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from backbone.errors import BackboneError
from backbone.recipes import Application
from backbone.registry import AppSettings
from backbone.selection.search import Row

RERANK_HEADROOM = 4.0
"""An application without a latency budget gives the reranker this many times the measured cost of its K pairs:
room for queueing and batching beside other requests, never an answer that waits for ever."""
RERANK_FLOOR_S = 0.5
"""The shortest reranker deadline a measured cost sets (a very fast reranker still meets scheduling noise)."""


@dataclass(frozen=True)
class AppChoice:
    """An application's operating point under the chosen backbone.

    Args:
        name: the application.
        k: candidates the retriever passes on.
        top_n: results returned.
        rerank: whether the reranker reorders the candidates.
        weight: the interpolation weight of the reranker's score (1.0 when the application does not rerank).
        row: the leaderboard row of this operating point (its metrics and latency).
        rerank_timeout_s: the reranker's deadline per search (see :func:`rerank_deadline_s`); None when the
            reranker is not called.
        without_reranker: what a search answers without the reranker (the recipe application's policy).
    """

    name: str
    k: int
    top_n: int
    rerank: bool
    weight: float
    row: Row
    rerank_timeout_s: float | None = None
    without_reranker: Literal["retriever", "unavailable"] = "retriever"

    def settings(self) -> AppSettings:
        """What a release stores for this application and the gateway applies."""
        return AppSettings(
            k=self.k,
            top_n=self.top_n,
            rerank=self.rerank,
            weight=self.weight,
            rerank_timeout_s=self.rerank_timeout_s,
            without_reranker=self.without_reranker,
        )


@dataclass(frozen=True)
class Choice:
    """The chosen stages and every application's operating point.

    Args:
        retriever: the retriever stage.
        reranker: the reranker stage.
        score: the mean objective over the applications (the best row's objective if there are none).
        applications: each application's operating point.
    """

    retriever: str
    reranker: str
    score: float
    applications: list[AppChoice]


def choose_backbone(
    rows: list[Row], applications: list[Application], objective: str, retriever_only: dict[str, Row]
) -> Choice:
    """The stage pair whose applications, each at its best K inside its budget, have the best mean objective.

    One backbone serves every application, so stages are chosen for all of them together: for each
    (retriever stage, reranker stage) and each application, the best (K, weight) within the application's
    ``k_range`` and ``latency_budget_ms`` (ties: the smaller K, then the larger weight); the pair's score is the
    mean over applications. A pair that
    leaves an application without any allowed K is not eligible. With no applications, the best row wins.

    Args:
        rows: the search's leaderboard.
        applications: the recipe's applications.
        objective: the end-to-end metric.
        retriever_only: retriever stage -> a row of its own top-10 metrics (for applications without reranking).

    Raises:
        BackboneError: no stage pair can serve every application within its budget.

    Example:
        >>> choice = choose_backbone(rows, recipe.applications, "ndcg@10", retriever_only)  # doctest: +SKIP
        >>> choice.retriever, choice.reranker, [app.k for app in choice.applications]  # doctest: +SKIP
        ('calibration', 'refinement', [20, 60, 100])
    """
    if not rows:
        raise BackboneError("the search produced no results")
    pairs = sorted({(row["retriever"], row["reranker"]) for row in rows})
    best: Choice | None = None
    for retriever, reranker in pairs:
        pair_rows = [row for row in rows if (row["retriever"], row["reranker"]) == (retriever, reranker)]
        points = [_operating_point(app, pair_rows, objective, retriever_only[retriever]) for app in applications]
        chosen = [point for point in points if point is not None]
        if len(chosen) != len(points):
            continue
        score = (
            sum(app.row[objective] for app in chosen) / len(chosen)
            if chosen
            else max(row[objective] for row in pair_rows)
        )
        if best is None or score > best.score:
            best = Choice(retriever, reranker, score, chosen)
    if best is None:
        names = ", ".join(app.name for app in applications)
        raise BackboneError(
            f"no searched assignment fits every application's budget ({names}): widen k_range or "
            "latency_budget_ms, or search more budgets (search.k)"
        )
    return best


def _operating_point(app: Application, rows: list[Row], objective: str, retriever_only: Row) -> AppChoice | None:
    if not app.rerank:
        # Without reranking, K only bounds how many candidates exist; the ranking is the retriever's own.
        if _over_budget(app, retriever_only):
            return None
        k = min(max(app.top_n, app.k_range[0]), app.k_range[1]) if app.k_range else app.top_n
        return AppChoice(app.name, k, min(app.top_n, k), False, 1.0, retriever_only)
    allowed = [row for row in rows if _in_range(app, row["k"]) and not _over_budget(app, row)]
    if not allowed:
        return None
    row = max(allowed, key=lambda row: (row[objective], -row["k"], row["weight"]))
    deadline = rerank_deadline_s(app, row) if row["weight"] > 0 else None
    return AppChoice(
        app.name, row["k"], min(app.top_n, row["k"]), True, row["weight"], row, deadline, app.without_reranker
    )


def rerank_deadline_s(app: Application, row: Row) -> float:
    """The reranker's deadline at an operating point: what the latency budget leaves after retrieval, else
    ``RERANK_HEADROOM`` times the measured cost of reranking its K candidates (at least ``RERANK_FLOOR_S``).

    Args:
        app: the application (its ``latency_budget_ms``).
        row: the operating point's leaderboard row (``retriever_ms``, ``reranker_ms`` as the search measured them).

    Example:
        >>> row = {"retriever_ms": 20.0, "reranker_ms": 300.0}
        >>> rerank_deadline_s(Application(name="api", k_range=(5, 10)), row)
        1.2
        >>> rerank_deadline_s(Application(name="api", latency_budget_ms=800), row)
        0.78
    """
    if app.latency_budget_ms is not None:
        return round(max(app.latency_budget_ms - row["retriever_ms"], row["reranker_ms"]) / 1000, 3)
    return round(max(RERANK_FLOOR_S, RERANK_HEADROOM * row["reranker_ms"] / 1000), 3)


def _in_range(app: Application, k: int) -> bool:
    return app.k_range is None or app.k_range[0] <= k <= app.k_range[1]


def _over_budget(app: Application, row: Row) -> bool:
    return app.latency_budget_ms is not None and row["latency_ms"] > app.latency_budget_ms
