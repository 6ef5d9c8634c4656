"""The on-disk form of a prepared dataset: Parquet tables plus a ``manifest.json`` with counts and checksums.

Layout of a dataset directory::

    corpus.parquet  queries.parquet  judgments.parquet   the RetrievalDataset
    pairs/weak.parquet  pairs/train.parquet ...          optional extra (training) tables
    manifest.json                                        DatasetManifest, written last

A directory is only ever complete: :func:`save_dataset` builds it under a temporary name beside the target
and renames it into place, so a crash leaves either nothing or the previous dataset.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from backbone.data.dataset import CORPUS_SCHEMA, JUDGMENTS_SCHEMA, QUERIES_SCHEMA, RetrievalDataset
from backbone.errors import DataError

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
_CORE_TABLES = {"corpus": CORPUS_SCHEMA, "queries": QUERIES_SCHEMA, "judgments": JUDGMENTS_SCHEMA}
# Table names become relative paths inside the dataset directory: no "..", no absolute paths.
_TABLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SplitCounts(_Strict):
    """How much of a split a dataset holds."""

    queries: int = Field(ge=0, description="Queries with at least one judgment in the split.")
    judgments: int = Field(ge=0, description="Judgment rows of the split (any grade).")


class DatasetCounts(_Strict):
    """Row counts of a saved dataset, so that it can be described without reading its tables."""

    corpus: int = Field(ge=0, description="Documents in the corpus.")
    queries: int = Field(ge=0, description="Rows of the queries table (every split's queries, plus unjudged ones).")
    unjudged_queries: int | None = Field(
        None,
        ge=0,
        description="Queries of the queries table that no split judges (kept, in no split); "
        "null in manifests written before it was counted.",
    )
    splits: dict[str, SplitCounts] = Field(description="Per split: judged queries and judgments.")
    tables: dict[str, int] = Field(description="Rows of each extra table, by name (e.g. 'pairs/weak').")


class DatasetManifest(_Strict):
    """``manifest.json`` of a dataset directory: what it is, where it came from, and a checksum of every file."""

    format_version: int = Field(description="Version of this on-disk layout; readers refuse newer ones.")
    name: str = Field(description="Dataset name, e.g. 'stard' or a recipe's name.")
    source: dict[str, Any] = Field(
        description="Provenance: loader, source path or URL, subset parameters, judgments dropped by the loader."
    )
    created_at: datetime = Field(description="When the dataset was written (UTC).")
    counts: DatasetCounts = Field(description="Row counts of every table.")
    files: dict[str, str] = Field(description="SHA-256 of every data file, by path relative to the directory.")


def save_dataset(
    dataset: RetrievalDataset,
    out_dir: Path,
    *,
    name: str,
    extra_tables: Mapping[str, pa.Table] | None = None,
    overwrite: bool = False,
) -> DatasetManifest:
    """Write ``dataset`` (already validated by its loader) and any extra tables to ``out_dir``.

    Everything is written to ``.<out_dir name>.tmp-<uuid>`` beside ``out_dir``, the manifest last, and the
    directory is then renamed into place; on overwrite the old directory is moved aside first and deleted
    only once the new one is in place. A failure at any point removes the temporary directory and leaves
    ``out_dir`` as it was.

    Args:
        dataset: the dataset to save.
        out_dir: the dataset directory to create.
        name: the dataset's name, recorded in the manifest.
        extra_tables: more tables by relative name, e.g. ``{"pairs/weak": table}`` -> ``pairs/weak.parquet``.
        overwrite: replace an existing dataset directory (never a directory without a manifest).

    Example:
        >>> save_dataset(load_stard(Path("stard")), Path("out/stard"), name="stard").counts.corpus  # doctest: +SKIP
        55605
    """
    tables: dict[str, pa.Table] = {
        "corpus": dataset.corpus,
        "queries": dataset.queries,
        "judgments": dataset.judgments,
    }
    for table_name, table in sorted((extra_tables or {}).items()):
        if not _TABLE_NAME.match(table_name) or table_name in tables:
            raise DataError(out_dir, f"bad extra table name {table_name!r}: use a relative path like 'pairs/weak'")
        tables[table_name] = table
    _check_replaceable(out_dir, overwrite)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    temporary = out_dir.parent / f".{out_dir.name}.tmp-{uuid.uuid4().hex}"
    try:
        temporary.mkdir()
        files: dict[str, str] = {}
        for table_name, table in tables.items():
            relpath = f"{table_name}.parquet"
            (temporary / relpath).parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, temporary / relpath)
            files[relpath] = _sha256(temporary / relpath)
        manifest = DatasetManifest(
            format_version=FORMAT_VERSION,
            name=name,
            source=dataset.source,
            created_at=datetime.now(UTC),
            counts=_counts(dataset, {k: v for k, v in tables.items() if k not in _CORE_TABLES}),
            files=files,
        )
        _write_manifest(temporary, manifest)
        _move_into_place(temporary, out_dir)
    finally:
        # After a successful move the temporary name no longer exists; after a failure it goes.
        shutil.rmtree(temporary, ignore_errors=True)
    return manifest


def read_manifest(path: Path) -> DatasetManifest:
    """Read and validate the manifest of the dataset directory ``path``.

    Args:
        path: a directory written by :func:`save_dataset`.

    Example:
        >>> read_manifest(Path("out/stard")).counts.splits["dev"].queries  # doctest: +SKIP
        154
    """
    manifest_path = path / MANIFEST_NAME
    if not manifest_path.is_file():
        raise DataError(path, f"not a prepared dataset: no {MANIFEST_NAME}")
    try:
        raw = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(manifest_path, f"malformed JSON: {err}") from None
    if isinstance(raw, dict) and isinstance(raw.get("format_version"), int) and raw["format_version"] > FORMAT_VERSION:
        raise DataError(
            manifest_path,
            f"format_version {raw['format_version']} is newer than this backbone reads ({FORMAT_VERSION}); upgrade",
        )
    try:
        return DatasetManifest.model_validate(raw)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'manifest'}: {error['msg']}" for error in err.errors()
        )
        raise DataError(manifest_path, f"invalid manifest: {problems}") from None


def dataset_checksum(dataset_dir: Path) -> str:
    """One checksum of a prepared dataset: a hash of its manifest's file checksums, recorded in every lineage.

    Args:
        dataset_dir: a prepared dataset's folder.

    Example:
        >>> dataset_checksum(Path("datasets/stard-mini-797850a6b56d"))  # doctest: +SKIP
        '3f2a9c0d1b7e4a56'
    """
    files = read_manifest(dataset_dir).files
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]


def find_dataset(checksum: str, root: Path) -> Path | None:
    """The prepared dataset below ``root`` whose :func:`dataset_checksum` is ``checksum``, or ``None``.

    Datasets live outside the registry; an artifact's lineage names the one it was built from by checksum. Folders
    whose ``manifest.json`` is not a prepared dataset's (another tool's) are skipped.

    Args:
        checksum: the checksum a lineage recorded.
        root: where prepared datasets are (``$BACKBONE_DATASETS_DIR``), searched at any depth.

    Example:
        >>> find_dataset("3f2a9c0d1b7e4a56", Path("datasets"))  # doctest: +SKIP
        PosixPath('datasets/stard-mini-797850a6b56d')
    """
    if not root.is_dir():
        return None
    for folder in sorted(path.parent for path in root.glob(f"**/{MANIFEST_NAME}")):
        try:
            if dataset_checksum(folder) == checksum:
                return folder
        except DataError:
            continue  # not a prepared dataset
    return None


def load_dataset(path: Path) -> RetrievalDataset:
    """Load a dataset directory, verifying the checksum and schema of every table it reads.

    The returned dataset's ``source`` says it was loaded from ``path`` under the manifest's name, and keeps
    the manifest's own provenance under ``origin``.

    Args:
        path: a directory written by :func:`save_dataset`.

    Example:
        >>> load_dataset(Path("out/stard")).splits()  # doctest: +SKIP
        ['dev', 'train']
    """
    manifest = read_manifest(path)
    tables = {name: _read_verified(path, manifest, name, schema) for name, schema in _CORE_TABLES.items()}
    return RetrievalDataset(
        corpus=tables["corpus"],
        queries=tables["queries"],
        judgments=tables["judgments"],
        source={"loader": "dataset", "name": manifest.name, "path": str(path.resolve()), "origin": manifest.source},
    )


def read_table(path: Path, name: str) -> pa.Table:
    """Read one extra table of a dataset directory, verifying its checksum.

    Args:
        path: a directory written by :func:`save_dataset`.
        name: the table's name, e.g. ``"pairs/train"``.

    Example:
        >>> read_table(Path("out/stard"), "pairs/weak").column_names  # doctest: +SKIP
        ['anchor', 'positive', 'doc_id']
    """
    manifest = read_manifest(path)
    if name not in manifest.counts.tables:
        have = ", ".join(sorted(manifest.counts.tables)) or "none"
        raise DataError(path, f"dataset has no table {name!r}; it has: {have}")
    return _read_verified(path, manifest, name, None)


def _check_replaceable(out_dir: Path, overwrite: bool) -> None:
    if not out_dir.exists():
        return
    if not overwrite:
        raise DataError(out_dir, "already exists; pass overwrite=True (--overwrite) to replace it")
    # Overwrite deletes the old directory: only ever one this module wrote, never an arbitrary folder.
    if not (out_dir / MANIFEST_NAME).is_file():
        raise DataError(out_dir, f"exists and is not a prepared dataset (no {MANIFEST_NAME}); refusing to replace it")


def _move_into_place(temporary: Path, out_dir: Path) -> None:
    if not out_dir.exists():
        temporary.rename(out_dir)
        return
    old = out_dir.parent / f".{out_dir.name}.old-{uuid.uuid4().hex}"
    out_dir.rename(old)
    try:
        temporary.rename(out_dir)
    except BaseException:
        old.rename(out_dir)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _write_manifest(directory: Path, manifest: DatasetManifest) -> None:
    (directory / MANIFEST_NAME).write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")


def _counts(dataset: RetrievalDataset, extra_tables: Mapping[str, pa.Table]) -> DatasetCounts:
    per_split = dataset.judgments.group_by("split").aggregate([("query_id", "count_distinct"), ("query_id", "count")])
    splits = {
        split: SplitCounts(queries=queries, judgments=judgments)
        for split, queries, judgments in zip(
            per_split["split"].to_pylist(),
            per_split["query_id_count_distinct"].to_pylist(),
            per_split["query_id_count"].to_pylist(),
            strict=True,
        )
    }
    judged = pc.is_in(dataset.queries["query_id"], value_set=pc.unique(dataset.judgments["query_id"]))
    return DatasetCounts(
        corpus=dataset.corpus.num_rows,
        queries=dataset.queries.num_rows,
        unjudged_queries=dataset.queries.num_rows - (pc.sum(judged).as_py() or 0),
        splits=dict(sorted(splits.items())),
        tables={name: table.num_rows for name, table in extra_tables.items()},
    )


def _read_verified(root: Path, manifest: DatasetManifest, name: str, schema: pa.Schema | None) -> pa.Table:
    relpath = f"{name}.parquet"
    file = root / relpath
    if relpath not in manifest.files:
        raise DataError(root / MANIFEST_NAME, f"lists no checksum for {relpath}")
    if not file.is_file():
        raise DataError(file, f"missing (listed in {MANIFEST_NAME})")
    actual = _sha256(file)
    if actual != manifest.files[relpath]:
        raise DataError(
            file,
            f"checksum mismatch: {MANIFEST_NAME} records sha256 {manifest.files[relpath][:16]}..., "
            f"the file has {actual[:16]}...; it was changed or corrupted after it was written",
        )
    try:
        table = pq.read_table(file)
    except (pa.ArrowException, OSError) as err:
        raise DataError(file, f"cannot read Parquet: {err}") from None
    if schema is not None and not table.schema.equals(schema, check_metadata=False):
        raise DataError(file, f"has columns {table.schema.names}, expected {schema.names} with types {schema.types}")
    return table


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
