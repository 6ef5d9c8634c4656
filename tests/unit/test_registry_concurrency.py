"""Publishing under failure and contention, with real processes: killed writers and racing writers."""

from __future__ import annotations

import os
import select
import signal
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from _registry_helpers import finish, publish, start_together, start_writer, write_files

from backbone.errors import RegistryError
from backbone.registry import Registry


def _wait_for_pause(process: subprocess.Popen[str], timeout: float = 30) -> str:
    """The id of the artifact the writer paused on, once it says it has."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, "the writer never reached its pause point"
    line = process.stdout.readline().strip()
    assert line.startswith("paused "), f"unexpected writer output {line!r}: {process.stderr}"
    return line.removeprefix("paused ")


def _kill(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    assert process.returncode == -signal.SIGKILL


@pytest.mark.parametrize("pause_at", ["file:4", "manifest"])
def test_writer_killed_mid_publish_leaves_nothing_visible(tmp_path: Path, pause_at: str) -> None:
    root = str(tmp_path / "registry")
    files = {f"shard-{n:02d}.safetensors": os.urandom(256 * 1024) for n in range(8)}
    source = write_files(tmp_path / "ckpt", files)
    writer = start_writer("publish", root, str(source), "--pause-at", pause_at)
    try:
        partial_id = _wait_for_pause(writer)
    finally:
        _kill(writer)

    folder = tmp_path / "registry" / "artifacts" / partial_id
    stored = sorted(p.name for p in (folder / "files").iterdir())
    if pause_at == "manifest":
        assert stored == sorted(files)
        assert any(p.name.startswith(".manifest.json.tmp-") for p in folder.iterdir())
    else:  # three whole files and half of the fourth reached the store
        assert stored == sorted(files)[:4]
        assert (folder / "files" / stored[-1]).stat().st_size == len(files[stored[-1]]) // 2
    assert not (folder / "manifest.json").exists()

    reader = Registry(root)
    assert reader.list() == []
    with pytest.raises(RegistryError, match=f"no artifact {partial_id}"):
        reader.get(partial_id)
    with pytest.raises(RegistryError, match=f"no artifact {partial_id}"):
        reader.materialize(partial_id)

    # The store still works, and the leftover is garbage that gc can remove.
    published = publish(reader, files={"model.safetensors": b"whole"})
    assert [m.id for m in Registry(root).list()] == [published.id]
    assert reader.gc(older_than=timedelta(0)) == [partial_id]
    assert not folder.exists()
    Registry(root).verify(published.id)


def test_concurrent_writers_never_clobber_each_other(tmp_path: Path) -> None:
    root = str(tmp_path / "registry")
    go = tmp_path / "go"
    sources = {
        n: write_files(tmp_path / f"src-{n}", {"model.safetensors": os.urandom(64 * 1024), "config.json": b"%d" % n})
        for n in range(8)
    }
    writers = start_together(go, [["publish", root, str(source)] for source in sources.values()])
    ids = {n: finish(writer).strip() for n, writer in zip(sources, writers, strict=True)}

    assert len(set(ids.values())) == len(sources)
    registry = Registry(root)
    assert sorted(m.id for m in registry.list()) == sorted(ids.values())
    for n, artifact_id in ids.items():
        folder = registry.materialize(artifact_id)
        assert (folder / "config.json").read_bytes() == b"%d" % n
        assert (folder / "model.safetensors").read_bytes() == (sources[n] / "model.safetensors").read_bytes()
