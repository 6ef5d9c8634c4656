"""Which document encoder a retriever checkpoint reads passages with, and the one corpus index that serves it.

Every retriever checkpoint records a :class:`DocumentEncoder` in ``params["document_encoder"]``: the recipe's
mode and the id of the checkpoint whose document tower it carries. A checkpoint that trained its passage side
(``document_encoder: trained``), and every ``base`` checkpoint, carries its own (``checkpoint`` null); a stage that
trained only the query tower (``document_encoder: frozen``) carries its parent's, and so, down the curriculum,
the base checkpoint's. A corpus index names the checkpoint whose document tower encoded it as its lineage parent
and the dataset whose corpus it holds as its lineage dataset, and has the cache key ``index:<that id>:<dataset>``.
So:

- :func:`find_index` is the one lookup of a checkpoint's index: the stage (its first ranking, re-mining and
  evaluation), the search's retrieval runs, and releases all call it, and every checkpoint of a frozen-document
  curriculum finds the base checkpoint's index: the corpus is encoded once per curriculum;
- :func:`check_index_serves` is the one compatibility rule: an index serves a checkpoint when it was built with the
  same document encoder, so promoting or rolling back between such checkpoints keeps the index.

Checkpoints published before this field existed read as carrying their own document tower.

An index artifact also carries the documents it indexes (``documents.parquet``: the corpus table of its dataset),
so a serving replica on any node reads ids, titles and texts from the registry alone.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

from backbone.errors import RegistryError
from backbone.registry.artifact import ArtifactKind, ArtifactManifest, Lineage
from backbone.registry.store import Registry

DOCUMENTS_FILE = "documents.parquet"
"""The file of an index artifact holding the corpus it indexes (``doc_id``, ``title``, ``text``)."""

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


def index_key(encoder: str, dataset_checksum: str) -> str:
    """The cache key of the index of dataset ``dataset_checksum``'s corpus built with checkpoint ``encoder``'s
    document tower."""
    return f"index:{encoder}:{dataset_checksum}"


def find_index(registry: Registry, checkpoint: ArtifactManifest, dataset_checksum: str) -> ArtifactManifest | None:
    """The index of a dataset's corpus that serves ``checkpoint``: the one its document encoder built of that
    corpus, or ``None`` if none yet (an index of another corpus never answers for this one).

    Args:
        registry: where the index is looked up.
        checkpoint: a retriever checkpoint.
        dataset_checksum: the prepared dataset whose corpus the index must hold.

    Example:
        >>> find_index(registry, registry.get(query_side_stage_id), checksum).lineage.parents  # doctest: +SKIP
        ['checkpoint-20261126T061847Z-75e3b55a']
    """
    encoder = document_encoder(checkpoint)
    if (found := registry.find(ArtifactKind.INDEX, index_key(encoder, dataset_checksum))) is not None:
        return found
    # Indexes published before the key named the dataset: keyed by the encoder alone, the dataset in the lineage.
    legacy = registry.find(ArtifactKind.INDEX, f"index:{encoder}")
    return legacy if legacy is not None and legacy.lineage.dataset_checksum == dataset_checksum else None


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
    documents: pa.Table,
    dataset_checksum: str,
    recipe_hash: str | None = None,
) -> ArtifactManifest:
    """Publish the corpus index in ``folder`` (built with the document tower of ``encoder``) with its documents.

    The artifact holds the index files and ``documents.parquet`` (``documents``), so that whoever serves the
    index needs nothing but the registry.

    Args:
        registry: where to publish.
        folder: the folder ``DenseIndex.save`` wrote (left unchanged).
        encoder: the id of the checkpoint whose document tower encoded the corpus (its :func:`document_encoder`).
        name: the artifact's name.
        documents: the corpus it indexes (``doc_id``, ``title``, ``text``: a prepared dataset's corpus table).
        dataset_checksum: the prepared dataset that corpus is from (serving checks other documents against it).
        recipe_hash: the recipe's hash, for the lineage.

    Example:
        >>> publish_index(registry, folder, checkpoint.id, name="retriever/base/index",
        ...     documents=load_dataset(dataset_dir).corpus, dataset_checksum=checksum)
        ... # doctest: +SKIP
    """
    with registry.draft(
        ArtifactKind.INDEX,
        name=name,
        lineage=Lineage(parents=[encoder], recipe_hash=recipe_hash, dataset_checksum=dataset_checksum),
        params={"checkpoint": encoder},
        cache_key=index_key(encoder, dataset_checksum),
    ) as draft:
        shutil.copytree(folder, draft.path, dirs_exist_ok=True)
        pq.write_table(documents, draft.path / DOCUMENTS_FILE)
    assert draft.manifest is not None  # set once the block ended cleanly
    return draft.manifest
