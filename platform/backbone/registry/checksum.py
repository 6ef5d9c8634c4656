"""File checksums: hashing while copying, and checking stored files against an artifact's manifest.

Files are hashed as a stream in fixed-size chunks, so a multi-gigabyte checkpoint never sits in memory, and a
copy hashes the bytes it writes in the same pass.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from pathlib import Path
from typing import BinaryIO, Protocol

import pyarrow.fs as pafs

from backbone.errors import ChecksumError
from backbone.registry.artifact import FileEntry
from backbone.registry.root import StorageRoot

_CHUNK = 8 * 1024 * 1024

# Local folders this process verified as holding an artifact, with the (size, mtime) of each file then: a
# folder whose files still stat the same is not hashed again for that artifact.
_verified_local: dict[tuple[Path, str], dict[str, tuple[int, int]]] = {}


class _Readable(Protocol):
    def read(self, size: int) -> bytes: ...


def copy_hashing(reader: _Readable, writer: BinaryIO | pafs.NativeFile | None = None) -> FileEntry:
    """Read ``reader`` to its end, writing each chunk to ``writer`` if given, and return the bytes' checksum.

    Args:
        reader: a binary stream (a Python file or a ``pyarrow`` input stream).
        writer: where to copy the bytes, or ``None`` to only hash them.

    Example:
        >>> import io
        >>> copy_hashing(io.BytesIO(b"abc")).size
        3
    """
    digest = hashlib.sha256()
    size = 0
    while chunk := reader.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
        if writer is not None:
            writer.write(chunk)
    return FileEntry(sha256=digest.hexdigest(), size=size)


def check_entry(artifact_id: str, relpath: str, expected: FileEntry, actual: FileEntry) -> None:
    """Raise unless the bytes read for ``relpath`` of ``artifact_id`` match what its manifest records.

    Raises:
        ChecksumError: naming the artifact, the file, and both checksums.
    """
    if actual != expected:
        raise ChecksumError(
            f"artifact {artifact_id}: file {relpath!r} has sha256 {actual.sha256} ({actual.size} bytes), "
            f"the manifest records {expected.sha256} ({expected.size} bytes): the stored copy is damaged"
        )


def check_listing(root: StorageRoot, folder: str, artifact_id: str, expected: dict[str, FileEntry]) -> None:
    """Check that ``folder`` under ``root`` holds exactly the files of ``expected``, with their sizes.

    This is cheap (one listing, no reads) and runs before any hashing or download.

    Args:
        root: the storage holding the folder (any filesystem).
        folder: the folder, relative to ``root``, whose file paths are the keys of ``expected``.
        artifact_id: the artifact, for messages.
        expected: the manifest's file entries.

    Raises:
        ChecksumError: a file is missing, unexpected, or of the wrong size.
    """
    where = root.full(folder)
    present = root.list_files(folder)
    if missing := sorted(expected.keys() - present.keys()):
        raise ChecksumError(f"artifact {artifact_id}: {_files(missing)} missing from {where}")
    if unexpected := sorted(present.keys() - expected.keys()):
        raise ChecksumError(f"artifact {artifact_id}: {_files(unexpected)} in {where} not in its manifest")
    for relpath, entry in sorted(expected.items()):
        if present[relpath] != entry.size:
            raise ChecksumError(
                f"artifact {artifact_id}: file {relpath!r} in {where} is {present[relpath]} bytes, "
                f"the manifest records {entry.size}: the stored copy is damaged"
            )


def verify_tree(root: StorageRoot, folder: str, artifact_id: str, expected: dict[str, FileEntry]) -> None:
    """Check that ``folder`` under ``root`` holds exactly the files of ``expected``, each intact.

    Args:
        root: the storage holding the folder (any filesystem).
        folder: the folder, relative to ``root``, whose file paths are the keys of ``expected``.
        artifact_id: the artifact, for messages.
        expected: the manifest's file entries.

    Raises:
        ChecksumError: a file is missing, unexpected, or differs from its entry.
    """
    check_listing(root, folder, artifact_id, expected)
    for relpath, entry in sorted(expected.items()):
        with root.open_input(posixpath.join(folder, relpath)) as stream:
            check_entry(artifact_id, relpath, entry, copy_hashing(stream))


def verify_local_dir(directory: Path, artifact_id: str, expected: dict[str, FileEntry]) -> None:
    """Like :func:`verify_tree` for a local folder, but skip the hashing if this process already verified it
    and no file in it has changed size or modification time since.

    Args:
        directory: the local folder.
        artifact_id: the artifact, for messages.
        expected: the manifest's file entries.

    Raises:
        ChecksumError: a file is missing, unexpected, or differs from its entry.
    """
    snapshot = _stat_snapshot(directory)
    if _verified_local.get((directory, artifact_id)) == snapshot:
        return
    verify_tree(StorageRoot(pafs.LocalFileSystem(), directory.as_posix(), str(directory)), "", artifact_id, expected)
    _verified_local[(directory, artifact_id)] = snapshot


def remember_verified(directory: Path, artifact_id: str) -> None:
    """Record that the local folder ``directory`` was just verified to hold ``artifact_id`` (e.g. hashed while
    it was downloaded)."""
    _verified_local[(directory, artifact_id)] = _stat_snapshot(directory)


def _files(relpaths: list[str]) -> str:
    """``relpaths`` named for a message: "file 'a' is" or "files 'a', 'b' are"."""
    if len(relpaths) == 1:
        return f"file {relpaths[0]!r} is"
    return "files " + ", ".join(repr(relpath) for relpath in relpaths) + " are"


def _stat_snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    snapshot = {}
    for folder, _, names in os.walk(directory):
        for name in names:
            path = Path(folder, name)
            stat = path.stat()
            snapshot[path.relative_to(directory).as_posix()] = (stat.st_size, stat.st_mtime_ns)
    return snapshot
