"""The registry's storage root: a folder on any filesystem that ``pyarrow.fs`` reaches, and the writes it guarantees.

A root is given as a URI: a plain path (``/data/registry``, ``./registry``) or ``file://`` URI is a local
folder, ``s3://bucket/prefix`` or ``gs://bucket/prefix`` is object storage. Options ``pyarrow`` understands
ride along in the query string, e.g. ``s3://bucket/registry?endpoint_override=localhost:9000&scheme=http``
for an S3-compatible server, so moving the registry never needs a code change.

Two write primitives carry every guarantee the registry makes:

- :meth:`StorageRoot.write_atomic`: a reader sees the old state or the whole new file, never part of it.
  Locally that is a temporary file in the same folder renamed over the target; on object storage a single
  PUT (or a completed multipart upload) is already all-or-nothing.
- :meth:`StorageRoot.create_exclusive`: write a file only if it does not exist yet, so two racing writers
  cannot clobber each other. Locally that is ``os.link``, which fails when the target exists; on S3 it is a
  PUT with ``If-None-Match: *`` (:mod:`backbone.registry.s3_conditional`), which S3 refuses when the object
  exists. Other object stores (``gs://``) get check-then-write, safe with a single writer only (see
  :class:`backbone.registry.release.Releases`).
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs

from backbone.errors import RegistryError
from backbone.registry.s3_conditional import put_if_absent

# ``scheme://`` marks a URI; anything else is a local path, which ``pyarrow`` only accepts when absolute.
_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def open_root(uri: str) -> tuple[pafs.FileSystem, str]:
    """Resolve a registry root URI to a filesystem and the root's path inside it.

    A plain path is made absolute and its folder created if missing, so a fresh machine needs no setup.

    Args:
        uri: a local path, or a URI ``pyarrow.fs.FileSystem.from_uri`` accepts (``file://``, ``s3://``, ``gs://``).

    Returns:
        The filesystem and the root path in it (no trailing slash).

    Raises:
        RegistryError: the URI names no filesystem ``pyarrow`` can open.

    Example:
        >>> fs, path = open_root("/tmp/backbone-doc-registry")
        >>> type(fs).__name__, path
        ('LocalFileSystem', '/tmp/backbone-doc-registry')
    """
    if not _URI_SCHEME.match(uri):
        local = Path(uri).expanduser().resolve()
        local.mkdir(parents=True, exist_ok=True)
        return pafs.LocalFileSystem(), local.as_posix()
    try:
        fs, path = pafs.FileSystem.from_uri(uri)
    except (ValueError, OSError) as err:  # ArrowInvalid is a ValueError
        raise RegistryError(f"cannot open registry root {uri!r}: {err}") from err
    if isinstance(fs, pafs.LocalFileSystem):
        fs.create_dir(path, recursive=True)
    return fs, path.rstrip("/")


@dataclass(frozen=True)
class StorageRoot:
    """A registry root: a filesystem, the root's path in it, and the URI it was opened from.

    Every ``path`` argument below is relative to the root, with ``/`` separators.

    Args:
        fs: the ``pyarrow`` filesystem holding the root.
        base: the root's path inside ``fs``.
        uri: the URI the root was opened from, for messages.

    Example:
        >>> root = StorageRoot.open("/tmp/backbone-doc-root")
        >>> root.write_atomic("notes/hello.txt", b"hi")
        >>> root.read("notes/hello.txt")
        b'hi'
    """

    fs: pafs.FileSystem
    base: str
    uri: str

    @classmethod
    def open(cls, uri: str) -> StorageRoot:
        """Open the root at ``uri`` (see :func:`open_root`)."""
        fs, base = open_root(uri)
        # A relative path is kept absolute, so the URI still names the same root from another folder.
        return cls(fs=fs, base=base, uri=uri if _URI_SCHEME.match(uri) else base)

    @property
    def is_local(self) -> bool:
        """Whether the root is a local folder, where renames and hard links give atomicity."""
        return isinstance(self.fs, pafs.LocalFileSystem)

    def full(self, path: str) -> str:
        """The path inside ``fs`` of ``path`` under the root."""
        return f"{self.base}/{path}" if path else self.base

    def local_path(self, path: str) -> Path:
        """The local ``Path`` of ``path``; only meaningful when :attr:`is_local`."""
        return Path(self.full(path))

    def make_dir(self, path: str) -> None:
        """Create the folder ``path`` and its parents where the filesystem has real folders.

        Object stores have none (a folder is a key prefix), so there this does nothing rather than add
        marker objects.
        """
        if self.is_local:
            self.fs.create_dir(self.full(path), recursive=True)

    def open_output(self, path: str) -> pafs.NativeFile:
        """A stream writing the file ``path`` (replacing it), creating its folder if needed."""
        self.make_dir(posixpath.dirname(path))
        return self.fs.open_output_stream(self.full(path))

    def open_input(self, path: str) -> pafs.NativeFile:
        """A stream reading the file ``path``; ``FileNotFoundError`` if it is missing."""
        return self.fs.open_input_stream(self.full(path))

    def read(self, path: str) -> bytes | None:
        """The bytes of the file ``path``, or ``None`` if there is no such file."""
        try:
            with self.open_input(path) as stream:
                return stream.read()
        except FileNotFoundError:
            return None

    def write_atomic(self, path: str, data: bytes) -> None:
        """Write ``data`` to ``path`` so that readers see either no file or all of it.

        Args:
            path: the target file; replaced if it exists.
            data: its whole content.
        """
        if not self.is_local:
            with self.open_output(path) as stream:  # one PUT: the object appears complete or not at all
                stream.write(data)
            return
        target = self.local_path(path)
        temp = self._write_local_temp(target, data)
        os.replace(temp, target)

    def create_exclusive(self, path: str, data: bytes) -> bool:
        """Write ``data`` to ``path`` only if no file is there yet, atomically.

        Args:
            path: the target file.
            data: its whole content.

        Returns:
            ``True`` if this call created the file, ``False`` if it already existed (nothing is written).
        """
        if isinstance(self.fs, pafs.S3FileSystem):
            return put_if_absent(self.uri, self.full(path), data)
        if not self.is_local:
            # No conditional PUT through pyarrow: this check-then-write is only safe with a single writer.
            if self.fs.get_file_info(self.full(path)).type != pafs.FileType.NotFound:
                return False
            self.write_atomic(path, data)
            return True
        target = self.local_path(path)
        temp = self._write_local_temp(target, data)
        try:
            os.link(temp, target)  # fails if target exists: the race's loser learns it here, nothing lost
        except FileExistsError:
            return False
        finally:
            temp.unlink()
        return True

    def list_dir(self, path: str) -> list[pafs.FileInfo]:
        """The direct children of the folder ``path`` (none if it does not exist), sorted by name."""
        selector = pafs.FileSelector(self.full(path), allow_not_found=True)
        return sorted(self.fs.get_file_info(selector), key=lambda info: info.base_name)

    def list_files(self, path: str) -> dict[str, int]:
        """Every file below the folder ``path``, as its path relative to ``path`` and its size in bytes."""
        selector = pafs.FileSelector(self.full(path), recursive=True, allow_not_found=True)
        prefix = self.full(path) + "/"
        return {
            info.path.removeprefix(prefix): info.size
            for info in self.fs.get_file_info(selector)
            if info.type == pafs.FileType.File
        }

    def delete_dir(self, path: str) -> None:
        """Delete the folder ``path`` and all below it; nothing happens if it is already gone."""
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_dir(self.full(path))

    @staticmethod
    def _write_local_temp(target: Path, data: bytes) -> Path:
        """Write ``data`` to a fresh hidden file beside ``target`` and flush it to disk.

        The temporary file sits in the target's folder so that the rename or link that publishes it stays
        on one filesystem; the ``fsync`` keeps a machine crash from publishing a name with empty content.
        """
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.tmp-{secrets.token_hex(4)}")
        with temp.open("xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        return temp
