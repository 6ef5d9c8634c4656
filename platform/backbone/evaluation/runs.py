"""Runs on disk: TREC run files (what trec_eval and ranx read) and Parquet tables.

Both list each query's documents in :func:`~backbone.evaluation.ranking.ranking` order with 1-based ranks,
queries sorted by id, so the same run always writes the same bytes. Reading checks every line or row and
keeps the scores; ranks are checked but not used, since the order follows from the scores. A query with no
results has no line or row, so it reads back absent, which every metric scores the same (0).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from backbone.data.readers import iter_fields
from backbone.errors import BackboneError, DataError
from backbone.evaluation.ranking import Run, ranking

RUN_SCHEMA = pa.schema(
    [("query_id", pa.string()), ("doc_id", pa.string()), ("rank", pa.int32()), ("score", pa.float64())]
)


def write_trec_run(run: Run, path: Path, tag: str = "backbone") -> None:
    """Write ``run`` as a TREC run file: ``query_id Q0 doc_id rank score tag`` a line.

    Args:
        run: query id -> document id -> score.
        path: the file to write.
        tag: the run's name in the last column.

    Raises:
        BackboneError: an id or the tag is empty or contains whitespace, which the format cannot hold.

    Example:
        >>> write_trec_run({"q1": {"d1": 2.5, "d2": 1.0}}, Path("bm25.trec"), tag="bm25")  # doctest: +SKIP
        >>> print(Path("bm25.trec").read_text())  # doctest: +SKIP
        q1 Q0 d1 1 2.5 bm25
        q1 Q0 d2 2 1.0 bm25
    """
    _check_field(tag, "tag")
    lines = []
    for query_id, doc_id, rank, score in _rows(run):
        _check_field(query_id, "query id")
        _check_field(doc_id, "document id")
        lines.append(f"{query_id} Q0 {doc_id} {rank} {score!r} {tag}\n")
    path.write_text("".join(lines), encoding="utf-8")


def read_trec_run(path: Path) -> Run:
    """Read a TREC run file; the second column (``Q0``) and the tag are not kept.

    Args:
        path: the file.

    Raises:
        DataError: naming the file and line of a line without six fields, a rank that is not a positive
            integer, a score that is not a finite number, or a document listed twice for a query.

    Example:
        >>> read_trec_run(Path("bm25.trec"))  # doctest: +SKIP
        {'q1': {'d1': 2.5, 'd2': 1.0}}
    """
    run: Run = {}
    for where, (query_id, _q0, doc_id, rank, score, tag) in iter_fields(path, 6, sep=None):
        if len(tag.split()) > 1:
            raise where.error(f"expected 6 whitespace-separated fields, got {5 + len(tag.split())}")
        try:
            parsed_rank = int(rank)
        except ValueError:
            raise where.error(f"rank must be a positive integer, got {rank!r}") from None
        try:
            parsed_score = float(score)
        except ValueError:
            raise where.error(f"score must be a number, got {score!r}") from None
        if problem := _add(run, query_id, doc_id, parsed_rank, parsed_score):
            raise where.error(problem)
    return run


def write_parquet_run(run: Run, path: Path) -> None:
    """Write ``run`` as a Parquet table with columns ``query_id``, ``doc_id``, ``rank``, ``score``.

    Args:
        run: query id -> document id -> score.
        path: the file to write.

    Example:
        >>> write_parquet_run({"q1": {"d1": 2.5}}, Path("bm25.parquet"))  # doctest: +SKIP
    """
    columns = list(zip(*_rows(run), strict=True)) or [(), (), (), ()]
    pq.write_table(pa.table(dict(zip(RUN_SCHEMA.names, columns, strict=True)), schema=RUN_SCHEMA), path)


def read_parquet_run(path: Path) -> Run:
    """Read a run written by :func:`write_parquet_run`.

    Args:
        path: the Parquet file.

    Raises:
        DataError: a file that is not Parquet, a missing or mistyped column, or a bad row (named by its
            1-based number).

    Example:
        >>> read_parquet_run(Path("bm25.parquet"))  # doctest: +SKIP
        {'q1': {'d1': 2.5}}
    """
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        table = pq.read_table(path)
    except pa.ArrowException as err:
        raise DataError(path, f"not a Parquet file ({err})") from None
    missing = [name for name in RUN_SCHEMA.names if name not in table.column_names]
    if missing:
        raise DataError(path, f"missing column(s) {', '.join(missing)}; a run has {', '.join(RUN_SCHEMA.names)}")
    try:
        table = table.select(RUN_SCHEMA.names).cast(RUN_SCHEMA)
    except pa.ArrowException as err:
        raise DataError(path, f"a column has the wrong type: {err}") from None
    run: Run = {}
    columns = [table[name].to_pylist() for name in RUN_SCHEMA.names]
    for row, (query_id, doc_id, rank, score) in enumerate(zip(*columns, strict=True), start=1):
        if None in (query_id, doc_id, rank, score):
            raise DataError(path, f"row {row}: has a null value")
        if problem := _add(run, query_id, doc_id, rank, score):
            raise DataError(path, f"row {row}: {problem}")
    return run


def _rows(run: Run) -> Iterator[tuple[str, str, int, float]]:
    for query_id in sorted(run):
        for rank, (doc_id, score) in enumerate(ranking(run[query_id]), start=1):
            yield query_id, doc_id, rank, float(score)


def _check_field(value: str, what: str) -> None:
    if not value or len(value.split()) != 1 or value.strip() != value:
        raise BackboneError(f"{what} {value!r} cannot be written to a TREC run: it is empty or has whitespace")


def _add(run: Run, query_id: str, doc_id: str, rank: int, score: float) -> str | None:
    """Add one result read from a file to ``run``; return what is wrong with it instead, if anything is."""
    if rank < 1:
        return f"rank must be a positive integer, got {rank}"
    if not math.isfinite(score):
        return f"score must be finite, got {score}"
    results = run.setdefault(query_id, {})
    if doc_id in results:
        return f"document {doc_id!r} is listed twice for query {query_id!r}"
    results[doc_id] = score
    return None
