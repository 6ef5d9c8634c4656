"""The document ids an index is built over: one per row, none twice."""

from __future__ import annotations

from collections.abc import Sequence

from backbone.errors import BackboneError


def check_doc_ids(doc_ids: Sequence[str], rows: int, what: str) -> list[str]:
    """Return ``doc_ids`` as a list after checking that they name ``rows`` rows, at least one, uniquely.

    Args:
        doc_ids: the id of each row of the index, in row order.
        rows: how many rows (texts, embeddings) there are.
        what: what the rows are, for the error message, e.g. ``"texts"``.

    Raises:
        BackboneError: no rows, a count that differs, or an id used twice.

    Example:
        >>> check_doc_ids(("d1", "d2"), 2, "texts")
        ['d1', 'd2']
    """
    if len(doc_ids) != rows:
        raise BackboneError(f"got {len(doc_ids)} document ids but {rows} {what}")
    if not rows:
        raise BackboneError("cannot index an empty corpus")
    seen: set[str] = set()
    for doc_id in doc_ids:
        if doc_id in seen:
            raise BackboneError(f"duplicate document id {doc_id!r}")
        seen.add(doc_id)
    return list(doc_ids)
