"""TREC qrels files: ``query_id iteration doc_id grade`` a line, separated by whitespace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from backbone.data.dataset import JUDGMENTS_SCHEMA
from backbone.data.readers import Where, iter_fields, parse_grade


def iter_trec_qrels(path: Path) -> Iterator[tuple[Where, str, str, int]]:
    """Yield ``(where, query_id, doc_id, grade)`` for each line of a TREC qrels file; the iteration is ignored.

    Args:
        path: the qrels file.

    Example:
        >>> for where, query_id, doc_id, grade in iter_trec_qrels(Path("qrels.train.tsv")):  # doctest: +SKIP
        ...     print(query_id, doc_id, grade)
    """
    for where, (query_id, _iteration, doc_id, grade) in iter_fields(path, 4, sep=None):
        yield where, query_id, doc_id, parse_grade(grade, where)


def read_trec_qrels(path: Path, split: str) -> pa.Table:
    """Read a TREC qrels file as a judgments table (``JUDGMENTS_SCHEMA``) of ``split``.

    A malformed line raises :class:`~backbone.errors.DataError` with its line number. The table is not
    checked against any corpus; :func:`~backbone.data.beir.load_beir` does that when it adds qrels to a dataset.

    Args:
        path: the qrels file.
        split: the split name every row gets.

    Example:
        >>> read_trec_qrels(Path("qrels.train.tsv"), "train").num_rows  # doctest: +SKIP
        2205
    """
    rows = [(query_id, doc_id, grade) for _, query_id, doc_id, grade in iter_trec_qrels(path)]
    return pa.table(
        {
            "query_id": [query_id for query_id, _, _ in rows],
            "doc_id": [doc_id for _, doc_id, _ in rows],
            "grade": [grade for _, _, grade in rows],
            "split": [split] * len(rows),
        },
        schema=JUDGMENTS_SCHEMA,
    )
