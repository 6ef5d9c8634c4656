"""The search report: leaderboard (Parquet and Markdown), heatmap, recall-budget curves and a summary page."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from matplotlib.figure import Figure  # not pyplot: no global state, no display needed on a job's node

from backbone.registry import ReleaseRecord
from backbone.selection.assignment import Assignment
from backbone.selection.choice import Choice
from backbone.selection.evidence import Work
from backbone.selection.held_out import Reported
from backbone.selection.search import Row, SearchSpace

LATENCY = ["retriever_ms", "reranker_ms", "latency_ms"]
AXES = ["retriever", "reranker", "k", "weight"]


@dataclass(frozen=True)
class SearchOutcome:
    """Everything a search found, as the report shows it.

    Args:
        recipe: the recipe's name.
        space: what was searched.
        rows: the leaderboard, best first.
        retriever_only: retriever stage -> its own top-10 metrics and latency, without a reranker.
        recall_curves: retriever stage -> K -> Recall@K over the whole corpus.
        choice: the chosen backbone and every application's operating point.
        checkpoints: component -> stage -> checkpoint id.
        work: the model work the search did.
        release: the release written, if any.
        choice_split: the split every choice was made on (the selection split, else the evaluation split).
        eval_split: the evaluation split, on which the chosen, base and best uniform assignments are reported.
        reported: those assignments with their figures on both splits.
        held_out_retriever_only: retriever stage -> its own top-10 metrics on the evaluation split.
        stage_tables: each component's per-stage table (its own metrics, BM25 first), as Markdown.
    """

    recipe: str
    space: SearchSpace
    rows: list[Row]
    retriever_only: dict[str, Row]
    recall_curves: dict[str, dict[int, float]]
    choice: Choice
    checkpoints: dict[str, dict[str, str]]
    work: Work
    release: ReleaseRecord | None
    choice_split: str
    eval_split: str
    reported: list[Reported]
    held_out_retriever_only: dict[str, Row]
    stage_tables: list[str] = field(default_factory=list)

    @property
    def honest(self) -> bool:
        """Whether the reported figures come from queries no choice used."""
        return self.choice_split != self.eval_split

    def held_out_score(self) -> float:
        """The chosen backbone's mean objective over the applications on the evaluation split."""
        chosen = [item.held_out[self.space.objective] for item in self.reported if item.label.startswith("chosen")]
        return sum(chosen) / len(chosen)

    def best(self, uniform: bool | None = None, stage: str | None = None) -> Row | None:
        """The best row overall, among uniform (same stage) or mixed assignments, or of one stage pair."""
        for row in self.rows:
            same = row["retriever"] == row["reranker"]
            if (uniform is None or same == uniform) and (stage is None or row["retriever"] == row["reranker"] == stage):
                return row
        return None


def write_report(outcome: SearchOutcome, folder: Path) -> Path:
    """Write the report into ``folder`` and return the path of its summary page, ``report.md``.

    Example:
        >>> write_report(outcome, Path("reports/stard-mini"))  # doctest: +SKIP
        PosixPath('reports/stard-mini/report.md')
    """
    folder.mkdir(parents=True, exist_ok=True)
    held_out = _on(outcome, outcome.eval_split)
    scored = {_key(item.assignment): item.held_out[outcome.space.objective] for item in outcome.reported if item.rerank}
    board = [{**row, held_out: scored.get(_key(row))} for row in outcome.rows]
    columns = [*AXES, *outcome.space.metrics, *LATENCY]
    table = {column: [row[column] for row in board] for column in columns}
    table[f"held_out_{outcome.space.objective}"] = pa.array([row[held_out] for row in board], pa.float64())
    pq.write_table(pa.table(table), folder / "leaderboard.parquet")
    (folder / "leaderboard.md").write_text(
        f"# Leaderboard: {outcome.recipe}\n\n{_provenance(outcome)} Every assignment is scored on split "
        f"`{outcome.choice_split}`; the last column is split `{outcome.eval_split}`, for the assignments the report "
        "scores there.\n\n" + _table(board, [*columns, held_out]) + "\n",
        encoding="utf-8",
    )
    _heatmap(outcome, folder / "heatmap.png")
    _curves(outcome, folder / "curves.png")
    path = folder / "report.md"
    path.write_text(_summary(outcome), encoding="utf-8")
    return path


def _key(assignment: Assignment | Row) -> tuple[str, str, int, float]:
    if isinstance(assignment, Assignment):
        return assignment.retriever, assignment.reranker, assignment.k, assignment.weight
    return assignment["retriever"], assignment["reranker"], assignment["k"], assignment["weight"]


def _on(outcome: SearchOutcome, split: str, metric: str | None = None) -> str:
    """A column name: a metric (default the objective) on a split."""
    return f"{metric or outcome.space.objective} on {split}"


def _provenance(outcome: SearchOutcome) -> str:
    if outcome.honest:
        return (
            f"Every choice (stage pair, each application's K and weight) was made on split "
            f"`{outcome.choice_split}`, carved out of the training split; split `{outcome.eval_split}` was only "
            "reported."
        )
    return (
        f"**The figures are optimistic:** every choice was made on split `{outcome.choice_split}`, the split they "
        "are reported on (give the recipe a `dataset.selection` split to choose on queries of its own)."
    )


