"""The artifact registry on a real local filesystem: publish, find, load verified, and refuse damaged files."""

from __future__ import annotations

import json
import os
import re
from datetime import timedelta
from pathlib import Path

import pytest
from _registry_helpers import publish, write_files

from backbone.errors import ChecksumError, RegistryError
from backbone.registry import ArtifactKind, Lineage, Registry, code_version


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(str(tmp_path / "registry"))


def test_publish_records_manifest_and_stores_files(registry: Registry, tmp_path: Path) -> None:
    files = {"model.safetensors": os.urandom(5000), "1_Pooling/config.json": b'{"mode": "mean"}'}
    source = write_files(tmp_path / "ckpt", files)
    lineage = Lineage(recipe_hash="r" * 12, dataset_checksum="d" * 12)

    manifest = registry.publish(
        "checkpoint", source, name="retriever/stage-1", lineage=lineage, metrics={"ndcg@10": 0.41}, params={"lr": 2e-5}
    )

    assert manifest.id.startswith("checkpoint-")
    assert manifest.kind is ArtifactKind.CHECKPOINT
    assert manifest.lineage.code_version == code_version()
    assert set(manifest.files) == set(files)
    assert manifest.files["model.safetensors"].size == 5000
    root = Path(registry.root.base) / "artifacts" / manifest.id
    assert (root / "files" / "1_Pooling" / "config.json").read_bytes() == files["1_Pooling/config.json"]
    stored = json.loads((root / "manifest.json").read_text())
    assert stored["metrics"] == {"ndcg@10": 0.41} and stored["params"] == {"lr": 2e-5}
    # A fresh instance (another process, later) reads the same manifest back.
    assert Registry(registry.uri).get(manifest.id) == manifest


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_metric_json_cannot_hold_is_refused_and_nothing_is_published(
    registry: Registry, tmp_path: Path, value: float
) -> None:
    # A stage whose epochs trained no batch once published loss=NaN; JSON wrote null and the registry then
    # refused to read the manifest back, so every later run failed. Refused at publish, nothing is written.
    source = write_files(tmp_path / "ckpt", {"model.safetensors": b"weights"})
    with pytest.raises(
        RegistryError, match=r"(?s)cannot publish .* 'retriever/refinement'.*metrics.loss.*finite number"
    ):
        registry.publish("checkpoint", source, name="retriever/refinement", lineage=Lineage(), metrics={"loss": value})
    assert registry.list("checkpoint") == []
    assert not (Path(registry.root.base) / "artifacts").exists() or not any(
        (Path(registry.root.base) / "artifacts").iterdir()
    )


def test_list_filters_by_kind_and_sorts_oldest_first(registry: Registry) -> None:
    first = publish(registry, "checkpoint")
    index = publish(registry, "index", {"index.faiss": b"idx"}, parents=[first.id])
    second = publish(registry, "checkpoint")

    assert [m.id for m in Registry(registry.uri).list()] == [first.id, index.id, second.id]
    assert [m.id for m in registry.list("checkpoint")] == [first.id, second.id]
    assert [m.id for m in registry.list(ArtifactKind.INDEX)] == [index.id]
    assert registry.list("report") == []


def test_find_returns_oldest_artifact_with_cache_key(registry: Registry) -> None:
    publish(registry, "run", {"scores.json": b"{}"}, cache_key="other")
    first = publish(registry, "run", {"scores.json": b"{}"}, cache_key="k1")
    publish(registry, "run", {"scores.json": b"{}"}, cache_key="k1")

    assert registry.find("run", "k1") == first
    assert registry.find("run", "missing") is None
    assert registry.find("report", "k1") is None


def test_materialize_local_returns_verified_folder(registry: Registry) -> None:
    manifest = publish(registry, files={"model.safetensors": b"weights", "sub/vocab.txt": b"a\nb"})

    folder = registry.materialize(manifest.id)

    assert (folder / "model.safetensors").read_bytes() == b"weights"
    assert (folder / "sub" / "vocab.txt").read_bytes() == b"a\nb"


