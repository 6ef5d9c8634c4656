"""The artifact registry and the releases kept in it.

Artifacts (checkpoints, indexes, evaluation runs, reports) are immutable folders of files with a manifest;
releases are versioned records of which artifacts serve. Both live under one root that is a local folder or
object storage (``s3://``, ``gs://``), chosen by ``BACKBONE_REGISTRY``.
"""

from backbone.registry.artifact import ArtifactKind, ArtifactManifest, FileEntry, Lineage, code_version
from backbone.registry.corpus_index import (
    DOCUMENT_ENCODER_PARAM,
    DOCUMENTS_FILE,
    DocumentEncoder,
    check_index_serves,
    document_encoder,
    find_index,
    index_key,
    publish_index,
)
from backbone.registry.garbage import Garbage, GarbageKind, delete_garbage, find_garbage
from backbone.registry.release import (
    AppSettings,
    ChosenFor,
    ReleaseRecord,
    Releases,
    RerankerSlot,
    RetrieverSlot,
)
from backbone.registry.root import StorageRoot, open_root
from backbone.registry.store import Draft, Registry

__all__ = [
    "DOCUMENTS_FILE",
    "DOCUMENT_ENCODER_PARAM",
    "AppSettings",
    "ArtifactKind",
    "ArtifactManifest",
    "ChosenFor",
    "DocumentEncoder",
    "Draft",
    "FileEntry",
    "Garbage",
    "GarbageKind",
    "Lineage",
    "Registry",
    "ReleaseRecord",
    "Releases",
    "RerankerSlot",
    "RetrieverSlot",
    "StorageRoot",
    "check_index_serves",
    "code_version",
    "delete_garbage",
    "document_encoder",
    "find_garbage",
    "find_index",
    "index_key",
    "open_root",
    "publish_index",
]
