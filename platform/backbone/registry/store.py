"""The artifact registry: publish immutable artifacts atomically, find them, and load them verified.

Layout under the root (see :mod:`backbone.registry.root` for what a root can be)::

    artifacts/<id>/files/<relpath>    the artifact's files, exactly as published
    artifacts/<id>/manifest.json      its ArtifactManifest, written last

The manifest is the commit point. Files are uploaded first, each to the writer's own fresh ``<id>`` folder,
and the manifest is written atomically after the last one, so a reader that only trusts folders with a
manifest never sees a half-written artifact, even when the writer is killed mid-upload, and writers never
touch each other's folders. What a killed writer leaves is an invisible folder that :meth:`Registry.gc`
removes.

Files are plain bytes: checkpoints are HF/sentence-transformers folders (safetensors), indexes and reports
are whatever their writer saved. Nothing is ever pickled.
"""

from __future__ import annotations

import builtins
import os
import posixpath
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError

from backbone import settings
from backbone.errors import ChecksumError, RegistryError
from backbone.registry.artifact import (
    ArtifactKind,
    ArtifactManifest,
    FileEntry,
    Lineage,
    artifact_id_time,
    check_artifact_id,
    check_file_path,
    new_artifact_id,
)
from backbone.registry.checksum import (
    check_entry,
    check_listing,
    copy_hashing,
    remember_verified,
    verify_local_dir,
    verify_tree,
)
from backbone.registry.root import StorageRoot


def _upload_file(root: StorageRoot, source: Path, path: str) -> FileEntry:
    """Copy the local file ``source`` to ``path`` under ``root``, returning the checksum of what was written."""
    with source.open("rb") as reader, root.open_output(path) as writer:
        return copy_hashing(reader, writer)


@dataclass
class Draft:
    """An artifact being written by :meth:`Registry.draft`: fill ``path``, adjust the numbers, then leave.

    Args:
        path: the local folder to write the artifact's files into.
        metrics: the metrics to publish; may be changed until the ``with`` block ends.
        params: the settings to publish; may be changed until the ``with`` block ends.
        manifest: the published manifest, set once the ``with`` block has ended cleanly.
    """

    path: Path
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    manifest: ArtifactManifest | None = None


