"""A recipe over tiny models, for cluster tests that are about mechanics, not quality."""

from __future__ import annotations

from pathlib import Path

from backbone.recipes import Recipe


def tiny_recipe(
    stard_dir: Path, model_dir: Path, retriever_stage: dict, reranker_stage: dict, **reranker: object
) -> Recipe:
    """A recipe over tiny models with one stage per component, evaluated at small cutoffs; ``reranker``: more of
    its reranker section (e.g. ``candidates="retriever"``)."""
    return Recipe.model_validate(
        {
            "name": "tiny",
            "dataset": {"loader": "stard", "source": str(stard_dir)},
            "retriever": {
                "model": str(model_dir),
                "max_query_length": 16,
                "max_passage_length": 32,
                "stages": [retriever_stage],
            },
            "reranker": {
                "model": str(model_dir),
                "max_length": 48,
                "max_query_length": 16,
                "stages": [reranker_stage],
                **reranker,
            },
            "evaluation": {
                "retriever_metrics": ["recall@10", "ndcg@10", "mrr@10"],
                "reranker_metrics": ["mrr@10", "ndcg@10"],
                "end_to_end_metrics": ["ndcg@10"],
                "rerank_candidates": 10,
            },
            "search": {"k": [10], "objective": "ndcg@10"},
        }
    )
