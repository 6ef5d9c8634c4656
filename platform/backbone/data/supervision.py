"""Training pairs derived from a dataset: weak pairs from the corpus alone, labelled pairs from judgments.

The tables hold raw texts only. How a passage is presented to a model (title joined to text, "query: " /
"passage: " prefixes, truncation) is the model's business and is decided where the model is, so that one
prepared dataset serves every model.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from backbone.data.dataset import RetrievalDataset

WEAK_PAIRS_SCHEMA = pa.schema([("anchor", pa.string()), ("positive", pa.string()), ("doc_id", pa.string())])
LABELLED_PAIRS_SCHEMA = pa.schema(
    [
        ("query_id", pa.string()),
        ("doc_id", pa.string()),
        ("anchor", pa.string()),
        ("positive", pa.string()),
        ("grade", pa.int32()),
    ]
)


def weak_pairs(dataset: RetrievalDataset) -> pa.Table:
    """Pair each titled document's title (anchor) with its text (positive); untitled documents are skipped.

    For STARD the title is the article's name (law and article number), so the pairs teach which text an
    article reference points at, without using any query.

    Args:
        dataset: the dataset whose corpus is paired.

    Example:
        >>> weak_pairs(dataset).column_names  # doctest: +SKIP
        ['anchor', 'positive', 'doc_id']
    """
    corpus = dataset.corpus
    titled = corpus.filter(pc.not_equal(pc.utf8_trim_whitespace(corpus["title"]), ""))
    return pa.table([titled["title"], titled["text"], titled["doc_id"]], schema=WEAK_PAIRS_SCHEMA)


def labelled_pairs(dataset: RetrievalDataset, split: str = "train") -> pa.Table:
    """Pair each query of ``split`` (anchor) with the text of each document it judges relevant (grade > 0).

    ``positive`` is the document's text as stored, without its title; see the module docstring.

    Args:
        dataset: the dataset.
        split: the split whose judgments are used.

    Example:
        >>> labelled_pairs(dataset, "train").num_rows  # doctest: +SKIP
        2205
    """
    judged = dataset.split_judgments(split)
    judged = judged.filter(pc.greater(judged["grade"], 0))
    query_rows = pc.index_in(judged["query_id"], value_set=dataset.queries["query_id"])
    doc_rows = pc.index_in(judged["doc_id"], value_set=dataset.corpus["doc_id"])
    return pa.table(
        [
            judged["query_id"],
            judged["doc_id"],
            dataset.queries["text"].take(query_rows),
            dataset.corpus["text"].take(doc_rows),
            judged["grade"],
        ],
        schema=LABELLED_PAIRS_SCHEMA,
    )
