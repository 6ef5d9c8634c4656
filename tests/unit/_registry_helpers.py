"""Helpers shared by the registry and release tests: small artifacts, and writer subprocesses."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from backbone.registry import ArtifactKind, ArtifactManifest, Lineage, Registry

WRITER = Path(__file__).with_name("_registry_writer.py")


def write_files(folder: Path, files: dict[str, bytes]) -> Path:
    """Write ``files`` (relative path -> content) below ``folder`` and return it."""
    for relpath, content in files.items():
        path = folder / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return folder


def publish(
    registry: Registry,
    kind: ArtifactKind | str = "checkpoint",
    files: dict[str, bytes] | None = None,
    *,
    parents: list[str] | None = None,
    name: str = "test/artifact",
    **fields: object,
) -> ArtifactManifest:
    """Publish a small artifact with ``files`` (default: a tiny safetensors-like checkpoint)."""
    files = files if files is not None else {"model.safetensors": b"\x00" * 64, "config.json": b'{"dim": 8}'}
    with tempfile.TemporaryDirectory() as folder:
        source = write_files(Path(folder), files)
        return registry.publish(kind, source, name=name, lineage=Lineage(parents=parents or []), **fields)


def start_writer(*args: str) -> subprocess.Popen[str]:
    """Start ``_registry_writer.py`` with ``args`` in a new process, its stdout readable as text."""
    return subprocess.Popen(
        [sys.executable, str(WRITER), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def start_together(go: Path, argument_lists: list[list[str]]) -> list[subprocess.Popen[str]]:
    """Start a writer per argument list, wait until each is ready, then release them all at once via ``go``."""
    writers = [start_writer(*arguments, "--go", str(go)) for arguments in argument_lists]
    for writer in writers:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "ready", f"writer failed to start: {writer.communicate()[1]}"
    go.touch()
    return writers


def finish(process: subprocess.Popen[str], timeout: float = 60) -> str:
    """Wait for a writer that should succeed and return what it printed."""
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, f"writer failed ({process.returncode}): {err}"
    return out
