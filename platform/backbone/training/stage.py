"""Running one stage of one component on Ray Train and publishing its checkpoint (and index) to the registry."""

from __future__ import annotations

import hashlib
import json
import posixpath
import time
from dataclasses import dataclass
from pathlib import Path

from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from backbone.component_name import ComponentName
from backbone.data import dataset_checksum, load_dataset
from backbone.errors import BackboneError
from backbone.model_paths import resolve_model
from backbone.models import CheckpointParams
from backbone.ray_runtime import resolve_use_gpu
from backbone.recipes import Recipe, Resources, recipe_hash
from backbone.registry import (
    DOCUMENT_ENCODER_PARAM,
    ArtifactManifest,
    DocumentEncoder,
    Lineage,
    Registry,
    document_encoder,
    find_index,
    publish_index,
)
from backbone.training.candidates import Bm25Candidates, CandidateSource, RetrieverCandidates
from backbone.training.inputs import build_stage_inputs
from backbone.training.loop import train_stage
from backbone.training.plan import StagePlan


@dataclass(frozen=True)
class StageRun:
    """Where and how a stage runs.

    Args:
        workers: Ray Train workers (DDP ranks).
        use_gpu: one GPU per worker.
        cpus_per_worker: CPU cores (and torch threads) per worker.
        max_failures: worker-group restarts allowed; each resumes from the latest epoch checkpoint.
    """

    workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: int = 1
    max_failures: int = 2

    @classmethod
    def from_recipe(cls, resources: Resources, workers: int | None = None, use_gpu: bool | None = None) -> StageRun:
        """The recipe's resources, with ``workers`` and ``use_gpu`` overridden when given (e.g. from a command line).

        A recipe's ``use_gpu: auto`` is resolved against the connected cluster, so call it after ``ensure_ray()``.

        Example:
            >>> StageRun.from_recipe(Resources(workers=2), use_gpu=False).workers
            2
        """
        return cls(
            workers=workers or resources.workers,
            use_gpu=resolve_use_gpu(resources.use_gpu if use_gpu is None else use_gpu),
            cpus_per_worker=resources.cpus_per_worker,
        )


@dataclass(frozen=True)
class StageResult:
    """A trained (or base) stage: its name and its published checkpoint, which carries its metrics.

    Args:
        component: ``retriever`` or ``reranker``.
        stage: the stage's name (``base`` for the untrained model).
        checkpoint: the published checkpoint.
        reused: found in the registry rather than trained (or evaluated) by this call.
        seconds: wall time this call spent on the stage (lookup only, when reused).
    """

    component: ComponentName
    stage: str
    checkpoint: ArtifactManifest
    reused: bool
    seconds: float


CHECKPOINT_FORMAT = 2
"""Part of every stage's cache key: raised when the same key would now give a different checkpoint, so that
registries never reuse the old one. 2: a base model saved by sentence-transformers (multilingual-e5-small) is
built into the recipe's component (a reranker's first ``layers`` and seeded head, the recipe's prompts) instead of
being loaded as if it were a checkpoint."""


def stage_cache_key(recipe: Recipe, component: ComponentName, stage_name: str, parent: str | None, data: str) -> str:
    """What makes a stage's checkpoint reusable: the component's spec up to this stage, its parent and its data."""
    spec = getattr(recipe, component)
    names = spec.stage_names()
    upto = spec.model_dump(mode="json")
    upto["stages"] = upto["stages"][: names.index(stage_name)]
    key = {
        "component": component,
        "stage": stage_name,
        "spec": upto,
        "metrics": getattr(recipe.evaluation, f"{component}_metrics"),
        "eval_split": recipe.dataset.eval_split,
        "rerank_candidates": recipe.evaluation.rerank_candidates,
        "parent": parent,
        "data": data,
        "seed": recipe.seed,
        "format": CHECKPOINT_FORMAT,
    }
    if recipe.resources.train_precision != "fp32":  # only then: an fp32 key reads as it did before the option
        key["train_precision"] = recipe.resources.train_precision
    if component == "reranker" and recipe.reranker.candidates == "retriever":
        # The reranker's lists (and teacher scores) come from the retriever's base checkpoint: its key is theirs.
        key["candidates_from"] = stage_cache_key(recipe, "retriever", "base", None, data)
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]


