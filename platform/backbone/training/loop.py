"""The stage loop that every Ray Train worker runs: select examples, mine negatives, train, checkpoint, evaluate.

One loop serves both components through a task object (``RetrieverTask`` or ``RerankerTask``, each a ``StageTask``,
``task.py``). Every worker holds the same examples and computes the same selection, negatives and batches (the model
work behind them is sharded, see ``sharding.py``); each global batch is split into one contiguous share per worker.
No global batch holds two examples that would be each other's false negatives (``batches.py``).

Checkpoints: at the end of every epoch rank 0 saves the model (with any LoRA adapter merged into a copy, so a
checkpoint always loads without peft) and ``state.json`` (epochs done, steps, the selected examples). A restarted
worker group resumes from the latest one with a fresh optimizer; learning rates follow the global step, so the
schedule carries on where it was.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import random
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import ray.train
import torch
import torch.distributed as dist
from ray.train.torch import prepare_model
from tqdm import tqdm

from backbone.evaluation import DenseIndex
from backbone.models.precision import Precision, computing_in, resolve_precision
from backbone.recipes import LoraFinetune, RerankerStage, Retriever, RetrieverStage, Stage
from backbone.registry import Registry
from backbone.training.batches import conflict_free_batches, shuffled_batches
from backbone.training.inputs import StageInputs
from backbone.training.negatives import (
    NegativeChoice,
    NegativeCounts,
    QueryRanking,
    choose_negatives,
    in_batch_negatives,
    keeps_query,
)
from backbone.training.plan import StagePlan
from backbone.training.query_side import batch_candidates, corpus_candidates
from backbone.training.reranker_task import RerankerTask
from backbone.training.retriever_task import RetrieverTask
from backbone.training.task import StageTask

log = logging.getLogger(__name__)

Task = StageTask[Any]
"""A stage's task. The loop is the same for both components: it hands the task's own model (a SentenceTransformer or
a CrossEncoder, typed ``Any`` here) back to the task's methods and never looks inside it."""


@dataclasses.dataclass
class LoopState:
    """What a stage's workers have done so far, saved as ``state.json`` beside each epoch's model for a restart.

    Example:
        >>> LoopState.from_json(LoopState(epochs_done=1, steps=12).to_json()).steps
        12
    """

    epochs_done: int = 0
    steps: int = 0
    selected: list[int] | None = None  # the examples the stage trains on, chosen once before its first epoch
    train_seconds: float = 0.0
    examples_seen: int = 0
    restarts: int = 0
    left_out: int = 0  # examples the batches left out, over all epochs
    negatives: NegativeCounts = dataclasses.field(default_factory=NegativeCounts)  # over all epochs
    last_epoch_loss: float | None = None  # None until an epoch has trained a batch
    finished: bool = False  # set in the checkpoint saved after the evaluation

    def to_json(self) -> str:
        """The state as ``state.json`` holds it."""
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> LoopState:
        """The state ``to_json`` wrote."""
        fields = json.loads(text)
        return cls(**{**fields, "negatives": NegativeCounts(**fields["negatives"])})


def make_task(plan: StagePlan) -> Task:
    """The task object of the plan's component; rank 0's shows progress lines for its long model passes."""
    label = f"[{plan.label}]" if _rank_and_world()[0] == 0 else None
    if isinstance(plan.spec, Retriever):
        assert plan.stage is None or isinstance(plan.stage, RetrieverStage)
        return RetrieverTask(plan.spec, plan.stage, plan.metrics, label=label)
    assert plan.stage is None or isinstance(plan.stage, RerankerStage)
    return RerankerTask(plan.spec, plan.stage, plan.metrics, label=label)


