"""The in-memory retrieval dataset every loader returns: a corpus, queries, and graded judgments by split."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from backbone.errors import BackboneError

CORPUS_SCHEMA = pa.schema([("doc_id", pa.string()), ("title", pa.string()), ("text", pa.string())])
QUERIES_SCHEMA = pa.schema([("query_id", pa.string()), ("text", pa.string())])
JUDGMENTS_SCHEMA = pa.schema(
    [("query_id", pa.string()), ("doc_id", pa.string()), ("grade", pa.int32()), ("split", pa.string())]
)


@dataclass(frozen=True)
class RetrievalDataset:
    """A corpus, its queries and graded relevance judgments, each judgment tagged with its split.

    Ids are always strings. Loaders (and :class:`~backbone.data.builder.DatasetBuilder`) guarantee the
    contents: unique ids, non-empty texts, judgments that name known queries and documents, and at least
    one relevant judgment per split. The constructor only checks the schemas.

    Args:
        corpus: ``doc_id``, ``title`` (may be empty), ``text`` (never empty); see ``CORPUS_SCHEMA``.
        queries: ``query_id``, ``text``; every query of every split, plus any unjudged ones the source has.
        judgments: ``query_id``, ``doc_id``, ``grade`` (int32, > 0 is relevant), ``split``.
        source: free-form provenance: loader, name, source path, subset parameters, ...

    Example:
        >>> dataset = RetrievalDataset(
        ...     corpus=pa.table({"doc_id": ["d1"], "title": [""], "text": ["a statute"]}, schema=CORPUS_SCHEMA),
        ...     queries=pa.table({"query_id": ["q1"], "text": ["a question"]}, schema=QUERIES_SCHEMA),
        ...     judgments=pa.table(
        ...         {"query_id": ["q1"], "doc_id": ["d1"], "grade": [1], "split": ["dev"]}, schema=JUDGMENTS_SCHEMA
        ...     ),
        ...     source={"loader": "example"},
        ... )
        >>> dataset.relevant("dev")
        {'q1': {'d1': 1}}
    """

    corpus: pa.Table
    queries: pa.Table
    judgments: pa.Table
    source: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, table, schema in (
            ("corpus", self.corpus, CORPUS_SCHEMA),
            ("queries", self.queries, QUERIES_SCHEMA),
            ("judgments", self.judgments, JUDGMENTS_SCHEMA),
        ):
            if not table.schema.equals(schema, check_metadata=False):
                raise ValueError(f"{name} table has schema {table.schema}, expected {schema}")

    def splits(self) -> list[str]:
        """The split names that have judgments, sorted.

        Example:
            >>> dataset.splits()  # doctest: +SKIP
            ['dev', 'train']
        """
        return sorted(pc.unique(self.judgments["split"]).to_pylist())

    def query_ids(self, split: str) -> list[str]:
        """The sorted ids of the queries judged in ``split``.

        Args:
            split: a split name from :meth:`splits`.

        Example:
            >>> dataset.query_ids("dev")[:3]  # doctest: +SKIP
            ['1005', '1010', '1024']
        """
        return sorted(pc.unique(self.split_judgments(split)["query_id"]).to_pylist())

    def relevant(self, split: str) -> dict[str, dict[str, int]]:
        """The relevant documents of each query of ``split``: ``{query_id: {doc_id: grade}}``, grade > 0.

        Judgments with grade 0 (judged non-relevant) are left out, so every entry counts as a hit.

        Args:
            split: a split name from :meth:`splits`.

        Example:
            >>> dataset.relevant("train")["0"]  # doctest: +SKIP
            {'705': 1, '49282': 1}
        """
        judged = self.split_judgments(split)
        judged = judged.filter(pc.greater(judged["grade"], 0))
        relevant: dict[str, dict[str, int]] = {}
        for query_id, doc_id, grade in zip(
            judged["query_id"].to_pylist(), judged["doc_id"].to_pylist(), judged["grade"].to_pylist(), strict=True
        ):
            relevant.setdefault(query_id, {})[doc_id] = grade
        return relevant

    def split_judgments(self, split: str) -> pa.Table:
        """The judgments of ``split`` (every grade); an unknown split is an error naming the known ones.

        Args:
            split: a split name from :meth:`splits`.

        Example:
            >>> dataset.split_judgments("dev").num_rows  # doctest: +SKIP
            253
        """
        judged = self.judgments.filter(pc.equal(self.judgments["split"], split))
        if not judged.num_rows:
            raise BackboneError(f"dataset has no split {split!r}; it has: {', '.join(self.splits()) or 'none'}")
        return judged