def reranker_candidates(recipe: Recipe, dataset_dir: Path, registry: Registry) -> CandidateSource:
    """Where the recipe's reranker gets its candidate lists: BM25, or the retriever's published base checkpoint.

    Args:
        recipe: the recipe (``reranker.candidates``).
        dataset_dir: the recipe's prepared dataset.
        registry: where the retriever curriculum published its base checkpoint and corpus index.

    Raises:
        BackboneError: ``candidates: retriever`` and the retriever's base checkpoint or its index is not published.

    Example:
        >>> reranker_candidates(recipe, dataset_dir, Registry()).kind  # doctest: +SKIP
        'retriever'
    """
    if recipe.reranker.candidates == "bm25":
        return Bm25Candidates()
    key = stage_cache_key(recipe, "retriever", "base", None, dataset_checksum(dataset_dir))
    checkpoint = registry.find("checkpoint", key)
    index = find_index(registry, checkpoint, dataset_checksum(dataset_dir)) if checkpoint else None
    if checkpoint is None or index is None:
        missing = "base checkpoint" if checkpoint is None else f"corpus index (of {checkpoint.id})"
        raise BackboneError(
            f"reranker.candidates is 'retriever' but the retriever's {missing} for recipe {recipe.name!r} is not "
            f"in registry {registry.uri}: train the retriever first (backbone run RECIPE, or python jobs/train.py "
            "--recipe RECIPE --component retriever)"
        )
    return RetrieverCandidates(registry.uri, checkpoint.id, index.id)