def _summary(outcome: SearchOutcome) -> str:
    space, choice = outcome.space, outcome.choice
    objective = space.objective
    chosen_on, held_out = _on(outcome, outcome.choice_split), _on(outcome, outcome.eval_split)
    labelled = [
        ("base models", outcome.best(stage="base")),
        ("best uniform", outcome.best(uniform=True)),
        ("best mixed", outcome.best(uniform=False)),
    ]
    comparison = [{"assignment": label, **row} for label, row in labelled if row is not None]
    columns = [*AXES, *space.metrics, *LATENCY]
    reported = {item.label: item for item in outcome.reported}
    apps = [
        {
            "application": app.name,
            "k": app.k,
            "weight": app.weight,
            "top_n": app.top_n,
            "rerank": app.rerank,
            chosen_on: app.row[objective],
            held_out: reported[f"chosen: {app.name}"].held_out[objective],
            "latency_ms": app.row["latency_ms"],
        }
        for app in choice.applications
    ]
    eval_metrics = [_on(outcome, outcome.eval_split, metric) for metric in space.metrics]
    figures = [
        {
            "assignment": item.label,
            **{axis: getattr(item.assignment, axis) for axis in AXES},
            "rerank": item.rerank,
            chosen_on: item.chosen_on[objective],
            **dict(zip(eval_metrics, (item.held_out[metric] for metric in space.metrics), strict=True)),
            "latency_ms": item.held_out["latency_ms"],
        }
        for item in outcome.reported
    ]
    alone = [
        {
            "retriever": stage,
            chosen_on: row[objective],
            **dict(
                zip(
                    eval_metrics,
                    (outcome.held_out_retriever_only[stage][metric] for metric in space.metrics),
                    strict=True,
                )
            ),
            "retriever_ms": row["retriever_ms"],
        }
        for stage, row in outcome.retriever_only.items()
    ]
    release = (
        f"Release **{outcome.release.name} v{outcome.release.version}** "
        f"(retriever {outcome.release.retriever.checkpoint}, index {outcome.release.retriever.index}, "
        f"reranker {outcome.release.reranker.checkpoint})."
        if outcome.release
        else "No release written."
    )
    alone_best = max(outcome.retriever_only.items(), key=lambda item: item[1][objective])
    reranking = (
        [
            f"**Reranking lowers {objective} here:** the best assignment scores {outcome.rows[0][objective]:.4f}, "
            f"retriever `{alone_best[0]}` alone {alone_best[1][objective]:.4f} (split `{outcome.choice_split}`). "
            "Applications that rerank get the best reranked assignment, as the recipe asks; set `rerank: false` "
            "for an application to serve the retriever's ranking, or search smaller `search.weights`.",
            "",
        ]
        if outcome.rows and alone_best[1][objective] > outcome.rows[0][objective]
        else []
    )
    lines = [
        f"# Stage-assignment search: {outcome.recipe}",
        "",
        f"Objective: end-to-end **{objective}** (retrieve the top K, order them by weight x the reranker's plus "
        f"(1 - weight) x the retriever's normalised score, score the top 10). Searched "
        f"{len(space.retriever_stages)} retriever stages x {len(space.reranker_stages)} reranker stages x K in "
        f"{space.k} x weight in {space.weights} ({space.algorithm}, {len(outcome.rows)} assignments) on split "
        f"`{outcome.choice_split}`. Model work in this run: {outcome.work}.",
        "",
        _provenance(outcome),
        "",
        f"**Chosen backbone:** retriever `{choice.retriever}` ({outcome.checkpoints['retriever'][choice.retriever]}), "
        f"reranker `{choice.reranker}` ({outcome.checkpoints['reranker'][choice.reranker]}); mean {objective} over "
        f"the applications {choice.score:.4f} on `{outcome.choice_split}` (chose), {outcome.held_out_score():.4f} "
        f"on `{outcome.eval_split}` (reported). {release}",
        "",
        *reranking,
        f"## Reported on split {outcome.eval_split}: chosen, base and best uniform",
        "",
        "Each application's chosen operating point, the base backbone at the same K and weight, and the best "
        f"uniform assignment of the leaderboard, scored on `{outcome.eval_split}`; the `{chosen_on}` column is "
        "the figure the choice saw.",
        "",
        _table(figures, ["assignment", *AXES, "rerank", chosen_on, *eval_metrics, "latency_ms"]),
        "",
        *(
            [
                "## Each component per stage",
                "",
                "Each on its own, as its stage was evaluated: the retriever over the "
                "whole corpus, the reranker over its fixed candidate lists (BM25's, or with `reranker.candidates: "
                "retriever` the untrained retriever's, whose own order is the `retriever order` row).",
                "",
            ]
            + [part for table in outcome.stage_tables for part in (table, "")]
            if outcome.stage_tables
            else []
        ),
        f"## End to end on split {outcome.choice_split}: mixed against uniform and base",
        "",
        _table(comparison, ["assignment", *columns]),
        "",
        "## Applications",
        "",
        _table(apps, ["application", "k", "weight", "top_n", "rerank", chosen_on, held_out, "latency_ms"])
        if apps
        else "None listed.",
        "",
        "## Each retriever alone (its own top 10, no reranking)",
        "",
        _table(alone, ["retriever", chosen_on, *eval_metrics, "retriever_ms"]),
        "",
        f"![{objective} by stage pair](heatmap.png)",
        "",
        "![recall and budget curves](curves.png)",
        "",
        "Latency is per query: the retriever's measured time to embed a query and search the index, plus K times "
        "the reranker's measured time per pair, both measured in batches on the machine that gathered the "
        f"evidence. The heatmap and the right-hand curves are on split `{outcome.choice_split}`, the recall curves "
        f"on `{outcome.eval_split}`. The full leaderboard is in `leaderboard.md` and `leaderboard.parquet`.",
        "",
    ]
    return "\n".join(lines)


