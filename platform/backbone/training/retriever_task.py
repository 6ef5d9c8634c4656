"""What a stage does with a retriever: load it, rank the corpus, compute the contrastive loss, evaluate it.

Mirrors ``reranker_task.py``; the stage loop (``loop.py``) drives either through the methods of ``StageTask``
(``task.py``). With ``document_encoder: frozen`` the loop also gives the task the shared index's passage embeddings
(``documents``): ranking, re-mining and evaluation then encode only queries, and
:meth:`RetrieverTask.query_side_loss` replaces :meth:`RetrieverTask.loss`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

from backbone.evaluation import DenseIndex, deepest_cutoff, evaluate
from backbone.models import (
    add_lora,
    build_retriever,
    encode_passages,
    encode_queries,
    load_retriever,
    merge_lora,
    retriever_features,
)
from backbone.progress import part
from backbone.recipes import LoraFinetune, Retriever, RetrieverStage
from backbone.training.inputs import StageInputs
from backbone.training.negatives import QueryRanking
from backbone.training.query_rankings import dense_rankings
from backbone.training.query_side import Candidates, query_side_infonce
from backbone.training.sharding import sharded_map


class RetrieverTask:
    """The retriever's side of a stage.

    Args:
        spec: the recipe's retriever section.
        stage: the stage being trained (``None`` when only evaluating the base model).
        metrics: the retriever metrics to evaluate (recall@K, ndcg@10, ...).
        batch_size: encoding batch size.
        label: what this worker's progress lines call the stage (``"[retriever/refinement]"``); None shows none.
    """

    def __init__(
        self,
        spec: Retriever,
        stage: RetrieverStage | None,
        metrics: list[str],
        batch_size: int = 32,
        label: str | None = None,
    ):
        self.spec = spec
        self.label = label
        self.stage = stage
        self.metrics = metrics
        self.batch_size = batch_size
        self.loss_fn: MultipleNegativesRankingLoss | None = None
        self.ddp_model: torch.nn.Module | None = None
        self.corpus_encodings = 0  # times this task encoded the whole corpus (a stage metric)
        # A frozen document tower's corpus embeddings (the shared index's vectors), fixed for the whole stage.
        self.documents: np.ndarray | None = None

    def build(self, path: str) -> SentenceTransformer:
        """A new retriever from the base model at ``path`` (the recipe's pooling, prompts and towers)."""
        return build_retriever(self.spec, path)

    def load(self, path: str) -> SentenceTransformer:
        """The retriever checkpoint a stage saved at ``path``."""
        return load_retriever(path, self.spec)

    def prepare(self, model: SentenceTransformer, ddp_model: torch.nn.Module) -> None:
        """Set up the loss around the (DDP-wrapped) model.

        sentence-transformers' losses keep the model they were built with; pointing the loss at the DDP wrapper is
        what makes gradients synchronise (a loss built on the bare model runs backward outside DDP, and every worker
        silently trains its own copy), and the gather makes every query see the global batch.
        """
        assert self.stage is not None
        self.loss_fn = MultipleNegativesRankingLoss(
            model, scale=1.0 / self.stage.temperature, gather_across_devices=True
        )
        self.loss_fn.model = ddp_model  # type: ignore[assignment]  # the DDP wrapper stands in for the model
        self.ddp_model = ddp_model

    def add_adapter(self, model: SentenceTransformer, finetune: LoraFinetune) -> None:
        add_lora(model, finetune, self.spec.family)

    def merge_adapter(self, model: SentenceTransformer) -> None:
        merge_lora(model)

    def encode_corpus(self, model: SentenceTransformer, inputs: StageInputs) -> np.ndarray:
        """Every passage's embedding, the encoding shared across the stage's workers."""
        self.corpus_encodings += 1
        return sharded_map(
            inputs.passages,
            lambda texts: encode_passages(
                model, self.spec, texts, batch_size=self.batch_size, progress=part(self.label, "encode corpus")
            ),
        )

    def rank(
        self,
        model: SentenceTransformer,
        queries: list[str],
        inputs: StageInputs,
        depth: int,
        corpus_embeddings: np.ndarray | None = None,
    ) -> tuple[list[QueryRanking], np.ndarray]:
        """Rank the whole corpus for each training query; returns the rankings and the corpus embeddings used."""
        if corpus_embeddings is None:
            corpus_embeddings = self.documents if self.documents is not None else self.encode_corpus(model, inputs)
        texts = [inputs.anchors[query] for query in queries]
        query_embeddings = sharded_map(
            texts,
            lambda chunk: encode_queries(
                model, self.spec, chunk, batch_size=self.batch_size, progress=part(self.label, "encode queries")
            ),
        )
        relevant = [inputs.relevant[query] for query in queries]
        return dense_rankings(
            query_embeddings, corpus_embeddings, inputs.corpus_ids, relevant, depth
        ), corpus_embeddings

    def loss(
        self,
        model: SentenceTransformer,
        anchors: list[str],
        positives: list[str],
        negatives: list[list[str]] | None,
        teacher_scores: list[np.ndarray] | None = None,
    ) -> torch.Tensor:
        """InfoNCE over this worker's share of the batch; candidates are gathered from every worker.

        ``teacher_scores`` is the reranker's (distillation); a retriever stage learns from labels and gets none.
        """
        assert self.loss_fn is not None and teacher_scores is None
        columns = [retriever_features(model, self.spec, anchors, "query")]
        columns.append(retriever_features(model, self.spec, positives, "passage"))
        for column in zip(*negatives, strict=True) if negatives else ():
            columns.append(retriever_features(model, self.spec, list(column), "passage"))
        return self.loss_fn(columns, labels=None)

    def query_side_loss(
        self, model: SentenceTransformer, anchors: list[str], candidates: Candidates, start: int
    ) -> torch.Tensor:
        """InfoNCE of this worker's queries (the global batch's from ``start`` on) against ``documents`` rows.

        Args:
            model: the retriever (unwrapped, for tokenizing); the forward pass goes through the DDP wrapper.
            anchors: this worker's query texts.
            candidates: the global batch's candidates (see ``query_side.py``).
            start: the position of this worker's first query in the global batch.
        """
        documents = self.documents
        assert self.stage is not None and self.ddp_model is not None and documents is not None
        queries = self.ddp_model(retriever_features(model, self.spec, anchors, "query"))["sentence_embedding"]
        mine = slice(start, start + len(anchors))
        return query_side_infonce(
            queries,
            torch.from_numpy(documents if candidates.rows is None else documents[candidates.rows]).to(queries.device),
            torch.tensor(candidates.own[mine], device=queries.device),
            torch.from_numpy(candidates.masked[mine]).to(queries.device),
            self.stage.temperature,
        )

    def evaluate(self, model: SentenceTransformer, inputs: StageInputs, out_dir: Path) -> dict[str, float]:
        """Metrics on the evaluation split over the whole corpus.

        The corpus is encoded and its index written to ``out_dir/index``, unless the task holds ``documents`` (a
        frozen document tower's shared index): then only the queries are encoded and no index is written.
        """
        fixed = self.documents is not None
        documents = self.documents if self.documents is not None else self.encode_corpus(model, inputs)
        index = DenseIndex.build(inputs.corpus_ids, documents)
        query_ids = list(inputs.eval_queries)
        query_embeddings = sharded_map(
            [inputs.eval_queries[query] for query in query_ids],
            lambda chunk: encode_queries(model, self.spec, chunk, batch_size=self.batch_size),
        )
        depth = deepest_cutoff(self.metrics)
        run = index.search(query_ids, query_embeddings, depth)
        if not fixed:
            index.save(out_dir / "index")
        return evaluate(inputs.eval_qrels, run, self.metrics)
