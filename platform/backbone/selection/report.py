"""The search report: leaderboard (Parquet and Markdown), heatmap, recall-budget curves and a summary page."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from matplotlib.figure import Figure  # not pyplot: no global state, no display needed on a job's node

from backbone.registry import ReleaseRecord
from backbone.selection.choice import Choice
from backbone.selection.evidence import Work
from backbone.selection.search import Row, SearchSpace

LATENCY = ["retriever_ms", "reranker_ms", "latency_ms"]


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
    stage_tables: list[str] = field(default_factory=list)

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
    columns = ["retriever", "reranker", "k", *outcome.space.metrics, *LATENCY]
    pq.write_table(
        pa.table({column: [row[column] for row in outcome.rows] for column in columns}), folder / "leaderboard.parquet"
    )
    (folder / "leaderboard.md").write_text(
        f"# Leaderboard: {outcome.recipe}\n\n" + _table(outcome.rows, columns) + "\n", encoding="utf-8"
    )
    _heatmap(outcome, folder / "heatmap.png")
    _curves(outcome, folder / "curves.png")
    path = folder / "report.md"
    path.write_text(_summary(outcome), encoding="utf-8")
    return path


def _summary(outcome: SearchOutcome) -> str:
    space, choice = outcome.space, outcome.choice
    objective = space.objective
    labelled = [
        ("base models", outcome.best(stage="base")),
        ("best uniform", outcome.best(uniform=True)),
        ("best mixed", outcome.best(uniform=False)),
    ]
    comparison = [{"assignment": label, **row} for label, row in labelled if row is not None]
    columns = ["retriever", "reranker", "k", *space.metrics, *LATENCY]
    apps = [
        {
            "application": app.name,
            "k": app.k,
            "top_n": app.top_n,
            "rerank": app.rerank,
            objective: app.row[objective],
            "latency_ms": app.row["latency_ms"],
        }
        for app in choice.applications
    ]
    alone = [{"retriever": stage, **row} for stage, row in outcome.retriever_only.items()]
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
            f"retriever `{alone_best[0]}` alone {alone_best[1][objective]:.4f}. Applications that rerank get the "
            "best reranked assignment, as the recipe asks; set `rerank: false` for an application to serve the "
            "retriever's ranking.",
            "",
        ]
        if outcome.rows and alone_best[1][objective] > outcome.rows[0][objective]
        else []
    )
    lines = [
        f"# Stage-assignment search: {outcome.recipe}",
        "",
        f"Objective: end-to-end **{objective}** on the evaluation split (retrieve the top K, rerank them, score the "
        f"top 10). Searched {len(space.retriever_stages)} retriever stages x {len(space.reranker_stages)} reranker "
        f"stages x K in {space.k} ({space.algorithm}, {len(outcome.rows)} assignments). Model work in this run: "
        f"{outcome.work}.",
        "",
        f"**Chosen backbone:** retriever `{choice.retriever}` ({outcome.checkpoints['retriever'][choice.retriever]}), "
        f"reranker `{choice.reranker}` ({outcome.checkpoints['reranker'][choice.reranker]}); mean {objective} over "
        f"the applications {choice.score:.4f}. {release}",
        "",
        *reranking,
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
        "## End to end: mixed against uniform and base",
        "",
        _table(comparison, ["assignment", *columns]),
        "",
        "## Applications",
        "",
        _table(apps, ["application", "k", "top_n", "rerank", objective, "latency_ms"]) if apps else "None listed.",
        "",
        "## Each retriever alone (its own top 10, no reranking)",
        "",
        _table(alone, ["retriever", *space.metrics, "retriever_ms"]),
        "",
        f"![{objective} by stage pair](heatmap.png)",
        "",
        "![recall and budget curves](curves.png)",
        "",
        "Latency is per query: the retriever's measured time to embed a query and search the index, plus K times "
        "the reranker's measured time per pair, both measured in batches on the machine that gathered the "
        "evidence. The full leaderboard is in `leaderboard.md` and `leaderboard.parquet`.",
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
    if isinstance(value, float):
        return f"{value:.1f}" if column.endswith("_ms") else f"{value:.4f}"
    return "" if value is None else str(value)


def _heatmap(outcome: SearchOutcome, path: Path) -> None:
    """Retriever stage x reranker stage, each cell the best objective over K (the K in brackets)."""
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
                axes.text(
                    j,
                    i,
                    f"{best[(r, s)][space.objective]:.3f}\n(K={best[(r, s)]['k']})",
                    ha="center",
                    va="center",
                    color="black" if image.norm(best[(r, s)][space.objective]) > 0.5 else "white",
                    fontsize=8,
                )
    figure.colorbar(image, label=space.objective)
    axes.set_title(f"end-to-end {space.objective}: best over K")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def _curves(outcome: SearchOutcome, path: Path) -> None:
    """Left: each retriever's Recall@K against K. Right: the chosen pair's objective and latency against K."""
    space, choice = outcome.space, outcome.choice
    figure = Figure(figsize=(11, 4))
    recall, budget = figure.subplots(1, 2)
    for stage, curve in outcome.recall_curves.items():
        ks = sorted(curve)
        recall.plot(ks, [curve[k] for k in ks], marker=".", label=stage)
    recall.set_xlabel("K (candidates retrieved)")
    recall.set_ylabel("retriever Recall@K")
    recall.set_title("recall budget")
    recall.legend(title="retriever stage")
    chosen = sorted(
        (row for row in outcome.rows if (row["retriever"], row["reranker"]) == (choice.retriever, choice.reranker)),
        key=lambda row: row["k"],
    )
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
