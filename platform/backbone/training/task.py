"""What the stage loop asks of a component: the contract ``RetrieverTask`` and ``RerankerTask`` both keep.

The loop (``loop.py``) drives either task through these methods alone, except where a frozen document tower changes
the retriever's work (its shared index's ``documents`` and ``query_side_loss``), which it asks for by name. A new
component type is a new class with these methods, in a file beside the two.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import torch

from backbone.recipes import LoraFinetune
from backbone.training.inputs import StageInputs
from backbone.training.negatives import QueryRanking

Model = TypeVar("Model", bound=torch.nn.Module)


class StageTask(Protocol[Model]):
    """One component's side of a stage: build or load its model, rank, compute the loss, evaluate.

    Example:
        >>> task: StageTask[CrossEncoder] = RerankerTask(recipe.reranker, stage, ["mrr@10"])  # doctest: +SKIP
        >>> model = task.load("/registry/artifacts/checkpoint-.../files")  # doctest: +SKIP
    """

    spec: Any
    label: str | None
    ddp_model: torch.nn.Module | None

    def build(self, path: str) -> Model:
        """A model for the stage from a base model (a Hugging Face id or folder), shaped as the recipe says."""
        ...

    def load(self, path: str) -> Model:
        """A stage checkpoint (a folder) for further training or evaluation."""
        ...

    def prepare(self, model: Model, ddp_model: torch.nn.Module) -> None:
        """Route the loss's forward passes through ``ddp_model`` (the DDP wrapper of ``model``)."""
        ...

    def add_adapter(self, model: Model, finetune: LoraFinetune) -> None:
        """Put a LoRA adapter on ``model``; only it trains."""
        ...

    def merge_adapter(self, model: Model) -> None:
        """Merge the adapter into ``model``'s weights, so that the checkpoint loads without peft."""
        ...

    def rank(
        self,
        model: Model,
        queries: list[str],
        inputs: StageInputs,
        depth: int,
        corpus_embeddings: np.ndarray | None = None,
    ) -> tuple[list[QueryRanking], np.ndarray | None]:
        """Rank each query's candidates with the current model (mining); the corpus embeddings used, if any."""
        ...

    def loss(
        self,
        model: Model,
        anchors: list[str],
        positives: list[str],
        negatives: list[list[str]] | None,
        teacher_scores: list[np.ndarray] | None = None,
    ) -> torch.Tensor:
        """The stage's loss over this worker's share of the batch."""
        ...

    def evaluate(self, model: Model, inputs: StageInputs, out_dir: Path) -> dict[str, float]:
        """The stage's metrics on the evaluation queries; run files go to ``out_dir``."""
        ...
