"""Which document encoder a retriever checkpoint reads passages with, and the one corpus index that serves it.

Every retriever checkpoint records a :class:`DocumentEncoder` in ``params["document_encoder"]``: the recipe's
mode and the id of the checkpoint whose document tower it carries. A checkpoint that trained its passage side
(``document_encoder: trained``), and every ``base`` checkpoint, carries its own (``checkpoint`` null); a stage that
trained only the query tower (``document_encoder: frozen``) carries its parent's, and so, down the curriculum,
the base checkpoint's. A corpus index names the checkpoint whose document tower encoded it as its lineage parent,
and has the cache key ``index:<that id>``. So:

- :func:`find_index` is the one lookup of a checkpoint's index: the stage (its first ranking, re-mining and
  evaluation), the search's retrieval runs, and releases all call it, and every checkpoint of a frozen-document
  curriculum finds the base checkpoint's index: the corpus is encoded once per curriculum;
- :func:`check_index_serves` is the one compatibility rule: an index serves a checkpoint when it was built with the
  same document encoder, so promoting or rolling back between such checkpoints keeps the index.

Checkpoints published before this field existed read as carrying their own document tower.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from backbone.errors import RegistryError
from backbone.registry.artifact import ArtifactKind, ArtifactManifest, Lineage
from backbone.registry.store import Registry

DOCUMENT_ENCODER_PARAM = "document_encoder"


class DocumentEncoder(BaseModel):
    """The document tower a retriever checkpoint reads passages with, as recorded in its params.

    Example:
        >>> DocumentEncoder(mode="frozen", checkpoint="checkpoint-20261126T061847Z-75e3b55a").checkpoint
        'checkpoint-20261126T061847Z-75e3b55a'
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["trained", "frozen"] = Field(description="The recipe's retriever.document_encoder.")
    checkpoint: str | None = Field(
        None, description="Id of the checkpoint whose document tower this one carries; null: its own."
    )


def document_encoder(checkpoint: ArtifactManifest) -> str:
    """The id of the checkpoint whose document tower ``checkpoint`` carries (its own id if it trained it).

    Example:
        >>> document_encoder(registry.get(query_side_stage_id)) == base_checkpoint_id  # doctest: +SKIP
        True
    """
    recorded = checkpoint.params.get(DOCUMENT_ENCODER_PARAM)
    return (recorded and DocumentEncoder.model_validate(recorded).checkpoint) or checkpoint.id


def index_key(encoder: str) -> str:
    """The cache key of the corpus index built with the document tower of checkpoint ``encoder``."""
    return f"index:{encoder}"


def find_index(registry: Registry, checkpoint: ArtifactManifest) -> ArtifactManifest | None:
    """The corpus index that serves ``checkpoint``: the one its document encoder built, or ``None`` if none yet.

    Args:
        registry: where the index is looked up.
        checkpoint: a retriever checkpoint.

    Example:
        >>> find_index(registry, registry.get(query_side_stage_id)).lineage.parents  # doctest: +SKIP
        ['checkpoint-20261126T061847Z-75e3b55a']
    """
    return registry.find(ArtifactKind.INDEX, index_key(document_encoder(checkpoint)))


def check_index_serves(index: ArtifactManifest, checkpoint: ArtifactManifest) -> None:
    """Refuse ``index`` for ``checkpoint`` unless its lineage names the checkpoint's document encoder.

    Raises:
        RegistryError: the index was built with another document tower (its embeddings are foreign).

    Example:
        >>> check_index_serves(registry.get(base_index_id), registry.get(query_side_stage_id))  # doctest: +SKIP
    """
    encoder = document_encoder(checkpoint)
    if encoder not in index.lineage.parents:
        shared = f" or the checkpoint whose document tower it carries ({encoder})" if encoder != checkpoint.id else ""
        raise RegistryError(
            f"index {index.id} was not built from retriever checkpoint {checkpoint.id}{shared} "
            f"(its lineage parents: {', '.join(index.lineage.parents) or 'none'}); build one from it or serve without"
        )


def publish_index(
    registry: Registry,
    folder: Path | str,
    encoder: str,
    *,
    name: str,
    recipe_hash: str | None = None,
    dataset_checksum: str | None = None,
) -> ArtifactManifest:
    """Publish the corpus index in ``folder``, built with the document tower of checkpoint ``encoder``.

    Args:
        registry: where to publish.
        folder: the folder ``DenseIndex.save`` wrote.
        encoder: the id of the checkpoint whose document tower encoded the corpus (its :func:`document_encoder`).
        name: the artifact's name.
        recipe_hash: the recipe's hash, for the lineage.
        dataset_checksum: the dataset it indexes, for the lineage (serving checks documents against it).

    Example:
        >>> publish_index(registry, folder, checkpoint.id, name="retriever/base/index")  # doctest: +SKIP
    """
    return registry.publish(
        ArtifactKind.INDEX,
        folder,
        name=name,
        lineage=Lineage(parents=[encoder], recipe_hash=recipe_hash, dataset_checksum=dataset_checksum),
        params={"checkpoint": encoder},
        cache_key=index_key(encoder),
    )
