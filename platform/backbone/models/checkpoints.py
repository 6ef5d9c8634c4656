"""Reading a component's spec back from a published checkpoint, so it can be loaded without its recipe."""

from __future__ import annotations

from pydantic import ValidationError

from backbone.errors import RegistryError
from backbone.recipes import Reranker, Retriever
from backbone.registry import ArtifactManifest


def checkpoint_spec(checkpoint: ArtifactManifest) -> Retriever | Reranker:
    """The component spec (model, prefixes, lengths, pooling or scoring) a checkpoint was trained with.

    Every stage checkpoint records its component's spec, without the curriculum, in ``params["spec"]``.

    Args:
        checkpoint: a checkpoint artifact published by a stage run.

    Raises:
        RegistryError: the artifact is no stage checkpoint, or its spec does not validate.

    Example:
        >>> spec = checkpoint_spec(registry.get("checkpoint-20261126T061847Z-75e3b55a"))  # doctest: +SKIP
        >>> load_retriever(str(registry.materialize(checkpoint.id)), spec)  # doctest: +SKIP
    """
    component = str(checkpoint.params.get("component"))
    spec_types: dict[str, type[Retriever] | type[Reranker]] = {"retriever": Retriever, "reranker": Reranker}
    spec_type = spec_types.get(component)
    if checkpoint.kind != "checkpoint" or spec_type is None or "spec" not in checkpoint.params:
        raise RegistryError(f"{checkpoint.id} is not a retriever or reranker checkpoint published by a stage run")
    try:
        return spec_type.model_validate(checkpoint.params["spec"])
    except ValidationError as err:
        raise RegistryError(f"{checkpoint.id}: its recorded {component} spec is invalid: {err}") from err
