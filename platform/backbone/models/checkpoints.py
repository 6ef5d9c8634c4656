"""What a stage run records in its checkpoint, and reading a component's spec back from it, so that a checkpoint
loads without its recipe.

Training writes :class:`CheckpointParams` as the checkpoint's ``params`` (``training/stage.py``); evaluation,
selection and serving read it here, as the same record.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from backbone.component_name import ComponentName
from backbone.errors import BackboneError, RegistryError
from backbone.recipes import Reranker, Retriever
from backbone.registry import ArtifactManifest


class CheckpointParams(BaseModel):
    """A stage checkpoint's ``params``: which component and stage made it, and the spec it loads with.

    Example:
        >>> CheckpointParams.of(registry.get(checkpoint_id)).stage  # doctest: +SKIP
        'refinement'
    """

    # extra="allow": keys another layer records beside these (the retriever's document_encoder, registry/corpus_index)
    model_config = ConfigDict(extra="allow", frozen=True)

    component: ComponentName = Field(description="The component the checkpoint is.")
    stage: str = Field(description="The stage that made it ('base' for the untrained model).")
    base_model: str = Field(description="The base model the curriculum started from.")
    spec: dict[str, Any] = Field(description="The component's recipe section, without its stages.")
    stage_spec: dict[str, Any] | None = Field(None, description="The stage's recipe section; None for 'base'.")
    workers: int | None = Field(None, description="Ray Train workers the stage ran on.")
    use_gpu: bool | None = Field(None, description="Whether they trained on GPUs.")
    train_precision: Literal["fp32", "bf16", "auto"] = Field(
        "fp32", description="The recipe's resources.train_precision when the stage ran."
    )
    candidates_from: str | None = Field(
        None, description="Reranker only: the retriever checkpoint whose top lists it trained and was evaluated on."
    )

    @classmethod
    def of(cls, checkpoint: ArtifactManifest) -> CheckpointParams:
        """The params ``checkpoint`` was published with.

        Raises:
            RegistryError: the artifact is no checkpoint published by a stage run, or its params do not validate.
        """
        if checkpoint.kind != "checkpoint" or "component" not in checkpoint.params:
            raise RegistryError(f"{checkpoint.id} is not a retriever or reranker checkpoint published by a stage run")
        try:
            return cls.model_validate(checkpoint.params)
        except ValidationError as err:
            raise RegistryError(f"{checkpoint.id}: its recorded params are invalid: {err}") from err

    def component_spec(self) -> Retriever | Reranker:
        """The spec (model, prefixes, lengths, pooling or scoring) to load the checkpoint with.

        Raises:
            pydantic.ValidationError: the recorded spec does not validate.
        """
        spec_type = Retriever if self.component == "retriever" else Reranker
        return spec_type.model_validate(self.spec)


def checkpoint_spec(checkpoint: ArtifactManifest) -> Retriever | Reranker:
    """The component spec (model, prefixes, lengths, pooling or scoring) a checkpoint was trained with.

    Args:
        checkpoint: a checkpoint artifact published by a stage run.

    Raises:
        RegistryError: the artifact is no stage checkpoint, or its spec does not validate.

    Example:
        >>> spec = checkpoint_spec(registry.get("checkpoint-20261126T061847Z-75e3b55a"))  # doctest: +SKIP
        >>> load_retriever(str(registry.materialize(checkpoint.id)), spec)  # doctest: +SKIP
    """
    params = CheckpointParams.of(checkpoint)
    try:
        return params.component_spec()
    except ValidationError as err:
        raise RegistryError(f"{checkpoint.id}: its recorded {params.component} spec is invalid: {err}") from err


def retriever_spec(checkpoint: ArtifactManifest) -> Retriever:
    """The spec of ``checkpoint``, which must be a retriever's.

    Raises:
        BackboneError: it is a reranker's checkpoint (or no stage checkpoint: a RegistryError).

    Example:
        >>> retriever_spec(registry.get(release.retriever.checkpoint)).pooling  # doctest: +SKIP
        'mean'
    """
    spec = checkpoint_spec(checkpoint)
    if not isinstance(spec, Retriever):
        raise BackboneError(f"{checkpoint.id} is a reranker checkpoint, not a retriever")
    return spec


def reranker_spec(checkpoint: ArtifactManifest) -> Reranker:
    """The spec of ``checkpoint``, which must be a reranker's.

    Raises:
        BackboneError: it is a retriever's checkpoint (or no stage checkpoint: a RegistryError).

    Example:
        >>> reranker_spec(registry.get(release.reranker.checkpoint)).scoring  # doctest: +SKIP
        'head'
    """
    spec = checkpoint_spec(checkpoint)
    if not isinstance(spec, Reranker):
        raise BackboneError(f"{checkpoint.id} is a retriever checkpoint, not a reranker")
    return spec
