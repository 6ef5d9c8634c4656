"""Each reranker checkpoint's score of each (query, document) pair the search needs, computed once ever.

Scores are registry artifacts (kind ``run``, lineage parent: the reranker checkpoint) holding a Parquet table of
``query_id, doc_id, score``. A call scores only the pairs that no earlier artifact of the same checkpoint, dataset
and split holds, and publishes just those: adding a retriever stage or a larger budget later costs only the new
pairs, and a repeated search costs nothing.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import torch

from backbone.models import load_reranker, score_pairs
from backbone.recipes import Reranker
from backbone.registry import ArtifactManifest, Lineage, Registry
from backbone.selection.inputs import SearchInputs

SCORES_FILE = "scores.parquet"
Pair = tuple[str, str]
"""A (query id, document id) pair."""


@dataclass(frozen=True)
class PairScores:
    """A reranker checkpoint's scores of (query id, document id) pairs.

    Args:
        checkpoint: the reranker checkpoint's id.
        scores: (query id, document id) -> raw score, higher is more relevant.
        ms_per_pair: measured scoring time per pair, in batches of 32 pairs.
        newly_scored: pairs this call scored (0: everything came from the registry).
    """

    checkpoint: str
    scores: dict[Pair, float]
    ms_per_pair: float
    newly_scored: int


def pair_scores(
    registry_uri: str, checkpoint: str, spec: Reranker, inputs: SearchInputs, pairs: list[Pair]
) -> PairScores:
    """Scores of ``pairs`` by ``checkpoint``: those already in the registry, the rest scored and published.

    Args:
        registry_uri: the registry holding the checkpoint (opened here: this runs as a Ray task).
        checkpoint: the reranker checkpoint's id.
        spec: the reranker's spec (prefixes and lengths).
        inputs: the evaluation queries and the corpus.
        pairs: the (query id, document id) pairs needed.

    Example:
        >>> pair_scores(registry.uri, checkpoint_id, recipe.reranker, inputs, [("q1", "d7")])  # doctest: +SKIP
    """
    registry = Registry(registry_uri)
    stored = _stored(registry, checkpoint, inputs)
    scores: dict[Pair, float] = {}
    timings: list[tuple[int, float]] = []
    for manifest in stored:
        table = pq.read_table(registry.materialize(manifest.id) / SCORES_FILE).to_pydict()
        scores.update(zip(zip(table["query_id"], table["doc_id"], strict=True), table["score"], strict=True))
        timings.append((int(manifest.metrics["pairs"]), manifest.metrics["seconds"]))
    missing = sorted(set(pairs) - scores.keys())
    if missing:
        seconds = _score_and_publish(registry, checkpoint, spec, inputs, missing, scores)
        timings.append((len(missing), seconds))
    total_pairs = sum(count for count, _ in timings)
    ms_per_pair = 1000 * sum(seconds for _, seconds in timings) / total_pairs if total_pairs else 0.0
    return PairScores(checkpoint, scores, ms_per_pair, len(missing))


def _stored(registry: Registry, checkpoint: str, inputs: SearchInputs) -> list[ArtifactManifest]:
    wanted = {"role": "pair-scores", "checkpoint": checkpoint, "split": inputs.split}
    return [
        manifest
        for manifest in registry.list("run")
        if manifest.lineage.dataset_checksum == inputs.data
        and all(manifest.params.get(field) == value for field, value in wanted.items())
    ]


def _score_and_publish(
    registry: Registry,
    checkpoint: str,
    spec: Reranker,
    inputs: SearchInputs,
    missing: list[Pair],
    scores: dict[Pair, float],
) -> float:
    """Score ``missing`` into ``scores``, publish them, and return the seconds the scoring took."""
    torch.set_num_threads(1)  # one Ray CPU per task
    model = load_reranker(str(registry.materialize(checkpoint)), spec)
    position = {doc: index for index, doc in enumerate(inputs.corpus_ids)}
    query, doc = missing[0]
    score_pairs(model, spec, [inputs.queries[query]], [inputs.reranker_passages[position[doc]]])  # warm-up
    label = f"score pairs ({registry.get(checkpoint).name}, {inputs.split})"
    started = time.perf_counter()
    new = score_pairs(
        model,
        spec,
        [inputs.queries[query] for query, _ in missing],
        [inputs.reranker_passages[position[doc]] for _, doc in missing],
        progress=label,
    ).tolist()
    seconds = time.perf_counter() - started
    scores.update(zip(missing, new, strict=True))
    table = pa.table(
        {
            "query_id": [query for query, _ in missing],
            "doc_id": [doc for _, doc in missing],
            "score": pa.array(new, type=pa.float64()),
        }
    )
    with tempfile.TemporaryDirectory() as folder:
        pq.write_table(table, Path(folder) / SCORES_FILE)
        registry.publish(
            "run",
            folder,
            name=f"pair-scores/{inputs.split}",
            lineage=Lineage(parents=[checkpoint], dataset_checksum=inputs.data),
            metrics={"pairs": len(missing), "seconds": seconds},
            params={"role": "pair-scores", "checkpoint": checkpoint, "split": inputs.split},
        )
    return seconds
