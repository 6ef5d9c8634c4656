"""Training pairs derived from a dataset: weak pairs from the corpus alone, labelled pairs from judgments.

The tables hold raw texts only. How a passage is presented to a model (title joined to text, "query: " /
"passage: " prefixes, truncation) is the model's business and is decided where the model is, so that one
prepared dataset serves every model.
"""

from __future__ import annotations

import random
import re

import pyarrow as pa
import pyarrow.compute as pc

from backbone.data.dataset import RetrievalDataset

# Bump when the rows of a pairs table change for the same dataset: prepared datasets are cached under a key that
# includes it (data/for_recipe.py), so a new rule rebuilds them. 2: weak anchors are inverse-cloze sentences.
SUPERVISION_VERSION = 2

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

# A sentence ends after a Chinese 。！？； or, followed by a space, a Latin .!?; (so "3.5" stays whole); a line
# break ends one too. A clause ends after a Chinese or Latin comma, colon or enumeration comma.
_SENTENCE_END = re.compile(r"(?<=[。！？；])|(?<=[.!?;])(?=\s)|\n+")
_CLAUSE_END = re.compile(r"[，,：:、]")
_WORD_CHARACTER = re.compile(r"\w")  # letters, digits and CJK characters
MIN_ANCHOR_CHARACTERS = 8  # a fragment with fewer word characters is too short to stand for its document


def weak_pairs(dataset: RetrievalDataset) -> pa.Table:
    """Pair an inverse-cloze pseudo-query (anchor) with its document's text (positive), one pair per document.

    The anchor is one sentence of the document's text (Lee et al. 2019, inverse cloze task), never its first:
    a model reads a passage as ``{title}\\n{text}``, so neither the title nor the opening sentence may be the
    anchor, or the pairs would reward copying the passage's opening. See :func:`inverse_cloze_anchor` for the
    rule; documents it finds no anchor for get no pair. The positive is the whole document as the corpus holds
    it (the sentence stays in): with a frozen document tower the positive is the indexed passage itself.

    Args:
        dataset: the dataset whose corpus is paired.

    Example:
        >>> weak_pairs(dataset).column_names  # doctest: +SKIP
        ['anchor', 'positive', 'doc_id']
    """
    corpus = dataset.corpus.to_pydict()
    rows = [
        (anchor, text, doc_id)
        for doc_id, title, text in zip(corpus["doc_id"], corpus["title"], corpus["text"], strict=True)
        if (anchor := inverse_cloze_anchor(doc_id, title, text)) is not None
    ]
    anchors, positives, doc_ids = (list(column) for column in zip(*rows, strict=True)) if rows else ([], [], [])
    return pa.table([anchors, positives, doc_ids], schema=WEAK_PAIRS_SCHEMA)


def inverse_cloze_anchor(doc_id: str, title: str, text: str) -> str | None:
    """The pseudo-query of one document: a sentence other than its first, drawn with a generator seeded by its id.

    The text is split into sentences after Chinese 。！？；, Latin .!?; followed by a space, and line breaks;
    sentences with fewer than ``MIN_ANCHOR_CHARACTERS`` word characters are too short to be drawn. A document
    with no such sentence after its first (a single-sentence article, the usual case for a third of STARD)
    falls back to the rest of its text after the opening clause (after the first comma, colon or enumeration
    comma), if that is long enough; otherwise it has no anchor (``None``). An anchor that is the title, lies
    inside it, or is a prefix of the text or of ``{title}\\n{text}`` is never returned.

    Args:
        doc_id: the document's id; seeds the draw, so the same corpus always gives the same anchors.
        title: the document's title (may be empty).
        text: the document's text.

    Example:
        >>> inverse_cloze_anchor("7", "民法典第五十四条", "自然人从事工商业经营，经依法登记，为个体工商户。")
        '经依法登记，为个体工商户。'
        >>> inverse_cloze_anchor("8", "", "合同自成立时生效。当事人应当按照约定全面履行自己的义务。")
        '当事人应当按照约定全面履行自己的义务。'
    """
    sentences = [part.strip() for part in _SENTENCE_END.split(text) if part.strip()]
    drawable = [sentence for sentence in sentences[1:] if _long_enough(sentence) and _fresh(sentence, title, text)]
    if drawable:
        return random.Random(f"inverse-cloze:{doc_id}").choice(drawable)
    opening = _CLAUSE_END.search(text)
    rest = text[opening.end() :].strip() if opening else ""
    return rest if _long_enough(rest) and _fresh(rest, title, text) else None


def _long_enough(fragment: str) -> bool:
    return len(_WORD_CHARACTER.findall(fragment)) >= MIN_ANCHOR_CHARACTERS


def _fresh(anchor: str, title: str, text: str) -> bool:
    """Whether ``anchor`` copies neither the title nor the opening of the passage a model reads."""
    title = title.strip()
    opening = f"{title}\n{text}".strip()
    return anchor not in title and not text.strip().startswith(anchor) and not opening.startswith(anchor)


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