def train_stage(config: dict[str, Any]) -> None:
    """``train_loop_per_worker`` of a stage's TorchTrainer; ``config`` holds ``plan`` and ``inputs``."""
    plan: StagePlan = config["plan"]
    inputs: StageInputs = config["inputs"]
    torch.set_num_threads(plan.threads)
    torch.manual_seed(plan.seed)
    task = make_task(plan)
    state = LoopState()
    resume = ray.train.get_checkpoint()
    if resume is None:
        model = task.build(plan.init_path) if plan.from_base_model else task.load(plan.init_path)
    else:
        with resume.as_directory() as folder:
            model = task.load(str(Path(folder) / "model"))
            state = LoopState.from_json((Path(folder) / "state.json").read_text())
        state.restarts += 1
        _log(plan, f"resumed after epoch {state.epochs_done} (step {state.steps})")
    stage = plan.stage
    if stage is not None and isinstance(task, RetrieverTask) and task.spec.document_encoder == "frozen":
        task.documents = _shared_documents(plan, task, model, inputs)
    if stage is not None and state.epochs_done < stage.epochs:
        _train(plan, stage, task, model, inputs, state)
    _finish(plan, task, model, inputs, state)


def _train(plan: StagePlan, stage: Stage, task: Task, model: Any, inputs: StageInputs, state: LoopState) -> None:
    lora = stage.finetune if isinstance(stage.finetune, LoraFinetune) else None
    if lora:
        task.add_adapter(model, lora)
    ddp_model = prepare_model(model, parallel_strategy_kwargs={"find_unused_parameters": False})
    task.prepare(model, ddp_model)
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=stage.learning_rate)
    rank, world = _rank_and_world()

    corpus_embeddings = _start_embeddings(plan, inputs) if state.epochs_done == 0 else None
    rankings: dict[str, QueryRanking] = {}
    if state.selected is None:
        if stage.data.queries.mode != "all":  # selection needs every query ranked; otherwise rank only the kept
            everything = range(len(inputs.example_queries))
            rankings, corpus_embeddings = _rank(task, model, stage, inputs, everything, corpus_embeddings)
        state.selected = _select(plan, stage, inputs, rankings)
    selected = state.selected
    # Fewer examples than one batch still train, in one smaller batch that splits evenly across the workers.
    global_batch = min(stage.batch_size, len(selected) // world * world)
    if not global_batch:
        _log(plan, f"no examples left to train on ({len(selected)} selected); the stage keeps its starting model")
        return
    # The schedule is planned for full epochs; an epoch whose conflicts leave examples out takes fewer steps.
    total_steps = len(selected) // global_batch * stage.epochs
    per_worker = global_batch // world
    progress = _Progress(plan)
    device = next(model.parameters()).device
    precision = resolve_precision(plan.train_precision, device)
    if precision != "fp32":
        _log(plan, f"training steps run their forward passes in {precision}")

    for epoch in range(state.epochs_done, stage.epochs):
        rng = random.Random(f"{plan.seed}:{plan.label}:{epoch}")
        rankings, corpus_embeddings, negatives = epoch_negatives(
            task, model, stage, inputs, selected, epoch, rankings, corpus_embeddings, rng
        )
        # A query-side loss masks every candidate judged relevant to a query, so nothing conflicts there; elsewhere
        # a positive or mined negative judged relevant to another query of the batch is a false negative.
        masked = isinstance(task, RetrieverTask) and task.documents is not None
        if masked:
            dealt = shuffled_batches(selected, global_batch, rng)
        else:
            dealt = conflict_free_batches(
                selected,
                inputs.example_queries,
                {index: [inputs.example_positives[index], *_documents(negatives.get(index))] for index in selected},
                inputs.relevant,
                global_batch,
                rng,
            )
        steps_per_epoch = len(dealt.batches)
        state.left_out += len(dealt.left_out)
        summary = f"epoch {epoch + 1}/{stage.epochs}: {steps_per_epoch} batches of {global_batch}, "
        why = "the partial last batch" if masked else "a conflict with every batch, or a partial batch"
        summary += f"{len(dealt.left_out)} examples left out ({why})"
        if negatives:
            counts = NegativeCounts.of(negatives.values())
            state.negatives += counts
            summary += f"; negatives: {counts.describe()}"
        _log(plan, summary)
        model.train()
        started, epoch_losses = time.perf_counter(), []
        for step, batch in enumerate(dealt.batches):
            for group in optimizer.param_groups:
                group["lr"] = _learning_rate(stage, state.steps, total_steps)
            loss = train_step(
                partial(_loss, task, model, stage, inputs, batch, negatives, rank * per_worker, per_worker),
                trainable,
                optimizer,
                precision,
                device,
            )
            state.steps += 1
            state.examples_seen += len(batch)
            epoch_losses.append(loss)
            elapsed = time.perf_counter() - started
            if progress.due(step, steps_per_epoch):
                _log(
                    plan,
                    f"epoch {epoch + 1}/{stage.epochs} step {step + 1}/{steps_per_epoch} loss {epoch_losses[-1]:.4f} "
                    f"{(step + 1) * len(batch) / elapsed:.2f} examples/s, "
                    f"{tqdm.format_interval(elapsed / (step + 1) * (steps_per_epoch - step - 1))} left in the epoch",
                )
        state.train_seconds += time.perf_counter() - started
        state.epochs_done = epoch + 1
        epoch_metrics: dict[str, float] = {"epoch": epoch + 1}
        if epoch_losses:  # an epoch whose examples all conflicted trained no batch, and has no loss
            state.last_epoch_loss = epoch_metrics["loss"] = float(np.mean(epoch_losses))
        with tempfile.TemporaryDirectory() as folder:
            _save_and_report(task, model, state, epoch_metrics, Path(folder), lora=lora)
    if lora:
        task.merge_adapter(model)


def train_step(
    forward: Callable[[], torch.Tensor],
    trainable: list[torch.nn.Parameter],
    optimizer: torch.optim.Optimizer,
    precision: Precision,
    device: torch.device,
) -> float:
    """One optimizer step, as every stage takes it: the loss, its gradients, the update; the loss's mean over workers.

    Args:
        forward: computes this worker's loss of the step (its share of the global batch).
        trainable: the parameters the optimizer updates; their gradient norm is clipped to 1.0.
        optimizer: the stage's optimizer.
        precision: ``"fp32"``, or ``"bf16"`` for the forward pass under autocast (``models.precision``).
        device: where the model is.

    Returns:
        The loss averaged across the workers (an all-reduce every step, as DDP's gradients have).

    Example:
        >>> train_step(partial(task.loss, model, queries, passages, None), params, adamw, "fp32", cpu)  # doctest: +SKIP
        2.0794
    """
    with computing_in(precision, device):
        loss = forward()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(trainable, 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return _mean_across_workers(loss.detach())


def _finish(plan: StagePlan, task: Task, model: Any, inputs: StageInputs, state: LoopState) -> None:
    model.eval()
    with torch.no_grad(), tempfile.TemporaryDirectory() as folder:
        metrics = task.evaluate(model, inputs, Path(folder))
        _log(plan, "evaluation " + " ".join(f"{name} {value:.4f}" for name, value in metrics.items()))
        summary = {
            **metrics,
            "examples": len(state.selected or []),
            "steps": state.steps,
            "restarts": state.restarts,
            "train_seconds": state.train_seconds,
            "examples_per_s": state.examples_seen / state.train_seconds if state.train_seconds else 0.0,
        }
        if isinstance(task, RetrieverTask):
            summary["corpus_encodings"] = task.corpus_encodings
        if plan.stage is not None:  # what the batches left out and where the negatives came from, over all epochs
            summary["examples_left_out"] = state.left_out
            if plan.stage.negatives.policy != "in_batch":
                summary.update(state.negatives.metrics())
        if state.last_epoch_loss is not None:
            summary["loss"] = state.last_epoch_loss
        _save_and_report(task, model, dataclasses.replace(state, finished=True), summary, Path(folder))


def _save_and_report(
    task: Task,
    model: Any,
    state: LoopState,
    metrics: dict[str, float],
    folder: Path,
    *,
    lora: LoraFinetune | None = None,
) -> None:
    """Report ``metrics``; rank 0 attaches ``folder`` as the checkpoint, with ``model/`` and ``state.json`` added.

    ``report()`` is a barrier: every worker must call it, or the others wait forever; only rank 0 attaches a
    checkpoint, so the stage publishes one copy, not one per worker.
    """
    if _rank_and_world()[0] != 0:
        ray.train.report(metrics)
        return
    saved = model
    if lora:
        saved = copy.deepcopy(model)
        task.merge_adapter(saved)
    saved.save_pretrained(str(folder / "model"))
    (folder / "state.json").write_text(state.to_json())
    ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(str(folder)))


def _rank(
    task: Task,
    model: Any,
    stage: Stage,
    inputs: StageInputs,
    examples: Any,
    corpus_embeddings: np.ndarray | None = None,
) -> tuple[dict[str, QueryRanking], np.ndarray | None]:
    if stage.negatives.policy == "in_batch" and stage.data.queries.mode == "all":
        return {}, corpus_embeddings
    queries = sorted({inputs.example_queries[i] for i in examples})
    depth = max(stage.negatives.rank_range[1], stage.data.queries.rank_threshold)
    model.eval()
    with torch.no_grad():
        rankings, corpus_embeddings = task.rank(model, queries, inputs, depth, corpus_embeddings)
    return dict(zip(queries, rankings, strict=True)), corpus_embeddings


def _loss(
    task: Task,
    model: Any,
    stage: Stage,
    inputs: StageInputs,
    batch: list[int],
    negatives: dict[int, NegativeChoice],
    start: int,
    size: int,
) -> torch.Tensor:
    """This worker's loss on its share ``batch[start:start + size]`` of the global batch."""
    mine = batch[start : start + size]
    anchors = [inputs.anchors[inputs.example_queries[i]] for i in mine]
    if isinstance(task, RetrieverTask) and task.documents is not None:
        # A frozen document tower: passages are rows of the shared index, scored without a forward pass.
        positives = [inputs.example_positives[i] for i in batch]
        relevant = [inputs.relevant[inputs.example_queries[i]] for i in batch]
        if isinstance(stage, RetrieverStage) and stage.contrast == "corpus":
            candidates = corpus_candidates(positives, relevant, inputs.position)
        else:
            candidates = batch_candidates(
                positives, [_documents(negatives.get(i)) for i in batch], relevant, inputs.position
            )
        return task.query_side_loss(model, anchors, candidates, start)
    negative_ids = _batch_negatives(stage, inputs, batch, negatives, start, size)
    return task.loss(
        model,
        anchors,
        [_passage(inputs, inputs.example_positives[i]) for i in mine],
        None if negative_ids is None else [[_passage(inputs, doc) for doc in row] for row in negative_ids],
        _teacher_scores(inputs, mine, negative_ids),
    )


def _shared_documents(plan: StagePlan, task: RetrieverTask, model: Any, inputs: StageInputs) -> np.ndarray:
    """A query-side stage's passage embeddings: the shared corpus index, encoded here only if none matches."""
    found = _start_embeddings(plan, inputs)
    return found if found is not None else task.encode_corpus(model, inputs)


def _start_embeddings(plan: StagePlan, inputs: StageInputs) -> np.ndarray | None:
    # The starting checkpoint's index holds exactly the corpus embeddings the first ranking needs.
    if plan.start_index is None:
        return None
    registry_uri, index_id = plan.start_index
    index = DenseIndex.load(Registry(registry_uri).materialize(index_id))
    return index.vectors() if index.doc_ids == inputs.corpus_ids else None


def _select(plan: StagePlan, stage: Stage, inputs: StageInputs, rankings: dict[str, QueryRanking]) -> list[int]:
    kept = [
        index
        for index, query in enumerate(inputs.example_queries)
        if stage.data.queries.mode == "all"
        or keeps_query(rankings[query], inputs.example_positives[index], stage.data.queries)
    ]
    cap = stage.data.max_examples
    if cap is not None and len(kept) > cap:
        kept = sorted(random.Random(f"{plan.seed}:{plan.label}:examples").sample(kept, cap))
    _log(plan, f"{len(kept)} of {len(inputs.example_queries)} examples selected ({stage.data.queries.mode})")
    return kept


def epoch_negatives(
    task: Task,
    model: Any,
    stage: Stage,
    inputs: StageInputs,
    selected: list[int],
    epoch: int,
    rankings: dict[str, QueryRanking],
    corpus_embeddings: np.ndarray | None,
    rng: random.Random,
) -> tuple[dict[str, QueryRanking], np.ndarray | None, dict[int, NegativeChoice]]:
    """The negatives of one epoch, with the rankings they were mined from and the corpus embeddings those used.

    ``remined`` ranks again with the current model before every epoch (the first reuses the rankings that query
    selection made, if any); ``mined`` ranks once, with the model the stage starts from (or resumes with), and
    later epochs draw only their random share anew; ``in_batch`` mines nothing.

    Args:
        task: the component's task.
        model: the model as it is now (after ``epoch`` epochs of training).
        stage: the stage.
        inputs: the stage's data.
        selected: the selected examples.
        epoch: the epoch about to start (0-based).
        rankings: the rankings made so far in this run (empty if none).
        corpus_embeddings: corpus embeddings of the starting model, if already computed.
        rng: the epoch's seeded generator.

    Example:
        >>> mined = epoch_negatives(task, model, stage, inputs, [0, 1], 1, rankings, None, rng)  # doctest: +SKIP
        >>> rankings, corpus_embeddings, negatives = mined  # doctest: +SKIP
    """
    if stage.negatives.policy == "remined" and (epoch > 0 or not rankings):
        rankings, corpus_embeddings = _rank(task, model, stage, inputs, selected, corpus_embeddings=None)
    elif stage.negatives.policy == "mined" and not rankings:
        rankings, corpus_embeddings = _rank(task, model, stage, inputs, selected, corpus_embeddings)
    return rankings, corpus_embeddings, _negatives(stage, inputs, selected, rankings, rng)


def _negatives(
    stage: Stage, inputs: StageInputs, selected: list[int], rankings: dict[str, QueryRanking], rng: random.Random
) -> dict[int, NegativeChoice]:
    if stage.negatives.policy == "in_batch":
        return {}
    return {
        index: choose_negatives(
            rankings[inputs.example_queries[index]],
            inputs.example_positives[index],
            stage.negatives,
            inputs.corpus_ids,
            rng,
        )
        for index in selected
    }


def _documents(choice: NegativeChoice | None) -> list[str]:
    return choice.documents if choice else []


def _batch_negatives(
    stage: Stage, inputs: StageInputs, batch: list[int], mined: dict[int, NegativeChoice], start: int, size: int
) -> list[list[str]] | None:
    if stage.negatives.policy != "in_batch":
        docs = [mined[index].documents for index in batch[start : start + size]]
    elif stage.negatives.count:
        positives = [inputs.example_positives[index] for index in batch]
        relevant = [inputs.relevant[inputs.example_queries[index]] for index in batch]
        docs = in_batch_negatives(positives, relevant, stage.negatives.count)[start : start + size]
    else:
        return None  # the retriever's in-batch negatives are the gathered batch itself
    return docs


def _teacher_scores(
    inputs: StageInputs, examples: list[int], negatives: list[list[str]] | None
) -> list[np.ndarray] | None:
    """The retriever's scores of each example's positive and negatives, for a distillation stage (else ``None``)."""
    if inputs.teacher is None or negatives is None:
        return None
    return [
        inputs.teacher.of(
            inputs.example_queries[index],
            [inputs.position[doc] for doc in [inputs.example_positives[index], *docs]],
        )
        for index, docs in zip(examples, negatives, strict=True)
    ]


def _passage(inputs: StageInputs, doc_id: str) -> str:
    return inputs.passages[inputs.position[doc_id]]


def _learning_rate(stage: Stage, step: int, total_steps: int) -> float:
    warmup = math.ceil(stage.warmup_ratio * total_steps)
    if step < warmup:
        return stage.learning_rate * (step + 1) / warmup
    return stage.learning_rate * max(0.0, (total_steps - step) / max(1, total_steps - warmup))


def _mean_across_workers(value: torch.Tensor) -> float:
    if dist.is_available() and dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value)
        value /= dist.get_world_size()
    return float(value)


def _rank_and_world() -> tuple[int, int]:
    context = ray.train.get_context()
    return context.get_world_rank(), context.get_world_size()


class _Progress:
    """Paces progress lines: each epoch's first and last step, and at most one per ``log_interval_s`` between."""

    def __init__(self, plan: StagePlan) -> None:
        self.interval = plan.log_interval_s
        self.last = 0.0

    def due(self, step: int, steps: int) -> bool:
        now = time.monotonic()
        if step in (0, steps - 1) or now - self.last >= self.interval:
            self.last = now
            return True
        return False


def _log(plan: StagePlan, message: str) -> None:
    if _rank_and_world()[0] == 0:
        # Ray Train's workers log the root logger to the console; its patched print would also tee the line to
        # stdout, so every printed line reached the driver twice.
        log.info("[%s] %s", plan.label, message)
