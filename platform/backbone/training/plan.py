"""The part of a stage that is settings, not data: what the stage loop on every worker is told to do."""

from __future__ import annotations

from dataclasses import dataclass

from backbone.component_name import ComponentName
from backbone.recipes import Reranker, RerankerStage, Retriever, RetrieverStage
from backbone.recipes.inference import PrecisionSetting


@dataclass(frozen=True)
class StagePlan:
    """One stage of one component, as the workers run it.

    Args:
        component: ``retriever`` or ``reranker``.
        spec: the recipe's section for that component.
        stage: the stage to train; ``None`` evaluates the starting model and saves it as is (the ``base`` entry).
        init_path: the local folder of the checkpoint the stage starts from, or of the base model.
        from_base_model: whether ``init_path`` is the base model, which the task builds into a new component
            (``task.build``: the recipe's pooling and prompts, a reranker's first ``layers`` and seeded head), rather
            than a stage's checkpoint (``task.load``). A base model that is itself a sentence-transformers folder
            is still a base model.
        metrics: the component's evaluation metrics.
        seed: seed of sampling, shuffling and initialisation.
        threads: torch threads per worker.
        train_precision: precision of the training steps' forward passes (``resources.train_precision``).
        log_interval_s: at most one progress line per this many seconds (plus each epoch's first and last step).
        start_index: retriever only: the registry URI and id of the corpus index serving the starting checkpoint
            (``find_index``), whose embeddings the first ranking reuses instead of encoding the corpus again; with
            ``document_encoder: frozen`` the whole stage (ranking, re-mining, loss, evaluation) reads it.
    """

    component: ComponentName
    spec: Retriever | Reranker
    stage: RetrieverStage | RerankerStage | None
    init_path: str
    from_base_model: bool
    metrics: list[str]
    seed: int
    threads: int = 1
    train_precision: PrecisionSetting = "fp32"
    log_interval_s: float = 10.0
    start_index: tuple[str, str] | None = None

    @property
    def label(self) -> str:
        """``component/stage``, e.g. ``retriever/refinement``."""
        return f"{self.component}/{self.stage.name if self.stage else 'base'}"