def test_materialize_to_dest_copies_and_reuses(registry: Registry, tmp_path: Path) -> None:
    manifest = publish(registry, files={"model.safetensors": b"weights"})
    dest = tmp_path / "copies" / "copy"

    assert registry.materialize(manifest.id, dest) == dest
    assert (dest / "model.safetensors").read_bytes() == b"weights"
    assert [p.name for p in dest.parent.iterdir()] == ["copy"]  # no temporary folder left beside it
    assert registry.materialize(manifest.id, dest) == dest

    other = publish(registry, files={"model.safetensors": b"other weights"})
    with pytest.raises(ChecksumError, match=other.id):  # a folder holding another artifact is no copy of this one
        registry.materialize(other.id, dest)

    (dest / "model.safetensors").write_bytes(b"WEIGHTS")  # a reused copy is checked too
    with pytest.raises(ChecksumError, match=r"model\.safetensors"):
        registry.materialize(manifest.id, dest)


def test_empty_artifact_materializes_as_empty_folder(registry: Registry) -> None:
    manifest = publish(registry, "run", {}, metrics={"mrr": 0.5})

    folder = registry.materialize(manifest.id)

    assert folder.is_dir() and list(folder.iterdir()) == []


def test_corrupted_file_is_refused_naming_artifact_and_file(registry: Registry) -> None:
    manifest = publish(registry, files={"model.safetensors": b"\x01" * 1000, "config.json": b"{}"})
    stored = Path(registry.root.base) / "artifacts" / manifest.id / "files" / "model.safetensors"
    stored.write_bytes(b"\x02" * 1000)  # same size, different bytes

    for load in (registry.materialize, registry.verify):
        with pytest.raises(ChecksumError, match=rf"{manifest.id}: file 'model.safetensors' has sha256"):
            load(manifest.id)


