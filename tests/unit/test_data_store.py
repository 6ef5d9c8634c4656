"""save_dataset / load_dataset: round trip, manifest, atomic writes and overwrites, checksum verification."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from backbone.data import (
    DatasetBuilder,
    RetrievalDataset,
    dataset_checksum,
    find_dataset,
    load_dataset,
    read_manifest,
    read_table,
    save_dataset,
)
from backbone.data import store as store_module
from backbone.data.readers import Where
from backbone.errors import DataError

PAIRS = pa.table({"anchor": ["a"], "positive": ["b"]})


@pytest.fixture
def dataset() -> RetrievalDataset:
    builder = DatasetBuilder()
    where = Where(Path("made-up"), 1)
    for doc in ("d1", "d2", "d3"):
        builder.add_doc(doc, f"title {doc}", f"text {doc}", where)
    for query in ("q1", "q2", "q3"):
        builder.add_query(query, f"text {query}", where)
    builder.add_split("train", where)
    builder.add_split("dev", where)
    builder.add_judgment("train", "q1", "d1", 1, where)
    builder.add_judgment("train", "q1", "d2", 1, where)
    builder.add_judgment("train", "q2", "d2", 0, where)
    builder.add_judgment("dev", "q3", "d3", 2, where)
    return builder.build({"loader": "test", "name": "tiny"})


def leftovers(parent: Path) -> list[str]:
    """Temporary or moved-aside directories that a save must never leave behind."""
    return sorted(path.name for path in parent.iterdir() if path.name.startswith("."))


def test_round_trip(tmp_path: Path, dataset: RetrievalDataset) -> None:
    out = tmp_path / "datasets" / "tiny"
    manifest = save_dataset(dataset, out, name="tiny-v1", extra_tables={"pairs/weak": PAIRS})

    loaded = load_dataset(out)
    assert loaded.corpus.equals(dataset.corpus)
    assert loaded.queries.equals(dataset.queries)
    assert loaded.judgments.equals(dataset.judgments)
    assert loaded.source == {
        "loader": "dataset",
        "name": "tiny-v1",
        "path": str(out.resolve()),
        "origin": dataset.source,
    }
    assert read_table(out, "pairs/weak").equals(PAIRS)

    assert read_manifest(out) == manifest
    assert manifest.name == "tiny-v1"
    assert manifest.format_version == store_module.FORMAT_VERSION
    assert manifest.counts.model_dump() == {
        "corpus": 3,
        "queries": 3,
        "unjudged_queries": 0,
        "splits": {"dev": {"queries": 1, "judgments": 1}, "train": {"queries": 2, "judgments": 3}},
        "tables": {"pairs/weak": 1},
    }
    assert sorted(manifest.files) == ["corpus.parquet", "judgments.parquet", "pairs/weak.parquet", "queries.parquet"]
    assert leftovers(out.parent) == []


def test_queries_without_judgments_are_kept_and_counted(tmp_path: Path) -> None:
    builder = DatasetBuilder()
    where = Where(Path("made-up"), 1)
    builder.add_doc("d1", "", "text", where)
    for query in ("q1", "q2", "q3", "q4"):
        builder.add_query(query, f"text {query}", where)
    builder.add_split("dev", where)
    builder.add_judgment("dev", "q1", "d1", 1, where)
    builder.add_judgment("dev", "q2", "d1", 0, where)  # judged non-relevant: in the split, not unjudged

    manifest = save_dataset(builder.build({"loader": "test"}), tmp_path / "tiny", name="tiny")

    assert manifest.counts.queries == 4
    assert manifest.counts.unjudged_queries == 2
    assert manifest.counts.splits["dev"].queries == 2
    assert load_dataset(tmp_path / "tiny").queries["query_id"].to_pylist() == ["q1", "q2", "q3", "q4"]


def test_a_manifest_written_before_unjudged_queries_were_counted_still_reads(
    tmp_path: Path, dataset: RetrievalDataset
) -> None:
    save_dataset(dataset, tmp_path / "tiny", name="tiny")
    path = tmp_path / "tiny" / "manifest.json"
    raw = json.loads(path.read_text())
    del raw["counts"]["unjudged_queries"]
    path.write_text(json.dumps(raw))
    assert read_manifest(tmp_path / "tiny").counts.unjudged_queries is None


def test_manifest_is_strict_json(tmp_path: Path, dataset: RetrievalDataset) -> None:
    save_dataset(dataset, tmp_path / "tiny", name="tiny")
    raw = json.loads((tmp_path / "tiny" / "manifest.json").read_text())
    assert raw["source"] == {"loader": "test", "name": "tiny"}
    assert store_module.DatasetManifest.model_json_schema()["additionalProperties"] is False
    for name, field in store_module.DatasetManifest.model_fields.items():
        assert field.description, name


def test_refuses_existing_directory_without_overwrite(tmp_path: Path, dataset: RetrievalDataset) -> None:
    save_dataset(dataset, tmp_path / "tiny", name="tiny")
    with pytest.raises(DataError, match=r"tiny: already exists; pass overwrite=True \(--overwrite\)"):
        save_dataset(dataset, tmp_path / "tiny", name="tiny")


def test_overwrite_replaces(tmp_path: Path, dataset: RetrievalDataset) -> None:
    save_dataset(dataset, tmp_path / "tiny", name="first", extra_tables={"pairs/weak": PAIRS})
    save_dataset(dataset, tmp_path / "tiny", name="second", overwrite=True)
    assert read_manifest(tmp_path / "tiny").name == "second"
    assert not (tmp_path / "tiny" / "pairs").exists()
    assert leftovers(tmp_path) == []


def test_overwrite_never_deletes_a_folder_that_is_not_a_dataset(tmp_path: Path, dataset: RetrievalDataset) -> None:
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "notes.txt").write_text("precious")
    with pytest.raises(DataError, match=r"home: exists and is not a prepared dataset \(no manifest\.json\)"):
        save_dataset(dataset, tmp_path / "home", name="tiny", overwrite=True)
    assert (tmp_path / "home" / "notes.txt").read_text() == "precious"


def test_bad_extra_table_name(tmp_path: Path, dataset: RetrievalDataset) -> None:
    for name in ("../escape", "/abs", "corpus", "pairs//x"):
        with pytest.raises(DataError, match="bad extra table name"):
            save_dataset(dataset, tmp_path / "tiny", name="tiny", extra_tables={name: PAIRS})
    assert not (tmp_path / "tiny").exists()


def fail_manifest(directory: Path, manifest: store_module.DatasetManifest) -> None:
    raise OSError("disk full while writing the manifest")


def test_failed_save_leaves_nothing(tmp_path: Path, dataset: RetrievalDataset, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "_write_manifest", fail_manifest)
    with pytest.raises(OSError, match="disk full"):
        save_dataset(dataset, tmp_path / "tiny", name="tiny", extra_tables={"pairs/weak": PAIRS})
    assert list(tmp_path.iterdir()) == []


def test_failed_table_write_leaves_nothing(tmp_path: Path, dataset: RetrievalDataset) -> None:
    # Parquet has no interval type: this extra table fails after the core tables are already written.
    unstorable = pa.table({"x": pa.array([pa.MonthDayNano([1, 2, 3])], pa.month_day_nano_interval())})
    with pytest.raises(pa.ArrowNotImplementedError):
        save_dataset(dataset, tmp_path / "tiny", name="tiny", extra_tables={"pairs/weak": unstorable})
    assert list(tmp_path.iterdir()) == []


def test_failed_overwrite_keeps_the_previous_dataset(
    tmp_path: Path, dataset: RetrievalDataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = save_dataset(dataset, tmp_path / "tiny", name="before")
    monkeypatch.setattr(store_module, "_write_manifest", fail_manifest)
    with pytest.raises(OSError, match="disk full"):
        save_dataset(dataset, tmp_path / "tiny", name="after", overwrite=True)
    assert read_manifest(tmp_path / "tiny") == before
    assert load_dataset(tmp_path / "tiny").corpus.equals(dataset.corpus)
    assert leftovers(tmp_path) == []


def test_failed_rename_restores_the_previous_dataset(
    tmp_path: Path, dataset: RetrievalDataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = save_dataset(dataset, tmp_path / "tiny", name="before")
    rename = Path.rename

    def failing_rename(self: Path, target: Path) -> Path:
        if self.name.startswith(".tiny.tmp-"):
            raise OSError("rename failed")
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", failing_rename)
    with pytest.raises(OSError, match="rename failed"):
        save_dataset(dataset, tmp_path / "tiny", name="after", overwrite=True)
    monkeypatch.undo()
    assert read_manifest(tmp_path / "tiny") == before
    assert leftovers(tmp_path) == []


def test_checksum_mismatch_names_the_file(tmp_path: Path, dataset: RetrievalDataset) -> None:
    save_dataset(dataset, tmp_path / "tiny", name="tiny", extra_tables={"pairs/weak": PAIRS})
    corpus = tmp_path / "tiny" / "corpus.parquet"
    data = bytearray(corpus.read_bytes())
    data[len(data) // 2] ^= 0xFF
    corpus.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"tiny/corpus\.parquet: checksum mismatch"):
        load_dataset(tmp_path / "tiny")

    pq.write_table(pa.table({"anchor": ["changed"], "positive": ["b"]}), tmp_path / "tiny" / "pairs" / "weak.parquet")
    with pytest.raises(DataError, match=r"tiny/pairs/weak\.parquet: checksum mismatch"):
        read_table(tmp_path / "tiny", "pairs/weak")


def test_missing_table_file(tmp_path: Path, dataset: RetrievalDataset) -> None:
    save_dataset(dataset, tmp_path / "tiny", name="tiny")
    (tmp_path / "tiny" / "queries.parquet").unlink()
    with pytest.raises(DataError, match=r"tiny/queries\.parquet: missing \(listed in manifest\.json\)"):
        load_dataset(tmp_path / "tiny")


def test_unknown_extra_table(tmp_path: Path, dataset: RetrievalDataset) -> None:
    save_dataset(dataset, tmp_path / "tiny", name="tiny", extra_tables={"pairs/weak": PAIRS})
    with pytest.raises(DataError, match=r"dataset has no table 'pairs/train'; it has: pairs/weak"):
        read_table(tmp_path / "tiny", "pairs/train")


def test_not_a_dataset(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"not a prepared dataset: no manifest\.json"):
        load_dataset(tmp_path)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda raw: "{not json", r"manifest\.json: malformed JSON"),
        (lambda raw: {**raw, "colour": "red"}, r"manifest\.json: invalid manifest: colour: Extra inputs"),
        (lambda raw: {**raw, "counts": {**raw["counts"], "corpus": -1}}, r"invalid manifest: counts\.corpus"),
        (lambda raw: {**raw, "format_version": 99}, r"format_version 99 is newer than this backbone reads"),
    ],
)
def test_bad_manifest(tmp_path: Path, dataset: RetrievalDataset, edit, expected: str) -> None:
    save_dataset(dataset, tmp_path / "tiny", name="tiny")
    manifest = tmp_path / "tiny" / "manifest.json"
    edited = edit(json.loads(manifest.read_text()))
    manifest.write_text(edited if isinstance(edited, str) else json.dumps(edited))
    with pytest.raises(DataError, match=expected):
        read_manifest(tmp_path / "tiny")


def test_find_dataset_picks_the_one_with_the_checksum_at_any_depth(tmp_path: Path, dataset: RetrievalDataset) -> None:
    root = tmp_path / "datasets"
    save_dataset(dataset, root / "a", name="a")
    nested = root / "more" / "b"
    save_dataset(dataset, nested, name="b", extra_tables={"pairs/weak": PAIRS})
    (root / "other-tool").mkdir()
    (root / "other-tool" / "manifest.json").write_text("{}")  # not a prepared dataset: skipped
    wanted = dataset_checksum(nested)
    assert wanted != dataset_checksum(root / "a")

    assert find_dataset(wanted, root) == nested
    assert find_dataset("0" * 16, root) is None
    assert find_dataset(wanted, tmp_path / "missing") is None
