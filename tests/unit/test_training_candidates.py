"""The reranker's candidates from the retriever: its base checkpoint's top documents, checked by a plain search.

No Ray: the retriever's base checkpoint and index are published by hand, as its ``base`` stage publishes them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from backbone.data import build_subset, dataset_checksum, load_stard, prepare_dataset
from backbone.errors import BackboneError
from backbone.evaluation import DenseIndex, evaluate
from backbone.models import CheckpointParams, build_retriever, encode_passages
from backbone.recipes import Recipe, recipe_hash
from backbone.registry import Lineage, Registry, index_key
from backbone.training import baseline_rows, reranker_candidates, stage_cache_key
from backbone.training.candidates import RetrieverCandidates
from backbone.training.inputs import build_stage_inputs

DEPTH = 20  # the distillation stage mines from the retriever's top 20
LISTS = 10  # evaluation.rerank_candidates


def _recipe(stard_dir: Path, model: Path, **retriever: object) -> Recipe:
    stage = {
        "name": "distill",
        "data": {"tables": ["train"]},
        "negatives": {"policy": "mined", "count": 2, "rank_range": [1, DEPTH]},
        "loss": "distill_kl",
        "teacher_temperature": 0.1,
    }
    return Recipe.model_validate(
        {
            "name": "tiny",
            "dataset": {"loader": "stard", "source": str(stard_dir)},
            "retriever": {"model": str(model), "max_query_length": 16, "max_passage_length": 32, **retriever},
            "reranker": {
                "model": str(model),
                "max_length": 48,
                "max_query_length": 16,
                "candidates": "retriever",
                "stages": [stage],
            },
            "evaluation": {"reranker_metrics": ["mrr@10", "ndcg@10"], "rerank_candidates": LISTS},
            "search": {"k": [10], "objective": "ndcg@10"},
        }
    )


@pytest.fixture(scope="module")
def dataset(stard_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    subset = build_subset(load_stard(stard_dir), seed=1, queries={"train": 24, "dev": 8}, corpus_size=120)
    out = tmp_path_factory.mktemp("datasets") / "tiny"
    prepare_dataset(subset, out, name="tiny")
    return out


def _publish_base_retriever(recipe: Recipe, dataset: Path, registry: Registry, folder: Path) -> str:
    """What the retriever's ``base`` stage publishes: the untrained model and its corpus index."""
    spec = recipe.retriever
    model = build_retriever(spec)
    model.save(str(folder / "model"))
    data = dataset_checksum(dataset)
    lineage = Lineage(parents=[], recipe_hash=recipe_hash(recipe), dataset_checksum=data)
    checkpoint = registry.publish(
        "checkpoint",
        folder / "model",
        name="retriever/base",
        lineage=lineage,
        params=CheckpointParams(
            component="retriever",
            stage="base",
            base_model=spec.model,
            spec=spec.model_dump(mode="json", exclude={"stages"}),
        ).model_dump(mode="json", exclude_none=True),
        cache_key=stage_cache_key(recipe, "retriever", "base", None, data),
    )
    inputs = build_stage_inputs(recipe, spec, None, dataset)
    DenseIndex.build(inputs.corpus_ids, encode_passages(model, spec, inputs.passages)).save(folder / "index")
    registry.publish(
        "index",
        folder / "index",
        name="retriever/base/index",
        lineage=Lineage(parents=[checkpoint.id], recipe_hash=lineage.recipe_hash, dataset_checksum=data),
        cache_key=index_key(checkpoint.id, data),
    )
    return checkpoint.id


def _top(query_vectors: np.ndarray, corpus: np.ndarray, ids: list[str], depth: int) -> list[list[str]]:
    scores = query_vectors @ corpus.T
    return [[ids[i] for i in np.argsort(-row, kind="stable")[:depth]] for row in scores]