class Registry:
    """A registry of immutable artifacts under one root.

    Args:
        uri: the root, a local path or a ``pyarrow.fs`` URI (``s3://bucket/prefix``);
            default :func:`backbone.settings.registry_uri`.

    Example:
        >>> import tempfile, pathlib
        >>> registry = Registry(tempfile.mkdtemp())
        >>> source = pathlib.Path(tempfile.mkdtemp()); _ = (source / "model.safetensors").write_bytes(b"...")
        >>> manifest = registry.publish("checkpoint", source, name="retriever/demo", lineage=Lineage())
        >>> registry.get(manifest.id).files["model.safetensors"].size
        3
        >>> (registry.materialize(manifest.id) / "model.safetensors").read_bytes()
        b'...'
    """

    def __init__(self, uri: str | None = None) -> None:
        self.root = StorageRoot.open(uri or settings.registry_uri())
        # Manifests never change once published, so each is read at most once per instance.
        self._manifests: dict[str, ArtifactManifest] = {}

    def __repr__(self) -> str:
        return f"Registry({self.uri!r})"

    @property
    def uri(self) -> str:
        """The root this registry was opened at; ``Registry(registry.uri)`` opens it again elsewhere."""
        return self.root.uri

    def publish(
        self,
        kind: ArtifactKind | str,
        source_dir: Path | str,
        *,
        name: str,
        lineage: Lineage,
        metrics: dict[str, float] | None = None,
        params: dict[str, Any] | None = None,
        cache_key: str | None = None,
    ) -> ArtifactManifest:
        """Publish every file below ``source_dir`` as a new artifact, atomically.

        Args:
            kind: what the artifact is.
            source_dir: a local folder; its files (recursively) become the artifact's files.
            name: a human label, e.g. ``"retriever/stage-2-refinement"``.
            lineage: where it comes from; every parent must be a published artifact.
            metrics: numbers measured on or for it.
            params: JSON-serializable settings it was made with.
            cache_key: key of the work that produced it, for :meth:`find`.

        Returns:
            The published manifest, whose ``id`` names the artifact from now on.

        Raises:
            RegistryError: the folder is missing, a parent is unknown, or the metadata is invalid.
        """
        kind = ArtifactKind.parse(kind)
        source = Path(source_dir)
        if not source.is_dir():
            raise RegistryError(f"cannot publish {source}: it is not a folder")
        for parent in lineage.parents:
            if self._load(check_artifact_id(parent)) is None:
                raise RegistryError(f"lineage parent {parent} is not a published artifact in {self.uri}")
        created_at = datetime.now(UTC)
        try:
            manifest = ArtifactManifest(
                id=new_artifact_id(kind, created_at),
                kind=kind,
                name=name,
                created_at=created_at,
                lineage=lineage,
                metrics=metrics or {},
                params=params or {},
                cache_key=cache_key,
            )
            manifest.model_dump_json()  # fail on unserializable params before uploading gigabytes
            relpaths = [check_file_path(relpath) for relpath in _relative_files(source)]
        except (ValidationError, PydanticSerializationError, ValueError) as err:
            raise RegistryError(f"cannot publish {source} as {name!r}: {err}") from err

        folder = _artifact_dir(manifest.id)
        files = posixpath.join(folder, "files")
        self.root.make_dir(files)  # an artifact with no files still materializes as an (empty) folder
        entries = {
            relpath: _upload_file(self.root, source / relpath, posixpath.join(files, relpath)) for relpath in relpaths
        }
        manifest = manifest.model_copy(update={"files": entries})
        self.root.write_atomic(posixpath.join(folder, "manifest.json"), manifest.model_dump_json(indent=2).encode())
        self._manifests[manifest.id] = manifest
        return manifest

    @contextmanager
    def draft(
        self,
        kind: ArtifactKind | str,
        *,
        name: str,
        lineage: Lineage,
        metrics: dict[str, float] | None = None,
        params: dict[str, Any] | None = None,
        cache_key: str | None = None,
    ) -> Iterator[Draft]:
        """Write an artifact's files into a fresh local folder; publish it if the block ends cleanly.

        On an exception nothing is published and the folder is deleted. Arguments are those of
        :meth:`publish`; the metrics and params can still be changed on the draft inside the block.

        Example:
            >>> import tempfile
            >>> registry = Registry(tempfile.mkdtemp())
            >>> with registry.draft("report", name="eval/summary", lineage=Lineage()) as draft:
            ...     _ = (draft.path / "report.md").write_text("# results")
            ...     draft.metrics["ndcg@10"] = 0.5
            >>> registry.get(draft.manifest.id).metrics
            {'ndcg@10': 0.5}
        """
        drafts = settings.backbone_home() / "drafts"
        drafts.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=drafts, prefix=f"{kind}-") as folder:
            draft = Draft(path=Path(folder), metrics=dict(metrics or {}), params=dict(params or {}))
            yield draft
            draft.manifest = self.publish(
                kind,
                draft.path,
                name=name,
                lineage=lineage,
                metrics=draft.metrics,
                params=draft.params,
                cache_key=cache_key,
            )

    def get(self, artifact_id: str) -> ArtifactManifest:
        """The manifest of the published artifact ``artifact_id``.

        Raises:
            RegistryError: there is no such artifact (or it was never completely published).
        """
        manifest = self._load(check_artifact_id(artifact_id))
        if manifest is None:
            raise RegistryError(
                f"no artifact {artifact_id} in registry {self.uri} (`backbone registry list` shows the ids there)"
            )
        return manifest

    def list(self, kind: ArtifactKind | str | None = None) -> list[ArtifactManifest]:
        """Every published artifact, or every one of ``kind``, oldest first.

        Folders without a manifest (an upload in progress or killed) are not artifacts and are left out.
        """
        wanted = None if kind is None else ArtifactKind.parse(kind)
        manifests = []
        for info in self.root.list_dir("artifacts"):
            if artifact_id_time(info.base_name) is None:
                continue  # not an artifact folder (e.g. something a person put there)
            if wanted is not None and not info.base_name.startswith(f"{wanted.value}-"):
                continue  # the id starts with the kind: no need to read the manifest
            if (manifest := self._load(info.base_name)) is not None:
                manifests.append(manifest)
        return sorted(manifests, key=lambda manifest: (manifest.created_at, manifest.id))

    def find(self, kind: ArtifactKind | str, cache_key: str) -> ArtifactManifest | None:
        """The oldest artifact of ``kind`` published with ``cache_key``, or ``None``: finished work to reuse."""
        return next((manifest for manifest in self.list(kind) if manifest.cache_key == cache_key), None)

    def materialize(self, artifact_id: str, dest: Path | str | None = None) -> Path:
        """A local folder holding the artifact's files, each verified against its checksum.

        Without ``dest``, a local registry's own folder is verified and returned (read it, never write to it),
        and a remote one is downloaded once into ``$BACKBONE_HOME/cache/<id>``. With ``dest``, the files are
        copied there. A folder that already exists at the destination is verified and reused. A download goes
        to a temporary folder renamed into place when complete, so a killed download leaves no partial copy.
        Verification of a local folder is remembered for the rest of the process while its files are unchanged
        (same sizes and modification times), so loading a large checkpoint again does not hash it again.

        Args:
            artifact_id: the artifact.
            dest: a local folder to copy the files into, instead of the default.

        Raises:
            RegistryError: there is no such artifact.
            ChecksumError: a file is missing, unexpected, or does not match its checksum.
        """
        manifest = self.get(artifact_id)
        files = posixpath.join(_artifact_dir(artifact_id), "files")
        if dest is None and self.root.is_local:
            target = self.root.local_path(files)
        else:
            target = Path(dest) if dest is not None else settings.backbone_home() / "cache" / artifact_id
            if not target.exists():
                self._download(manifest, files, target)
        verify_local_dir(target, artifact_id, manifest.files)
        return target

    def verify(self, artifact_id: str) -> ArtifactManifest:
        """Hash every stored file of ``artifact_id`` now and check it against the manifest.

        Returns:
            The manifest, when every file is intact.

        Raises:
            RegistryError: there is no such artifact.
            ChecksumError: a file is missing, unexpected, or does not match its checksum.
        """
        manifest = self.get(artifact_id)
        verify_tree(self.root, posixpath.join(_artifact_dir(artifact_id), "files"), artifact_id, manifest.files)
        return manifest

    def unpublished(self, older_than: timedelta = timedelta(days=1)) -> builtins.list[str]:
        """The ids of artifact folders without a manifest (what killed writers left), older than ``older_than``.

        Args:
            older_than: minimum age (from the time in the id); keep it above the longest upload, or a
                publish still in progress is counted.
        """
        now = datetime.now(UTC)
        return [
            info.base_name
            for info in self.root.list_dir("artifacts")
            if (created := artifact_id_time(info.base_name)) is not None
            and now - created >= older_than
            and self._load(info.base_name) is None
        ]

    def gc(self, older_than: timedelta = timedelta(days=1)) -> builtins.list[str]:
        """Delete the artifact folders :meth:`unpublished` names (``backbone registry gc`` deletes more).

        Args:
            older_than: minimum age (from the time in the id); keep it above the longest upload, or a
                publish still in progress loses its files.

        Returns:
            The ids of the folders deleted.
        """
        deleted = self.unpublished(older_than)
        for artifact_id in deleted:
            self.root.delete_dir(_artifact_dir(artifact_id))
        return deleted

    def _load(self, artifact_id: str) -> ArtifactManifest | None:
        """The manifest of ``artifact_id`` (an id already checked), or ``None`` if it has none."""
        if artifact_id in self._manifests:
            return self._manifests[artifact_id]
        data = self.root.read(posixpath.join(_artifact_dir(artifact_id), "manifest.json"))
        if data is None:
            return None
        try:
            manifest = ArtifactManifest.model_validate_json(data)
        except ValidationError as err:
            raise RegistryError(f"manifest of artifact {artifact_id} in {self.uri} is malformed: {err}") from err
        if manifest.id != artifact_id:
            raise RegistryError(f"manifest in the folder of artifact {artifact_id} in {self.uri} is {manifest.id}'s")
        self._manifests[artifact_id] = manifest
        return manifest

    def _download(self, manifest: ArtifactManifest, files: str, target: Path) -> None:
        """Copy the artifact's files to the new local folder ``target``, hashing them on the way."""
        check_listing(self.root, files, manifest.id, manifest.files)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.tmp-{secrets.token_hex(4)}")
        try:
            temp.mkdir()
            for relpath, entry in sorted(manifest.files.items()):
                local = temp / relpath
                local.parent.mkdir(parents=True, exist_ok=True)
                with self.root.open_input(posixpath.join(files, relpath)) as reader, local.open("xb") as writer:
                    check_entry(manifest.id, relpath, entry, copy_hashing(reader, writer))
            try:
                os.rename(temp, target)
            except OSError:
                if not target.is_dir():
                    raise
                return  # another process finished the same download first; the caller verifies theirs
            remember_verified(target, manifest.id)
        except FileNotFoundError as err:  # deleted between the listing and the read
            raise ChecksumError(f"artifact {manifest.id}: a file vanished during download: {err}") from err
        finally:
            shutil.rmtree(temp, ignore_errors=True)


def _artifact_dir(artifact_id: str) -> str:
    return f"artifacts/{artifact_id}"


def _relative_files(source: Path) -> list[str]:
    """Every file below ``source``, as sorted ``/``-separated paths relative to it."""
    return sorted(
        Path(folder, name).relative_to(source).as_posix() for folder, _, names in os.walk(source) for name in names
    )
