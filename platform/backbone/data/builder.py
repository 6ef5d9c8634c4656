"""Assemble a :class:`RetrievalDataset` record by record, checking every record against the file it came from.

Loaders only parse their format; the builder owns every consistency check, so each format is held to the
same rules and every failure names the file and line of the offending record.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Literal

import pyarrow as pa

from backbone.data.dataset import CORPUS_SCHEMA, JUDGMENTS_SCHEMA, QUERIES_SCHEMA, RetrievalDataset
from backbone.data.readers import Where

log = logging.getLogger(__name__)

UnknownJudgments = Literal["error", "drop"]
"""What :meth:`DatasetBuilder.build` does with a judgment naming a document the corpus lacks."""

# Split names become file names (pairs/<split>.parquet) and CLI arguments: keep them plain.
_SPLIT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class DatasetBuilder:
    """Collects documents, queries, splits and judgments, then checks them together in :meth:`build`.

    Checks, each raising :class:`~backbone.errors.DataError` at the record's file and line: duplicate
    document or query ids, empty document or query text (a title may be empty), a split declared twice or
    with a bad name, a duplicate judgment, a judgment naming an unknown query or (unless dropped, see
    :meth:`build`) an unknown document, and a split with no judged queries (no judgment with grade > 0).
    Queries without any judgment are kept in the queries table, in no split.

    Example:
        >>> from pathlib import Path
        >>> builder = DatasetBuilder()
        >>> builder.add_doc("d1", "Article 1", "text of article 1", Where(Path("corpus.jsonl"), 1))
        >>> builder.add_query("q1", "a question", Where(Path("queries.jsonl"), 1))
        >>> builder.add_split("dev", Where(Path("qrels/dev.tsv")))
        >>> builder.add_judgment("dev", "q1", "d1", 1, Where(Path("qrels/dev.tsv"), 2))
        >>> builder.build({"loader": "example"}).splits()
        ['dev']
    """

    def __init__(self) -> None:
        self._docs: dict[str, tuple[str, str]] = {}
        self._doc_lines: dict[str, Where] = {}
        self._queries: dict[str, str] = {}
        self._query_lines: dict[str, Where] = {}
        self._splits: dict[str, Where] = {}
        self._judgments: dict[tuple[str, str, str], tuple[int, Where]] = {}

    def add_doc(self, doc_id: str, title: str, text: str, where: Where) -> None:
        """Add a document; ``title`` may be empty, ``text`` may not."""
        if doc_id in self._docs:
            raise where.error(f"duplicate doc id {doc_id!r} (first at {self._doc_lines[doc_id]})")
        if not text.strip():
            raise where.error(f"doc {doc_id!r} has empty text")
        self._docs[doc_id] = (title, text)
        self._doc_lines[doc_id] = where

    def add_query(self, query_id: str, text: str, where: Where) -> None:
        """Add a query; its text may not be empty."""
        if query_id in self._queries:
            raise where.error(f"duplicate query id {query_id!r} (first at {self._query_lines[query_id]})")
        if not text.strip():
            raise where.error(f"query {query_id!r} has empty text")
        self._queries[query_id] = text
        self._query_lines[query_id] = where

    def add_split(self, split: str, where: Where) -> None:
        """Declare a split, with the file that defines it; :meth:`build` requires judgments for it."""
        if not _SPLIT_NAME.match(split):
            raise where.error(f"bad split name {split!r}: use letters, digits, '.', '_' and '-'")
        if split in self._splits:
            raise where.error(f"split {split!r} is also defined by {self._splits[split].path}")
        self._splits[split] = where

    def add_judgment(self, split: str, query_id: str, doc_id: str, grade: int, where: Where) -> None:
        """Add one judgment of a declared split; query and document are checked in :meth:`build`."""
        key = (split, query_id, doc_id)
        if key in self._judgments:
            first = self._judgments[key][1]
            raise where.error(f"duplicate judgment of query {query_id!r} and doc {doc_id!r} (first at {first})")
        self._judgments[key] = (grade, where)

    def build(self, source: dict[str, Any], *, unknown_judgments: UnknownJudgments = "error") -> RetrievalDataset:
        """Check the judgments against the corpus, queries and splits, and return the dataset.

        A judgment naming a document the corpus lacks fails at its line by default; with
        ``unknown_judgments="drop"`` it is left out and counted, and the returned ``source`` gains
        ``"unknown_judgments": "drop"`` and ``"dropped_judgments": {split: count}`` (every split, 0 included).
        A split left with no judged query still fails, saying how many judgments were dropped. A judgment
        naming an unknown query always fails, whatever the policy: with no query text it cannot be searched,
        and it means the queries and qrels files do not belong together.

        Args:
            source: the dataset's provenance (see :class:`RetrievalDataset`).
            unknown_judgments: ``"error"`` or ``"drop"`` for judgments of unknown documents.

        Example:
            >>> builder.add_judgment("dev", "q1", "gone", 1, Where(Path("qrels/dev.tsv"), 3))
            >>> builder.build({"loader": "example"}, unknown_judgments="drop").source["dropped_judgments"]
            {'dev': 1}
        """
        if unknown_judgments not in ("error", "drop"):
            raise ValueError(f"unknown_judgments must be 'error' or 'drop', got {unknown_judgments!r}")
        judged: set[str] = set()
        dropped = dict.fromkeys(sorted(self._splits), 0)
        first_dropped: str | None = None
        kept: dict[tuple[str, str, str], int] = {}
        for (split, query_id, doc_id), (grade, where) in self._judgments.items():
            if split not in self._splits:
                raise where.error(f"judgment of undeclared split {split!r}")
            if query_id not in self._queries:
                raise where.error(f"judgment names unknown query {query_id!r}")
            if doc_id not in self._docs:
                if unknown_judgments == "error":
                    raise where.error(f"query {query_id!r} judges unknown doc {doc_id!r}")
                dropped[split] += 1
                first_dropped = first_dropped or f"{where}: query {query_id!r} judges unknown doc {doc_id!r}"
                continue
            kept[split, query_id, doc_id] = grade
            if grade > 0:
                judged.add(split)
        for split, where in self._splits.items():
            if split not in judged:
                after = f" after dropping {dropped[split]} judgments of unknown docs" if dropped[split] else ""
                raise where.error(f"split {split!r} has no judged queries (no judgment with grade > 0){after}")
        if unknown_judgments == "drop":
            source = {**source, "unknown_judgments": "drop", "dropped_judgments": dropped}
            if first_dropped is not None:
                log.warning(
                    "dropped %d judgments of docs the corpus lacks (%s); the first: %s",
                    sum(dropped.values()),
                    ", ".join(f"{split} {count}" for split, count in dropped.items()),
                    first_dropped,
                )
        keys = list(kept)
        return RetrievalDataset(
            corpus=pa.table(
                {
                    "doc_id": list(self._docs),
                    "title": [title for title, _ in self._docs.values()],
                    "text": [text for _, text in self._docs.values()],
                },
                schema=CORPUS_SCHEMA,
            ),
            queries=pa.table(
                {"query_id": list(self._queries), "text": list(self._queries.values())}, schema=QUERIES_SCHEMA
            ),
            judgments=pa.table(
                {
                    "query_id": [query_id for _, query_id, _ in keys],
                    "doc_id": [doc_id for _, _, doc_id in keys],
                    "grade": list(kept.values()),
                    "split": [split for split, _, _ in keys],
                },
                schema=JUDGMENTS_SCHEMA,
            ),
            source=source,
        )