def _table(rows: list[Row], columns: list[str]) -> str:
    lines = [f"| {' | '.join(columns)} |", f"| {' | '.join('---' for _ in columns)} |"]
    for row in rows:
        lines.append(f"| {' | '.join(_cell(row, column) for column in columns)} |")
    return "\n".join(lines)


def _cell(row: Row, column: str) -> str:
    value = row.get(column)
    if column == "weight" and isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, float):
        return f"{value:.1f}" if column.endswith("_ms") else f"{value:.4f}"
    return "" if value is None else str(value)


def _heatmap(outcome: SearchOutcome, path: Path) -> None:
    """Retriever stage x reranker stage, each cell the best objective over K and weight (both in brackets)."""
    space = outcome.space
    best: dict[tuple[str, str], Row] = {}
    for row in outcome.rows:
        key = (row["retriever"], row["reranker"])
        if key not in best or row[space.objective] > best[key][space.objective]:
            best[key] = row
    grid = [
        [best[(r, s)][space.objective] if (r, s) in best else float("nan") for s in space.reranker_stages]
        for r in space.retriever_stages
    ]
    figure = Figure(figsize=(1.6 * len(space.reranker_stages) + 2, 1.0 * len(space.retriever_stages) + 1.5))
    axes = figure.subplots()
    image = axes.imshow(grid, cmap="viridis", aspect="auto")
    axes.set_xticks(range(len(space.reranker_stages)), space.reranker_stages)
    axes.set_yticks(range(len(space.retriever_stages)), space.retriever_stages)
    axes.set_xlabel("reranker stage")
    axes.set_ylabel("retriever stage")
    for i, r in enumerate(space.retriever_stages):
        for j, s in enumerate(space.reranker_stages):
            if (r, s) in best:
                shade = np.asarray(image.norm(np.asarray(best[(r, s)][space.objective]))).item()  # 0 dark .. 1 light
                axes.text(
                    j,
                    i,
                    f"{best[(r, s)][space.objective]:.3f}\n(K={best[(r, s)]['k']}, w={best[(r, s)]['weight']:g})",
                    ha="center",
                    va="center",
                    color="black" if shade > 0.5 else "white",
                    fontsize=8,
                )
    figure.colorbar(image, label=space.objective)
    axes.set_title(f"end-to-end {space.objective} on {outcome.choice_split}: best over K and weight")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def _curves(outcome: SearchOutcome, path: Path) -> None:
    """Left: each retriever's Recall@K against K. Right: the chosen pair's objective (its best weight at each K)
    and latency against K."""
    space, choice = outcome.space, outcome.choice
    figure = Figure(figsize=(11, 4))
    recall, budget = figure.subplots(1, 2)
    for stage, curve in outcome.recall_curves.items():
        ks = sorted(curve)
        recall.plot(ks, [curve[k] for k in ks], marker=".", label=stage)
    recall.set_xlabel("K (candidates retrieved)")
    recall.set_ylabel("retriever Recall@K")
    recall.set_title(f"recall budget on {outcome.eval_split}")
    recall.legend(title="retriever stage")
    best_per_k: dict[int, Row] = {}
    for row in outcome.rows:  # best first, so the first row of each K is its best weight
        if (row["retriever"], row["reranker"]) == (choice.retriever, choice.reranker):
            best_per_k.setdefault(row["k"], row)
    chosen = [best_per_k[k] for k in sorted(best_per_k)]
    ks = [row["k"] for row in chosen]
    budget.plot(ks, [row[space.objective] for row in chosen], marker="o", color="tab:blue")
    budget.set_xlabel("K")
    budget.set_ylabel(f"end-to-end {space.objective}", color="tab:blue")
    latency = budget.twinx()
    latency.plot(ks, [row["latency_ms"] for row in chosen], marker="s", color="tab:red")
    latency.set_ylabel("latency per query (ms)", color="tab:red")
    budget.set_title(f"retriever {choice.retriever} + reranker {choice.reranker}")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
