"""Everything the workers of one stage need, gathered once on the driver from the prepared dataset.

The workers receive it through the trainer's config, so a stage reads no file on a worker node: the same code runs
on one machine and on a cluster whose nodes see only the registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

from backbone.data import WEAK_TABLE, load_dataset, pairs_table, read_table
from backbone.errors import BackboneError, DataError
from backbone.models import passage_text
from backbone.recipes import Component, Recipe, Reranker, Stage
from backbone.training.candidates import Bm25Candidates, CandidateSource, DenseSearch, RetrieverScores

WEAK_QUERY_PREFIX = "weak:"  # weak pairs have no query id: the anchor is named after its document


@dataclass(frozen=True)
class StageInputs:
    """The data of one stage, on every worker.

    Args:
        example_queries: each training example's query id (``weak:<doc id>`` for weak pairs).
        example_positives: each example's positive document id.
        anchors: each query id's text.
        relevant: each query id's judged relevant documents (false negatives are never mined from them).
        corpus_ids: every document id.
        passages: every document as the component reads it (``passage_template``), in ``corpus_ids`` order.
        eval_queries: the evaluation split's query texts.
        eval_qrels: the evaluation split's judgments.
        mining_candidates: reranker only: first-stage candidates of each training query, to rank and mine.
        eval_candidates: reranker only: the fixed first-stage candidate list of each evaluation query.
        teacher: reranker ``distill_kl`` stages only: the retriever's score of any training pair.
    """

    example_queries: list[str]
    example_positives: list[str]
    anchors: dict[str, str]
    relevant: dict[str, list[str]]
    corpus_ids: list[str]
    passages: list[str]
    eval_queries: dict[str, str]
    eval_qrels: dict[str, dict[str, int]]
    mining_candidates: dict[str, list[str]] = field(default_factory=dict)
    eval_candidates: dict[str, list[str]] = field(default_factory=dict)
    teacher: RetrieverScores | None = None

    def fixed_candidate_run(self) -> dict[str, dict[str, float]]:
        """The evaluation queries' fixed candidate lists as a run, in their first-stage order."""
        return {
            query: {doc: -float(rank) for rank, doc in enumerate(docs)} for query, docs in self.eval_candidates.items()
        }

    @cached_property
    def position(self) -> dict[str, int]:
        """Each document id's index in ``corpus_ids`` and ``passages``."""
        return {doc: index for index, doc in enumerate(self.corpus_ids)}


def build_stage_inputs(
    recipe: Recipe,
    spec: Component,
    stage: Stage | None,
    dataset_dir: Path,
    candidates: CandidateSource | None = None,
) -> StageInputs:
    """Gather a stage's examples, corpus and evaluation data (``stage=None``: evaluation only, for the base model).

    Args:
        recipe: the recipe (evaluation split, candidate depth).
        spec: the component's spec (how documents become passages).
        stage: the stage to train, or ``None``.
        dataset_dir: the prepared dataset.
        candidates: reranker only: where its candidate lists come from (``reranker_candidates`` in ``stage.py``
            finds the recipe's); ``None`` is BM25, allowed only when the recipe's ``reranker.candidates`` is bm25.

    Raises:
        BackboneError: a reranker whose recipe reranks the retriever's candidates, given none.

    Example:
        >>> inputs = build_stage_inputs(recipe, recipe.retriever, recipe.retriever.stages[0], path)  # doctest: +SKIP
    """
    dataset = load_dataset(dataset_dir)
    corpus = dataset.corpus.to_pydict()
    corpus_ids = corpus["doc_id"]
    passages = [passage_text(spec, title, text) for title, text in zip(corpus["title"], corpus["text"], strict=True)]
    split = recipe.dataset.eval_split
    query_texts = dict(zip(dataset.queries["query_id"].to_pylist(), dataset.queries["text"].to_pylist(), strict=True))
    eval_qrels = dataset.relevant(split)
    eval_queries = {query: query_texts[query] for query in sorted(eval_qrels)}

    example_queries: list[str] = []
    example_positives: list[str] = []
    anchors: dict[str, str] = {}
    relevant: dict[str, list[str]] = {}
    stage_name, tables = (stage.name, stage.data.tables) if stage else ("base", [])
    for table in tables:
        if table == "weak":
            rows = read_table(dataset_dir, WEAK_TABLE).to_pydict()
            for anchor, doc in zip(rows["anchor"], rows["doc_id"], strict=True):
                query = WEAK_QUERY_PREFIX + doc
                example_queries.append(query)
                example_positives.append(doc)
                anchors[query] = anchor
                relevant[query] = [doc]
            continue
        try:
            rows = read_table(dataset_dir, pairs_table(table)).to_pydict()
        except DataError as err:
            message = f"stage {stage_name!r} names table {table!r}, which is not there ({err})"
            raise DataError(dataset_dir, message) from None
        judged = dataset.relevant(table)
        for query, doc in zip(rows["query_id"], rows["doc_id"], strict=True):
            example_queries.append(query)
            example_positives.append(doc)
            anchors[query] = query_texts[query]
            relevant[query] = sorted(judged[query])

    inputs = StageInputs(
        example_queries, example_positives, anchors, relevant, corpus_ids, passages, eval_queries, eval_qrels
    )
    if not isinstance(spec, Reranker):
        return inputs
    if candidates is None and spec.candidates != "bm25":
        raise BackboneError(
            f"reranker.candidates is {spec.candidates!r}: give build_stage_inputs the retriever's candidates "
            "(reranker_candidates(recipe, dataset_dir, registry))"
        )
    return _with_candidates(inputs, recipe, stage, candidates or Bm25Candidates())


def _with_candidates(
    inputs: StageInputs, recipe: Recipe, stage: Stage | None, candidates: CandidateSource
) -> StageInputs:
    # A cross-encoder cannot score a whole corpus per query; it ranks a fixed first-stage list, the same one for
    # every stage of the curriculum (BM25, or the untrained retriever's top documents).
    searcher = candidates.open(inputs.corpus_ids, inputs.passages)
    eval_run = searcher.search(inputs.eval_queries, k=recipe.evaluation.rerank_candidates)
    anchors = {query: inputs.anchors[query] for query in sorted(inputs.anchors)}
    mining: dict[str, list[str]] = {}
    if stage is not None and (stage.negatives.policy != "in_batch" or stage.data.queries.mode != "all"):
        depth = max(stage.negatives.rank_range[1], stage.data.queries.rank_threshold)
        mining = _ranked(searcher.search(anchors, k=depth))
    teacher = None
    if stage is not None and stage.loss == "distill_kl":
        assert isinstance(searcher, DenseSearch), "the recipe allows distill_kl on dense candidate lists only"
        teacher = searcher.scores(anchors, inputs.corpus_ids)
    return replace(inputs, mining_candidates=mining, eval_candidates=_ranked(eval_run), teacher=teacher)


def _ranked(run: dict[str, dict[str, float]]) -> dict[str, list[str]]:
    return {query: sorted(docs, key=lambda doc: (-docs[doc], doc)) for query, docs in run.items()}
