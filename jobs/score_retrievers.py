"""Score retriever checkpoints, and BM25 beside them, on one split of a recipe's prepared dataset.

The retrieval runs are the search's own (`backbone.selection.retrieval_run`: each checkpoint's queries against the
corpus index that serves it, cached in the registry and reused by a later search of the same split). docs/results.md
uses it for the per-stage figures on the selection split. Run directly (starts a private local Ray only if none):
    python jobs/score_retrievers.py --recipe jobs/recipes/stard-cpu.yaml --split selection CHECKPOINT_ID ...
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from backbone.data import build_recipe_dataset
from backbone.errors import BackboneError
from backbone.evaluation import BM25, deepest_cutoff, evaluate
from backbone.recipes import load_recipe
from backbone.registry import Registry
from backbone.selection.inputs import search_inputs
from backbone.selection.retrieval_runs import retrieval_run
from backbone.training import results_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", type=Path, required=True, help="The recipe's YAML file.")
    parser.add_argument("--split", required=True, help="The split of the recipe's prepared dataset to score.")
    parser.add_argument("--registry", help="Artifact registry URI (default: $BACKBONE_REGISTRY).")
    parser.add_argument("checkpoints", nargs="+", help="Retriever checkpoint ids, scored in this order.")
    args = parser.parse_args(argv)
    try:
        recipe = load_recipe(args.recipe)
        registry = Registry(args.registry)
        inputs = search_inputs(
            build_recipe_dataset(recipe.dataset, recipe.name), args.split, recipe.retriever, recipe.reranker
        )
        metrics = recipe.evaluation.retriever_metrics
        depth = deepest_cutoff(metrics)
        bm25 = BM25.build(inputs.corpus_ids, inputs.retriever_passages, language="auto").search(inputs.queries, depth)
        rows = [("bm25", evaluate(inputs.qrels, bm25, metrics))]
        for checkpoint in args.checkpoints:
            found = retrieval_run(registry.uri, checkpoint, recipe.retriever, inputs, depth)
            stage = registry.get(checkpoint).params.get("stage", "?")
            rows.append((f"{stage} ({checkpoint})", evaluate(inputs.qrels, found.run, metrics)))
    except BackboneError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"split {args.split}: {len(inputs.qrels)} queries, {len(inputs.corpus_ids)} documents\n")
    print(results_table("retriever", metrics, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
