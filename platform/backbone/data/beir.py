"""Load a dataset in the BEIR layout: ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from backbone.data.builder import DatasetBuilder, UnknownJudgments
from backbone.data.dataset import RetrievalDataset
from backbone.data.readers import Where, iter_fields, iter_jsonl, parse_grade, read_id, read_text
from backbone.data.trec import iter_trec_qrels
from backbone.errors import DataError

_QRELS_HEADER = ["query-id", "corpus-id", "score"]


def load_beir(
    source: Path, trec_qrels: dict[str, Path] | None = None, *, unknown_judgments: UnknownJudgments = "error"
) -> RetrievalDataset:
    """Load a BEIR-format directory.

    Layout: ``corpus.jsonl`` lines ``{"_id", "title", "text"}`` (title optional), ``queries.jsonl`` lines
    ``{"_id", "text"}``, and one ``qrels/<split>.tsv`` per split with the header
    ``query-id<TAB>corpus-id<TAB>score`` and then one judgment a line. Other fields (``metadata``) are ignored.
    Queries that no split judges are kept, in no split.

    Args:
        source: the dataset directory.
        trec_qrels: extra splits from TREC qrels files, ``{split: path}``; a split named here replaces the
            ``qrels/<split>.tsv`` of the same name.
        unknown_judgments: a judgment (BEIR or TREC qrels) naming a document ``corpus.jsonl`` lacks:
            ``"error"`` fails at its file and line, ``"drop"`` leaves it out and counts it per split in
            ``source["dropped_judgments"]`` (see :meth:`~backbone.data.builder.DatasetBuilder.build`).

    Example:
        >>> dataset = load_beir(Path("scifact"), trec_qrels={"hard": Path("hard.qrels")})  # doctest: +SKIP
        >>> dataset.splits()  # doctest: +SKIP
        ['hard', 'test', 'train']
        >>> load_beir(Path("aila"), unknown_judgments="drop").source["dropped_judgments"]  # doctest: +SKIP
        {'test': 3}
    """
    qrels_files = {path.name.removesuffix(".tsv"): path for path in sorted((source / "qrels").glob("*.tsv"))}
    qrels_files.update(trec_qrels or {})
    if not qrels_files:
        raise DataError(source / "qrels", "no qrels/<split>.tsv files (and no TREC qrels given): no splits")
    builder = DatasetBuilder()
    for where, record in iter_jsonl(source / "corpus.jsonl"):
        title = read_text(record, "title", where, required=False)
        builder.add_doc(read_id(record, "_id", where), title, read_text(record, "text", where), where)
    for where, record in iter_jsonl(source / "queries.jsonl"):
        builder.add_query(read_id(record, "_id", where), read_text(record, "text", where), where)
    for split, path in qrels_files.items():
        builder.add_split(split, Where(path))
        judgments = iter_trec_qrels(path) if split in (trec_qrels or {}) else _iter_beir_qrels(path)
        for where, query_id, doc_id, grade in judgments:
            builder.add_judgment(split, query_id, doc_id, grade, where)
    return builder.build(
        {
            "loader": "beir",
            "name": source.resolve().name,
            "path": str(source.resolve()),
            "trec_qrels": {split: str(path.resolve()) for split, path in (trec_qrels or {}).items()},
        },
        unknown_judgments=unknown_judgments,
    )


def _iter_beir_qrels(path: Path) -> Iterator[tuple[Where, str, str, int]]:
    for index, (where, fields) in enumerate(iter_fields(path, 3)):
        # The header is optional in practice: some exports drop it.
        if index == 0 and fields == _QRELS_HEADER:
            continue
        query_id, doc_id, grade = fields
        yield where, query_id, doc_id, parse_grade(grade, where)