def test_corruption_after_a_verified_load_is_still_caught(registry: Registry) -> None:
    manifest = publish(registry, files={"model.safetensors": b"\x01" * 1000})
    folder = registry.materialize(manifest.id)
    stored = folder / "model.safetensors"
    stat = stored.stat()

    stored.write_bytes(b"\x02" * 1000)
    os.utime(stored, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # even within the clock's resolution

    with pytest.raises(ChecksumError, match=r"model\.safetensors"):
        registry.materialize(manifest.id)


@pytest.mark.parametrize("bad", ["../x", "../../outside.txt", "/etc/passwd", "a/../../b", "a//b", "./a", "C:x", "a\\b"])
def test_a_manifest_whose_file_path_could_leave_the_artifact_folder_is_refused(
    registry: Registry, tmp_path: Path, bad: str
) -> None:
    manifest = publish(registry, files={"config.json": b"{}"})
    path = Path(registry.root.base) / "artifacts" / manifest.id / "manifest.json"
    raw = json.loads(path.read_text())
    raw["files"][bad] = raw["files"]["config.json"]
    path.write_text(json.dumps(raw))

    refused = re.compile(rf"{manifest.id} .* is malformed: .*{re.escape(repr(bad))} is not a plain", re.DOTALL)
    with pytest.raises(RegistryError, match=refused):
        Registry(registry.uri).materialize(manifest.id, tmp_path / "dest" / "copy")
    assert not (tmp_path / "dest").exists() and not (tmp_path / "outside.txt").exists()


def test_pickle_weights_are_refused_at_publish_and_at_read(registry: Registry, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "model", {"config.json": b"{}", "pytorch_model.bin": b"\x80\x04pickle"})
    with pytest.raises(RegistryError, match=r"'pytorch_model.bin' is a pickle .* save weights as safetensors"):
        registry.publish("checkpoint", folder, name="retriever/pickled", lineage=Lineage())
    assert registry.list() == []

    manifest = publish(registry, files={"config.json": b"{}"})
    path = Path(registry.root.base) / "artifacts" / manifest.id / "manifest.json"
    raw = json.loads(path.read_text())
    raw["files"]["weights.PT"] = raw["files"]["config.json"]
    path.write_text(json.dumps(raw))
    with pytest.raises(RegistryError, match=re.compile(r"is malformed: .*'weights.PT' is a pickle", re.DOTALL)):
        Registry(registry.uri).materialize(manifest.id)


def test_missing_file_is_refused(registry: Registry) -> None:
    manifest = publish(registry)
    (Path(registry.root.base) / "artifacts" / manifest.id / "files" / "config.json").unlink()

    with pytest.raises(ChecksumError, match=rf"{manifest.id}: file 'config.json' is missing"):
        registry.materialize(manifest.id)
    with pytest.raises(ChecksumError, match="missing"):
        registry.materialize(manifest.id, Path(registry.root.base).parent / "copy")


def test_truncated_and_extra_files_are_refused(registry: Registry) -> None:
    manifest = publish(registry)
    files = Path(registry.root.base) / "artifacts" / manifest.id / "files"
    (files / "model.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(ChecksumError, match=r"'model.safetensors' .* is 10 bytes, the manifest records 64"):
        registry.verify(manifest.id)

    (files / "model.safetensors").write_bytes(b"\x00" * 64)
    (files / "pickle.bin").write_bytes(b"not published")
    with pytest.raises(ChecksumError, match=r"'pickle\.bin' .* not in its manifest"):
        registry.materialize(manifest.id)


def test_draft_publishes_on_clean_exit_only(registry: Registry) -> None:
    with registry.draft("report", name="eval/summary", lineage=Lineage()) as draft:
        (draft.path / "report.md").write_text("# results")
        draft.metrics["ndcg@10"] = 0.5
    assert draft.manifest is not None
    assert registry.get(draft.manifest.id).metrics == {"ndcg@10": 0.5}
    assert not draft.path.exists()

    with (
        pytest.raises(ValueError, match="training diverged"),
        registry.draft("report", name="x", lineage=Lineage()) as bad,
    ):
        (bad.path / "report.md").write_text("half")
        raise ValueError("training diverged")
    assert bad.manifest is None and not bad.path.exists()
    assert [m.id for m in registry.list()] == [draft.manifest.id]


def test_unknown_and_malformed_ids_are_clear_errors(registry: Registry) -> None:
    with pytest.raises(RegistryError, match=r"no artifact checkpoint-20250101T000000Z-00000000 .* registry list"):
        registry.get("checkpoint-20250101T000000Z-00000000")
    with pytest.raises(RegistryError, match="not an artifact id"):
        registry.get("../../etc")
    with pytest.raises(RegistryError, match="unknown artifact kind 'model'; kinds are: checkpoint, index"):
        registry.list("model")


def test_publish_refuses_bad_inputs_before_uploading(registry: Registry, tmp_path: Path) -> None:
    source = write_files(tmp_path / "src", {"a.txt": b"a"})
    with pytest.raises(RegistryError, match="lineage parent checkpoint-20250101T000000Z-00000000"):
        registry.publish("index", source, name="i", lineage=Lineage(parents=["checkpoint-20250101T000000Z-00000000"]))
    with pytest.raises(RegistryError, match="not a folder"):
        registry.publish("checkpoint", tmp_path / "nope", name="c", lineage=Lineage())
    with pytest.raises(RegistryError, match="cannot publish"):
        registry.publish("run", source, name="r", lineage=Lineage(), params={"fn": object()})
    assert list((Path(registry.root.base)).glob("artifacts/*")) == []


def test_gc_removes_only_old_unpublished_folders(registry: Registry) -> None:
    published = publish(registry)
    leftover = Path(registry.root.base) / "artifacts" / "checkpoint-20200101T000000Z-0123abcd"
    write_files(leftover / "files", {"model.safetensors": b"half"})
    recent = Path(registry.root.base) / "artifacts" / published.id.replace(published.id[-8:], "ffffffff")
    write_files(recent / "files", {"model.safetensors": b"in progress"})

    assert registry.gc() == [leftover.name]
    assert not leftover.exists() and recent.exists()
    assert registry.gc(older_than=timedelta(0)) == [recent.name]
    assert [m.id for m in registry.list()] == [published.id]
    registry.verify(published.id)


def test_plain_relative_path_root_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    registry = Registry("relative/registry")
    manifest = publish(registry)

    assert registry.root.base == registry.uri == (tmp_path / "relative" / "registry").as_posix()
    with pytest.raises(RegistryError, match="cannot open registry root 'nosuchfs://x'"):
        Registry("nosuchfs://x")
    assert Registry(f"file://{tmp_path}/relative/registry").get(manifest.id) == manifest


def test_default_root_comes_from_settings(private_backbone_home: Path) -> None:
    manifest = publish(Registry())
    assert (private_backbone_home / "registry" / "artifacts" / manifest.id / "manifest.json").is_file()
