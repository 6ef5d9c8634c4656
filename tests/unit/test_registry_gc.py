"""``backbone registry gc``: deletes what killed writers and finished runs left, and nothing anything needs."""

from __future__ import annotations

import os
import time
from pathlib import Path

from _registry_helpers import publish, write_files
from typer.testing import CliRunner

from backbone.cli import app
from backbone.registry import AppSettings, Registry, Releases

_DAY = 24 * 3600


def _age(path: Path, seconds: float) -> Path:
    """Set the modification time of ``path`` and everything below it ``seconds`` in the past."""
    past = time.time() - seconds
    for entry in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(entry, (past, past))
    return path


def _gc(*args: str) -> str:
    result = CliRunner().invoke(app, ["registry", "gc", *args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def test_gc_deletes_only_old_leftovers_and_keeps_artifacts_and_releases(
    tmp_path: Path, private_backbone_home: Path
) -> None:
    root = tmp_path / "registry"
    registry = Registry(str(root))
    retriever, reranker = publish(registry), publish(registry)
    Releases(registry).create(
        "legal",
        retriever_checkpoint=retriever.id,
        reranker_checkpoint=reranker.id,
        applications={"search": AppSettings(k=10, top_n=3)},
    )
    unpublished = write_files(root / "artifacts" / "checkpoint-20200101T000000Z-0a1b2c3d", {"files/w": b"w" * 500})
    write_files(root / "releases" / "legal", {".v000002.json.tmp-0badc0de": b"{", ".v000003.json.tmp-00c0ffee": b"{"})
    old_temp = _age(root / "releases" / "legal" / ".v000002.json.tmp-0badc0de", 2 * _DAY)  # a killed write
    new_temp = root / "releases" / "legal" / ".v000003.json.tmp-00c0ffee"  # a write in progress
    old_draft = _age(write_files(private_backbone_home / "drafts" / "report-x1", {"report.md": b"# r"}), 2 * _DAY)
    new_draft = write_files(private_backbone_home / "drafts" / "report-x2", {"report.md": b"# r"})
    download = _age(write_files(private_backbone_home / "cache" / retriever.id, {"w": b"w"}), 2 * _DAY)
    old_train = _age(write_files(root / "ray-train" / "stage-a", {"checkpoint_0/w": b"t" * 100}), 2 * _DAY)
    running_tune = _age(write_files(root / "ray-tune" / "search-b", {"state.json": b"{}"}), 2 * _DAY)
    running_tune_file = write_files(running_tune, {"trial/result.json": b"{}"}) / "trial" / "result.json"  # new

    listed = _gc("--registry", str(root), "--dry-run", "--run-state")
    assert "would free" in listed and "nothing deleted" in listed
    assert unpublished.exists() and old_temp.exists() and old_train.exists()

    out = _gc("--registry", str(root), "--run-state")
    for gone in (unpublished, old_temp, old_draft, old_train):
        assert not gone.exists(), (gone, out)
    assert unpublished.name in out and "ray-train/stage-a" in out
    for kept in (new_temp, new_draft, download, running_tune_file):
        assert kept.exists(), (kept, out)
    assert sorted(m.id for m in Registry(str(root)).list()) == sorted([retriever.id, reranker.id])
    assert Releases(Registry(str(root))).current("legal").reranker.checkpoint == reranker.id
    Registry(str(root)).verify(retriever.id)

    # Downloads only when asked; a second run finds nothing left.
    assert download.exists()
    _gc("--registry", str(root), "--downloads")
    assert not download.exists()
    assert "nothing to delete" in _gc("--registry", str(root), "--run-state", "--downloads")
