"""What the search reads from the prepared dataset: the evaluation split and the corpus as each component sees it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from backbone.data import dataset_checksum, load_dataset
from backbone.models import passage_text
from backbone.recipes import Reranker, Retriever


@dataclass(frozen=True)
class SearchInputs:
    """The evaluation queries, their judgments and the corpus, gathered once on the driver.

    Args:
        split: the evaluation split's name.
        dataset_dir: the prepared dataset's folder (an index published from these inputs carries its corpus).
        data: the prepared dataset's checksum; cached runs and scores are only valid for it.
        queries: query id -> text, for every judged query of the split.
        qrels: query id -> document id -> grade.
        corpus_ids: every document id.
        retriever_passages: every document as the retriever reads it, in ``corpus_ids`` order.
        reranker_passages: every document as the reranker reads it, in ``corpus_ids`` order.
    """

    split: str
    dataset_dir: Path
    data: str
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    corpus_ids: list[str]
    retriever_passages: list[str]
    reranker_passages: list[str]


def search_inputs(dataset_dir: Path, split: str, retriever: Retriever, reranker: Reranker) -> SearchInputs:
    """Read an evaluation split and the corpus of a prepared dataset, the corpus shaped for each component.

    Args:
        dataset_dir: the prepared dataset.
        split: the evaluation split.
        retriever: the retriever's spec (how it reads a document).
        reranker: the reranker's spec.

    Example:
        >>> inputs = search_inputs(dataset_dir, "dev", recipe.retriever, recipe.reranker)  # doctest: +SKIP
        >>> len(inputs.queries), len(inputs.corpus_ids)  # doctest: +SKIP
        (50, 1500)
    """
    dataset = load_dataset(dataset_dir)
    corpus = dataset.corpus.to_pydict()
    texts = dict(zip(dataset.queries["query_id"].to_pylist(), dataset.queries["text"].to_pylist(), strict=True))
    qrels = dataset.relevant(split)
    titles_and_texts = list(zip(corpus["title"], corpus["text"], strict=True))
    return SearchInputs(
        split=split,
        dataset_dir=dataset_dir,
        data=dataset_checksum(dataset_dir),
        queries={query: texts[query] for query in sorted(qrels)},
        qrels=qrels,
        corpus_ids=corpus["doc_id"],
        retriever_passages=[passage_text(retriever, title, text) for title, text in titles_and_texts],
        reranker_passages=[passage_text(reranker, title, text) for title, text in titles_and_texts],
    )
