"""What a stage does with a reranker: load it, rank candidates, compute its pointwise, listwise or distillation loss,
evaluate it.

Mirrors ``retriever_task.py``; the stage loop (``loop.py``) drives either through the methods of ``StageTask``
(``task.py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sentence_transformers import CrossEncoder

from backbone.evaluation import evaluate, rerank
from backbone.models import add_lora, build_reranker, load_reranker, merge_lora, reranker_features, score_pairs
from backbone.progress import part
from backbone.recipes import LoraFinetune, Reranker, RerankerStage
from backbone.training.inputs import StageInputs
from backbone.training.negatives import QueryRanking
from backbone.training.query_rankings import candidate_rankings
from backbone.training.reranker_losses import distill_kl, listwise_ce, pointwise_bce
from backbone.training.sharding import sharded_map


class RerankerTask:
    """The reranker's side of a stage.

    Args:
        spec: the recipe's reranker section.
        stage: the stage being trained (``None`` when only evaluating the base model).
        metrics: the reranker metrics to evaluate (mrr@10, ndcg@10, ...).
        batch_size: scoring batch size.
        label: what this worker's progress lines call the stage (``"[reranker/refinement]"``); None shows none.
    """

    def __init__(
        self,
        spec: Reranker,
        stage: RerankerStage | None,
        metrics: list[str],
        batch_size: int = 32,
        label: str | None = None,
    ):
        self.spec = spec
        self.label = label
        self.stage = stage
        self.metrics = metrics
        self.batch_size = batch_size
        self.ddp_model: torch.nn.Module | None = None

    def build(self, path: str) -> CrossEncoder:
        """A new reranker from the base model at ``path`` (its first ``spec.layers`` layers and a seeded head)."""
        return build_reranker(self.spec, path)

    def load(self, path: str) -> CrossEncoder:
        """The reranker checkpoint a stage saved at ``path``."""
        return load_reranker(path, self.spec)

    def prepare(self, model: CrossEncoder, ddp_model: torch.nn.Module) -> None:
        """Remember the DDP wrapper: the forward pass must go through it for gradients to synchronise."""
        self.ddp_model = ddp_model

    def add_adapter(self, model: CrossEncoder, finetune: LoraFinetune) -> None:
        add_lora(model, finetune, self.spec.family)

    def merge_adapter(self, model: CrossEncoder) -> None:
        merge_lora(model)

    def score(self, model: CrossEncoder, queries: list[str], passages: list[str]) -> np.ndarray:
        """Scores of (query, passage) pairs, the scoring shared across the stage's workers."""
        pairs = list(zip(queries, passages, strict=True))
        return sharded_map(
            pairs,
            lambda chunk: score_pairs(
                model,
                self.spec,
                [q for q, _ in chunk],
                [p for _, p in chunk],
                batch_size=self.batch_size,
                progress=part(self.label, "score pairs"),
            ),
        )

    def rank(
        self,
        model: CrossEncoder,
        queries: list[str],
        inputs: StageInputs,
        depth: int,
        corpus_embeddings: np.ndarray | None = None,
    ) -> tuple[list[QueryRanking], None]:
        """Rank each training query's first-stage candidates (and its relevant documents) with the current model."""
        passage = dict(zip(inputs.corpus_ids, inputs.passages, strict=True))

        def score_indexed(pairs: list[tuple[int, str]]) -> np.ndarray:
            return self.score(model, [inputs.anchors[queries[q]] for q, _ in pairs], [passage[d] for _, d in pairs])

        candidates = [inputs.mining_candidates[query][:depth] for query in queries]
        relevant = [inputs.relevant[query] for query in queries]
        return candidate_rankings(candidates, relevant, score_indexed), None

    def loss(
        self,
        model: CrossEncoder,
        anchors: list[str],
        positives: list[str],
        negatives: list[list[str]] | None,
        teacher_scores: list[np.ndarray] | None = None,
    ) -> torch.Tensor:
        """The stage's loss (``reranker_losses.py``) over each query's positive and negatives.

        Args:
            model: the reranker (unwrapped; the forward pass goes through the DDP wrapper).
            anchors: this worker's queries.
            positives: each query's positive passage.
            negatives: each query's negative passages.
            teacher_scores: ``distill_kl`` only: the retriever's scores of each query's positive and negatives.
        """
        assert self.ddp_model is not None and self.stage is not None and negatives is not None
        width = 1 + max(len(docs) for docs in negatives)
        queries, passages, slots = [], [], []
        for row, (anchor, positive, docs) in enumerate(zip(anchors, positives, negatives, strict=True)):
            for column, passage in enumerate([positive, *docs]):
                queries.append(anchor)
                passages.append(passage)
                slots.append(row * width + column)
        scores = self.ddp_model(reranker_features(model, self.spec, queries, passages))["scores"].view(-1)
        index = (torch.tensor(slots, device=scores.device),)
        grid = torch.zeros(len(anchors) * width, device=scores.device, dtype=scores.dtype).index_put(index, scores)
        grid = grid.view(len(anchors), width)
        valid = torch.zeros(len(anchors) * width, dtype=torch.bool, device=scores.device)
        valid = valid.index_put(index, torch.tensor(True, device=scores.device)).view(len(anchors), width)
        if self.stage.loss == "bce":
            return pointwise_bce(grid, valid)
        if self.stage.loss == "listwise_ce":
            return listwise_ce(grid, valid)
        assert teacher_scores is not None, "distill_kl needs the retriever's scores of every pair"
        teacher = torch.zeros(len(anchors), width, device=scores.device, dtype=scores.dtype)
        for row, values in enumerate(teacher_scores):
            teacher[row, : len(values)] = torch.as_tensor(values, dtype=scores.dtype)
        return distill_kl(grid, teacher, valid, self.stage.teacher_temperature, self.stage.ce_weight)

    def evaluate(self, model: CrossEncoder, inputs: StageInputs, out_dir: Path) -> dict[str, float]:
        """Metrics on the evaluation split over the fixed first-stage candidate lists (BM25's or the retriever's)."""
        candidates = inputs.fixed_candidate_run()
        depth = max(len(docs) for docs in inputs.eval_candidates.values())
        run = rerank(
            candidates,
            lambda queries, passages: self.score(model, queries, passages),
            inputs.eval_queries,
            dict(zip(inputs.corpus_ids, inputs.passages, strict=True)),
            depth=depth,
            batch_size=len(candidates) * depth,  # one sharded call: every worker scores its share of all pairs
        )
        return evaluate(inputs.eval_qrels, run, self.metrics)
