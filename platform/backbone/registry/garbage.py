"""What a registry and this machine's ``BACKBONE_HOME`` accumulate that no artifact or release needs.

Killed writers leave artifact folders without a manifest and hidden temporary files; killed processes leave
drafts and partial downloads; Ray Train and Ray Tune keep their resume state under the registry root
(``ray-train/``, ``ray-tune/``) after the stage or search finished. :func:`find_garbage` lists them and
:func:`delete_garbage` removes what was listed; ``backbone registry gc`` is the two in a row.

Only things older than ``older_than`` are listed (by the time in an artifact id, else by the newest
modification time inside), so a publish, draft, download, stage or search still running keeps its files as long
as it wrote something within that time. Published artifacts and release versions are never garbage.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

import pyarrow.fs as pafs

from backbone import settings
from backbone.registry.root import StorageRoot
from backbone.registry.store import Registry

# The hidden temporary names ``StorageRoot`` and ``Registry`` write beside a target before renaming it.
_TEMP_NAME = re.compile(r"^\..+\.tmp-[0-9a-f]{8}$")


class GarbageKind(StrEnum):
    """What a piece of garbage is, and so why it is safe to delete."""

    UNPUBLISHED = "unpublished artifact"  # an artifact folder whose writer died before the manifest
    TEMPORARY = "temporary file"  # a write killed before its rename
    DRAFT = "draft"  # a ``Registry.draft`` folder its process never cleaned up
    DOWNLOAD = "download"  # a local copy of a remote artifact (fetched again, verified, when needed)
    TRAIN_STATE = "ray-train state"  # epoch checkpoints of a finished or abandoned stage
    TUNE_STATE = "ray-tune state"  # trial state of a finished or abandoned search


@dataclass(frozen=True)
class Garbage:
    """One thing :func:`delete_garbage` would delete.

    Args:
        kind: what it is.
        location: a registry path (relative to the root) or a local path under ``BACKBONE_HOME``.
        size: bytes it holds.
        in_registry: whether ``location`` is in the registry (else on this machine).
    """

    kind: GarbageKind
    location: str
    size: int
    in_registry: bool


def find_garbage(
    registry: Registry,
    older_than: timedelta = timedelta(days=1),
    *,
    downloads: bool = False,
    run_state: bool = False,
) -> list[Garbage]:
    """List what the registry and this machine's ``BACKBONE_HOME`` hold that nothing needs.

    Args:
        registry: the registry to look in.
        older_than: minimum age; keep it above the longest upload, stage or search.
        downloads: also list the local copies of remote artifacts (``$BACKBONE_HOME/cache``) that are that old.
        run_state: also list Ray Train's and Ray Tune's state under the registry root that is that old. A stage
            or search interrupted longer ago than that then starts again instead of resuming (a search's
            evidence is cached in the registry either way).

    Returns:
        The garbage, registry first, in a stable order.

    Example:
        >>> import tempfile
        >>> find_garbage(Registry(tempfile.mkdtemp()))
        []
    """
    cutoff = datetime.now(UTC) - older_than
    root = registry.root
    found = [
        Garbage(GarbageKind.UNPUBLISHED, f"artifacts/{artifact_id}", _size(root, f"artifacts/{artifact_id}"), True)
        for artifact_id in registry.unpublished(older_than)
    ]
    if root.is_local:
        base = root.local_path("")
        found += [
            Garbage(GarbageKind.TEMPORARY, path.relative_to(base).as_posix(), _local_size(path), True)
            for path in sorted(base.rglob(".*.tmp-*"))
            if _TEMP_NAME.match(path.name) and _local_mtime(path) < cutoff
        ]
    if run_state:
        for kind, folder in ((GarbageKind.TRAIN_STATE, "ray-train"), (GarbageKind.TUNE_STATE, "ray-tune")):
            for info in root.list_dir(folder):
                path = f"{folder}/{info.base_name}"
                newest = _newest(root, path, info)
                if newest is not None and newest < cutoff:
                    found.append(Garbage(kind, path, _size(root, path), True))
    home = settings.backbone_home()
    local = [(GarbageKind.DRAFT, child) for child in _children(home / "drafts")]
    cache = _children(home / "cache")
    local += [(GarbageKind.TEMPORARY, child) for child in cache if _TEMP_NAME.match(child.name)]
    if downloads:
        local += [(GarbageKind.DOWNLOAD, child) for child in cache if not _TEMP_NAME.match(child.name)]
    found += [Garbage(kind, str(path), _local_size(path), False) for kind, path in local if _local_mtime(path) < cutoff]
    return found


def delete_garbage(registry: Registry, garbage: Iterable[Garbage]) -> int:
    """Delete what :func:`find_garbage` listed.

    Args:
        registry: the registry the list was made from.
        garbage: the things to delete; one already gone is skipped.

    Returns:
        The bytes freed.
    """
    freed = 0
    for item in garbage:
        if item.in_registry:
            info = registry.root.fs.get_file_info(registry.root.full(item.location))
            if info.type == pafs.FileType.File:
                registry.root.fs.delete_file(info.path)
            else:
                registry.root.delete_dir(item.location)
        else:
            path = Path(item.location)
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        freed += item.size
    return freed


def _children(folder: Path) -> list[Path]:
    return sorted(folder.iterdir()) if folder.is_dir() else []


def _size(root: StorageRoot, path: str) -> int:
    """Bytes below the registry path ``path`` (a file or a folder)."""
    info = root.fs.get_file_info(root.full(path))
    if info.type == pafs.FileType.File:
        return info.size
    return sum(root.list_files(path).values())


def _newest(root: StorageRoot, path: str, info: pafs.FileInfo) -> datetime | None:
    """The newest modification time below the registry path ``path`` (object stores keep none on folders)."""
    selector = pafs.FileSelector(root.full(path), recursive=True, allow_not_found=True)
    times = [entry.mtime for entry in root.fs.get_file_info(selector) if entry.mtime is not None]
    if info.mtime is not None:
        times.append(info.mtime)
    return max(times).astimezone(UTC) if times else None


def _local_mtime(path: Path) -> datetime:
    """The newest modification time of ``path`` and, for a folder, of anything below it."""
    times = [path.stat().st_mtime]
    if path.is_dir():
        times += [child.stat().st_mtime for child in path.rglob("*")]
    return datetime.fromtimestamp(max(times), UTC)


def _local_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(child.stat().st_size for child in path.rglob("*") if child.is_file())