def test_retriever_candidates_are_its_top_documents_and_its_scores(
    stard_dir: Path, tiny_encoder_dir: Path, dataset: Path, tmp_path: Path
) -> None:
    recipe = _recipe(stard_dir, tiny_encoder_dir)
    registry = Registry(str(tmp_path / "registry"))
    with pytest.raises(BackboneError, match="train the retriever first"):
        reranker_candidates(recipe, dataset, registry)
    with pytest.raises(BackboneError, match="give build_stage_inputs the retriever's candidates"):
        build_stage_inputs(recipe, recipe.reranker, None, dataset)
    checkpoint = _publish_base_retriever(recipe, dataset, registry, tmp_path)

    source = reranker_candidates(recipe, dataset, registry)
    assert isinstance(source, RetrieverCandidates) and source.checkpoint_id == checkpoint
    inputs = build_stage_inputs(recipe, recipe.reranker, recipe.reranker.stages[0], dataset, source)

    # The same search done plainly: sentence-transformers' own loading and prompts, numpy's exact search.
    plain = SentenceTransformer(str(registry.materialize(checkpoint)))
    corpus = plain.encode(inputs.passages, prompt_name="passage", normalize_embeddings=True)
    plain.max_seq_length = recipe.retriever.max_query_length  # queries are cut shorter than passages
    eval_ids = list(inputs.eval_queries)
    eval_vectors = plain.encode([inputs.eval_queries[q] for q in eval_ids], prompt_name="query")
    expected = dict(zip(eval_ids, _top(eval_vectors, corpus, inputs.corpus_ids, LISTS), strict=True))
    assert inputs.eval_candidates == expected
    assert len(eval_ids) == 8 and all(len(docs) == LISTS for docs in expected.values())

    train_ids = sorted(inputs.anchors)
    train_vectors = plain.encode([inputs.anchors[q] for q in train_ids], prompt_name="query")
    mined = dict(zip(train_ids, _top(train_vectors, corpus, inputs.corpus_ids, DEPTH), strict=True))
    assert inputs.mining_candidates == mined

    # Teacher scores: the retriever's inner product of a training query with any document, e.g. a random one.
    assert inputs.teacher is not None
    positions = [0, 57, inputs.position[inputs.example_positives[0]]]
    row = train_ids.index(inputs.example_queries[0])
    np.testing.assert_allclose(
        inputs.teacher.of(inputs.example_queries[0], positions), corpus[positions] @ train_vectors[row], atol=1e-5
    )

    # The table's baselines: BM25's lists, then these very lists in the retriever's own order.
    rows = dict(baseline_rows(recipe, dataset, registry)["reranker"])
    assert list(rows) == ["bm25", "retriever order"]
    in_order = {q: {doc: -float(rank) for rank, doc in enumerate(docs)} for q, docs in expected.items()}
    assert rows["retriever order"] == evaluate(inputs.eval_qrels, in_order, ["mrr@10", "ndcg@10"])


def test_the_rerankers_stages_follow_the_retriever_they_take_candidates_from(
    stard_dir: Path, tiny_encoder_dir: Path
) -> None:
    recipe = _recipe(stard_dir, tiny_encoder_dir)
    other = _recipe(stard_dir, tiny_encoder_dir, max_query_length=24)
    bm25 = recipe.model_copy(update={"reranker": recipe.reranker.model_copy(update={"candidates": "bm25"})})
    keys = [stage_cache_key(r, "reranker", "base", None, "data") for r in (recipe, other, bm25)]
    assert len(set(keys)) == 3


def test_a_stage_trained_in_bf16_is_not_the_fp32_stage(stard_dir: Path, tiny_encoder_dir: Path) -> None:
    recipe = _recipe(stard_dir, tiny_encoder_dir)
    key = stage_cache_key(recipe, "retriever", "base", None, "data")
    for setting in ("bf16", "auto"):
        other = recipe.model_copy(
            update={"resources": recipe.resources.model_copy(update={"train_precision": setting})}
        )
        assert stage_cache_key(other, "retriever", "base", None, "data") != key
    again = recipe.model_copy(update={"resources": recipe.resources.model_copy(update={"train_precision": "fp32"})})
    assert stage_cache_key(again, "retriever", "base", None, "data") == key