def run_stage(
    recipe: Recipe,
    component: ComponentName,
    stage_name: str,
    parent: ArtifactManifest | None,
    dataset_dir: Path,
    registry: Registry,
    run: StageRun,
) -> StageResult:
    """Train (or, for ``base``, only evaluate) one stage and publish its checkpoint; reuse it if already published.

    The checkpoint artifact is the model folder (loadable with ``SentenceTransformer(path)`` or
    ``CrossEncoder(path)``) with the stage's evaluation metrics; a retriever stage also publishes the corpus index it
    was evaluated with, its lineage naming the checkpoint. A retriever records in ``params["document_encoder"]``
    (a :class:`~backbone.registry.DocumentEncoder`) whose document tower it carries: a stage of a
    ``document_encoder: frozen`` recipe carries its parent's, so it is evaluated on, and publishes no index
    beside, the index its parent's document encoder built (see ``registry/corpus_index.py``).

    Args:
        recipe: the recipe.
        component: ``retriever`` or ``reranker``.
        stage_name: a stage of that component, or ``base``.
        parent: the checkpoint the stage starts from (``None`` for ``base``).
        dataset_dir: the recipe's prepared dataset.
        registry: where checkpoints go (Ray Train's own epoch checkpoints go under ``<registry>/ray-train``).
        run: workers and resources.

    Example:
        >>> base = run_stage(recipe, "retriever", "base", None, dataset_dir, Registry(), StageRun())  # doctest: +SKIP
        >>> base.checkpoint.metrics["ndcg@10"], base.reused  # doctest: +SKIP
        (0.76, False)
    """
    started = time.perf_counter()
    spec = getattr(recipe, component)
    stage = None if stage_name == "base" else next(s for s in spec.stages if s.name == stage_name)
    data = dataset_checksum(dataset_dir)
    key = stage_cache_key(recipe, component, stage_name, parent.id if parent else None, data)
    if (found := registry.find("checkpoint", key)) is not None:
        print(f"[{component}/{stage_name}] reusing {found.id}", flush=True)
        return StageResult(component, stage_name, found, reused=True, seconds=time.perf_counter() - started)
    candidates = reranker_candidates(recipe, dataset_dir, registry) if component == "reranker" else None
    if stage is not None and stage.batch_size % run.workers:
        raise BackboneError(
            f"{component}.stages[{stage_name}].batch_size: {stage.batch_size} does not split evenly across "
            f"{run.workers} workers"
        )

    plan = StagePlan(
        component=component,
        spec=spec,
        stage=stage,
        init_path=str(registry.materialize(parent.id)) if parent else resolve_model(spec.model),
        from_base_model=parent is None,
        metrics=getattr(recipe.evaluation, f"{component}_metrics"),
        seed=recipe.seed,
        threads=run.cpus_per_worker,
        train_precision=recipe.resources.train_precision,
        start_index=_index_of(registry, parent, data) if component == "retriever" and parent else None,
    )
    trainer = TorchTrainer(
        train_stage,
        train_loop_config={"plan": plan, "inputs": build_stage_inputs(recipe, spec, stage, dataset_dir, candidates)},
        scaling_config=ScalingConfig(
            num_workers=run.workers, use_gpu=run.use_gpu, resources_per_worker={"CPU": run.cpus_per_worker}
        ),
        run_config=RunConfig(
            name=f"{recipe.name}-{component}-{stage_name}-{key[:8]}",
            storage_path=posixpath.join(registry.root.base, "ray-train"),
            storage_filesystem=registry.root.fs,
            failure_config=FailureConfig(max_failures=run.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=1),
        ),
    )
    result = trainer.fit()
    lineage = Lineage(parents=[parent.id] if parent else [], recipe_hash=recipe_hash(recipe), dataset_checksum=data)
    params = CheckpointParams(
        component=component,
        stage=stage_name,
        base_model=spec.model,
        spec=spec.model_dump(mode="json", exclude={"stages"}),
        stage_spec=stage.model_dump(mode="json") if stage else None,
        workers=run.workers,
        use_gpu=run.use_gpu,
        train_precision=recipe.resources.train_precision,
        candidates_from=candidates.checkpoint_id if isinstance(candidates, RetrieverCandidates) else None,
    ).model_dump(mode="json", exclude_none=True)
    if component == "retriever":
        frozen_parent = parent if spec.document_encoder == "frozen" else None
        carried = DocumentEncoder(
            mode=spec.document_encoder, checkpoint=document_encoder(frozen_parent) if frozen_parent else None
        )
        params[DOCUMENT_ENCODER_PARAM] = carried.model_dump(mode="json")
    if result.checkpoint is None:
        raise BackboneError(f"{component}/{stage_name}: the stage finished without reporting a checkpoint")
    # The epoch checkpoint may live on object storage: as_directory() gives a local copy either way.
    with result.checkpoint.as_directory() as folder:
        checkpoint = registry.publish(
            "checkpoint",
            Path(folder) / "model",
            name=f"{component}/{stage_name}",
            lineage=lineage,
            metrics={name: float(value) for name, value in (result.metrics or {}).items()},
            params=params,
            cache_key=key,
        )
        if (Path(folder) / "index").is_dir():  # a retriever that encoded the corpus with its own document tower
            publish_index(
                registry,
                Path(folder) / "index",
                checkpoint.id,
                name=f"{component}/{stage_name}/index",
                recipe_hash=lineage.recipe_hash,
                documents=load_dataset(dataset_dir).corpus,
                dataset_checksum=data,
            )
    return StageResult(component, stage_name, checkpoint, reused=False, seconds=time.perf_counter() - started)


def _index_of(registry: Registry, checkpoint: ArtifactManifest, data: str) -> tuple[str, str] | None:
    index = find_index(registry, checkpoint, data)
    return (registry.uri, index.id) if index else None
